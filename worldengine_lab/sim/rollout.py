"""``rollout``: run a planner in closed loop on a batch of scenarios and return one :class:`Rollout` each.

Examples:
    >>> from worldengine_lab.testing import make_scenario
    >>> from worldengine_lab.planners import LogReplayPlanner
    >>> out = rollout([make_scenario(seed=0), make_scenario(seed=1)], LogReplayPlanner())
    >>> len(out), out[0].has_collision, out[0].ego_states.shape
    (2, False, (101, 10))
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Sequence, overload

import numpy as np
import torch

from .._version import __version__
from ..datatypes import AgentTracks, Rollout, Scenario
from ..errors import ScenarioValidationError
from ..planners.base import Planner, ResettablePlanner
from .config import SimConfig
from .env import ClosedLoopEnv, Episode, SimState

__all__ = ["rollout", "run_episode", "to_rollouts"]

log = logging.getLogger(__name__)


def _planner_id(planner: object) -> str:
    pid = getattr(planner, "planner_id", None)
    if not callable(getattr(planner, "plan", None)) or not isinstance(pid, str) or not pid:
        raise ScenarioValidationError(
            f"rollout(planner): expected a Planner (a non-empty str `planner_id` and a `plan(obs)` method), "
            f"received {type(planner).__name__} with planner_id={pid!r}")
    return pid


def run_episode(env: ClosedLoopEnv, planner: Planner, seed: int = 0) -> tuple[SimState, list[torch.Tensor]]:
    """Step ``env`` for its whole episode with ``planner``; returns the last state and the body-frame plans.

    The global torch RNG is seeded with ``seed`` for the episode and restored afterwards."""
    pid = _planner_id(planner)
    every = env.config.replan_every
    plans: list[torch.Tensor] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(planner, ResettablePlanner):
            planner.reset(env.batch.scenarios, seed)
        state = env.reset()
        for k in range(env.config.num_steps):  # time steps
            if k % every == 0:
                plan = planner.plan(env.observe(state))
                state = env.set_plan(state, plan, pid)
                plans.append(plan.detach().to(torch.float64))
            state = env.step(state)
    return state, plans


@overload
def rollout(scenarios: Scenario, planner: Planner, config: SimConfig = ..., seed: int = ...) -> Rollout: ...
@overload
def rollout(scenarios: Sequence[Scenario], planner: Planner, config: SimConfig = ...,
            seed: int = ...) -> list[Rollout]: ...


def rollout(
    scenarios: Scenario | Sequence[Scenario], planner: Planner, config: SimConfig = SimConfig(), seed: int = 0
) -> Rollout | list[Rollout]:
    """Simulate ``planner`` in closed loop on all ``scenarios`` at once (one batch).

    Args:
        scenarios: one Scenario (returns one Rollout) or a sequence (returns a list in the same order).
        planner: a :class:`~worldengine_lab.planners.Planner`; ``reset(scenarios, seed)`` is called first when
            it has one.
        config: :class:`SimConfig` (episode length, replanning period, tracking and agent modes, checks).
        seed: recorded in the rollouts; seeds the torch RNG during the episode.
    Raises:
        ScenarioValidationError / ShapeError: invalid scenarios, config or planner output (names what is wrong).
    """
    single = isinstance(scenarios, Scenario)
    batch = [scenarios] if single else list(scenarios)
    env = ClosedLoopEnv(batch, config)
    state, plans = run_episode(env, planner, seed)
    out = to_rollouts(env, env.finalize(state), plans, _planner_id(planner), seed)
    return out[0] if single else out


def to_rollouts(env: ClosedLoopEnv, ep: Episode, plans: list[torch.Tensor], planner_id: str,
                seed: int) -> list[Rollout]:
    """Assemble one :class:`Rollout` per scenario from a finalized episode (numpy, scenario timelines)."""
    cfg, bt = env.config, env.batch
    s_steps, h = ep.num_steps, env.hist
    bx = ep.boxes
    xy, yaw, vel, valid = (t.numpy() for t in (bx.xy, bx.yaw, bx.vel, bx.valid))
    ego, actions = ep.ego.to(torch.float64).numpy(), ep.actions.to(torch.float64).numpy()
    coll, offroad, oncoming = ep.collision.numpy(), ep.offroad.numpy(), ep.oncoming.numpy()
    plan_index = ep.plan_index.numpy()
    reactive = env.reactive.numpy()
    plan_arr = torch.stack(plans, 1).numpy() if plans else np.zeros((bt.batch_size, 0, 40, 3))
    plan_k = np.arange(len(plans)) * cfg.replan_every
    meta = {"config": _config_repr(cfg), "code_version": __version__}
    out = []
    for b, s in enumerate(bt.scenarios):  # assembling B output objects
        a, t0, n = s.agents, s.t0, s.agents.num_agents
        t_r = max(s.num_steps, t0 + s_steps + 1)
        rows = slice(t0 + 1, t0 + s_steps + 1)  # simulated steps on the scenario timeline
        win = slice(h + 1, h + s_steps + 1)
        ts = np.concatenate([s.timestamps_s, s.timestamps_s[-1] + s.dt * np.arange(1, t_r - s.num_steps + 1)])

        def agent_array(log_arr: np.ndarray, sim_arr: np.ndarray, dtype: type) -> np.ndarray:
            o = np.zeros((t_r,) + log_arr.shape[1:], dtype)
            o[: t0 + 1] = log_arr[: t0 + 1]
            o[rows] = sim_arr[win, b, :n]
            return o

        tracks = AgentTracks(
            xy=agent_array(a.xy, xy, np.float32), yaw=agent_array(a.yaw, yaw, np.float32),
            vel_xy=agent_array(a.vel_xy, vel, np.float32), size_lwh=a.size_lwh.copy(),
            agent_type=a.agent_type.copy(), valid=agent_array(a.valid, valid, bool), track_ids=a.track_ids.copy(),
        )
        ego_states = np.zeros((t_r, ego.shape[-1]), np.float64)
        ego_states[:t0] = bt.ego_log_states[b][:t0]
        ego_states[t0 : t0 + s_steps + 1] = ego[:, b]
        act = np.zeros((t_r, 2), np.float64)
        act[t0 : t0 + s_steps] = actions[:s_steps, b]
        sim = np.zeros(t_r, bool)
        sim[t0 : t0 + s_steps + 1] = True

        def per_step(values: np.ndarray, fill: object = False) -> np.ndarray:
            o = np.full((t_r,) + values.shape[1:], fill, values.dtype)
            o[t0 : t0 + s_steps + 1] = values
            return o

        info = {
            "sim/simulated": sim,
            "sim/collision": per_step(coll[:, b, :n].any(-1)),
            "sim/collision_agents": per_step(coll[:, b, :n]),
            "sim/offroad": per_step(offroad[:, b]),
            "sim/oncoming": per_step(oncoming[:, b]),
            "sim/plan_index": per_step(plan_index, -1),
            "sim/agent_is_reactive": np.broadcast_to(reactive[b, :n], (t_r, n)).copy(),
        }
        out.append(Rollout(
            scenario_id=s.scenario_id, planner_id=planner_id, seed=int(seed), dt=float(s.dt), t0=int(t0),
            num_sim_steps=int(s_steps), timestamps_s=ts, agents=tracks, ego_states=ego_states, actions=act,
            plans=plan_arr[b].astype(np.float64), plan_steps=(t0 + plan_k).astype(np.int64), info=info, meta=meta,
        ))
    return out


def _config_repr(cfg: SimConfig) -> dict[str, str]:
    return {f.name: repr(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
