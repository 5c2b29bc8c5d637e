"""Process targets of the kill and concurrency tests (module-level, so every start method can import them)."""
from __future__ import annotations

import logging
from pathlib import Path

from worldengine_lab.planners.features import FeatureConfig
from worldengine_lab.training.imitation import ImitationConfig

KILL_CONFIG = ImitationConfig(vocab_size=8, offsets_s=(0.0, 1.0), epochs=60, batch_size=8, val_fraction=0.2,
                              d_model=16, layers=1, heads=2,
                              features=FeatureConfig(max_agents=4, max_lanes=4, lane_points=8))


def kill_scenarios() -> list:
    from worldengine_lab.testing import make_scenario

    return [make_scenario(num_agents=3, speed_mps=4.0 + i, gap_m=15.0 + 2 * i, seed=i) for i in range(6)]


def train(run_dir: str, attempt: int) -> None:
    """Pre-train into ``run_dir`` (resuming from its checkpoint); the log names the epoch it resumed at."""
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(filename=str(Path(run_dir) / f"attempt-{attempt}.log"), level=logging.INFO, force=True)
    from worldengine_lab.training.imitation import pretrain

    pretrain(kill_scenarios(), run_dir, KILL_CONFIG, progress=False)


def write_records(root: str, writer: str, num: int, barrier, committed_path: str | None = None) -> None:
    """Write ``num`` curation records (a note and a decision each, one transaction per call) into the workspace
    at ``root``. With ``committed_path``, append each committed record's id to that file after its commit."""
    from worldengine_lab.store import Workspace
    from worldengine_lab.store.curation import add_note, record_decision

    ws = Workspace.open(root, create=False)
    if barrier is not None:
        barrier.wait(timeout=120)
    out = open(committed_path, "a", buffering=1) if committed_path else None
    try:
        for k in range(num):
            rid = f"{writer}-{k}"
            add_note(ws, rid, f"note {rid}", user=writer)
            record_decision(ws, rid, "accept" if k % 2 else "reject", note=rid, user=writer)
            if out is not None:
                out.write(rid + "\n")
    finally:
        if out is not None:
            out.close()
        ws.close()


def write_variants_forever(root: str, committed_path: str, start: int) -> None:
    """Save variants (ids differ by seed), one after another, logging each committed id; killed from outside."""
    from worldengine_lab.store import Workspace
    from worldengine_lab.testing import make_scenario
    from worldengine_lab.variants import RemoveAgent, make_variant
    from worldengine_lab.variants.store import save_variant

    ws = Workspace.open(root, create=False)
    parent = make_scenario(num_agents=2, seed=0)
    with open(committed_path, "a", buffering=1) as out:
        k = start
        while True:
            v = make_variant(parent, [RemoveAgent(agent="veh1")], objective=f"kill test {k}", seed=k)
            out.write(save_variant(ws, v) + "\n")
            k += 1
