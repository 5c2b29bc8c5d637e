"""Training: planning samples (features, expert futures, PDM-teacher scores of every candidate) and imitation
pre-training of the learned vocabulary planner."""
