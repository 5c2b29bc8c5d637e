"""Builders for the worked test cases of spec/metrics.md §7 (common fixture: 41 ego states at 0.1 s fed
directly to the scorer, heading 0, objects given at 51 frames by their centre formula)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from worldengine_lab.metrics import NAVSIM_V11, ObjectTracks, PDMScores, ScorerConfig, ScoringMap, score_proposals
from worldengine_lab.metrics.scoring_map import ScoringMapConfig
from worldengine_lab.sim.state import make_ego_state

T41 = np.arange(41) * 0.1
T51 = np.arange(51) * 0.1
Fn = Callable[[np.ndarray], np.ndarray]


def const(v: float) -> Fn:
    return lambda t: np.full_like(t, v, dtype=np.float64)


def ego(x: Fn, v: Fn, y: Fn = const(0.0), ax: Fn = const(0.0), yaw: Fn = const(0.0)) -> torch.Tensor:
    """``[1, 41, D]`` float64 ego states: rear axle (x(t), y(t)), heading yaw(t), velocity (v(t), 0)."""
    t = T41
    s = make_ego_state(x=torch.from_numpy(x(t)), y=torch.from_numpy(y(t)), yaw=torch.from_numpy(yaw(t)),
                       vx=torch.from_numpy(v(t)), ax=torch.from_numpy(ax(t)))
    return s[None]


def box(x: Fn, y: Fn = const(0.0), vx: Fn = const(0.0), vy: Fn = const(0.0), length: float = 5.0,
        width: float = 2.0, static: bool = False) -> dict:
    return {"x": x, "y": y, "vx": vx, "vy": vy, "size": (length, width), "static": static}


def objects(*boxes: dict, num_frames: int = 51, dt: float = 0.1) -> ObjectTracks:
    t = np.arange(num_frames) * dt
    xy = np.stack([np.stack((b["x"](t), b["y"](t)), -1) for b in boxes], 1)
    vel = np.stack([np.stack((b["vx"](t), b["vy"](t)), -1) for b in boxes], 1)
    return ObjectTracks.from_arrays(xy=xy, yaw=np.zeros(xy.shape[:2]), size_lw=np.array([b["size"] for b in boxes]),
                                    vel=vel, is_static=np.array([b["static"] for b in boxes]), dt=dt)


def rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


SMALL_RASTER = ScoringMapConfig(radius_m=60.0)


def huge_map() -> ScoringMap:
    """One huge drivable polygon and one on-route lane covering everything; centreline along +x."""
    big = rect(-1000, 1000, -1000, 1000)
    return ScoringMap.from_polygons(drivable=[big], lanes=[big], centerline=np.array([[-50.0, 0.0], [200.0, 0.0]]),
                                    center_xy=(10.0, 0.0), config=SMALL_RASTER)


def score_both(states: torch.Tensor, objs: ObjectTracks, smap: ScoringMap, config: ScorerConfig = NAVSIM_V11,
               **kw: object) -> PDMScores:
    """Score with the raster and the exact path; assert they agree; return the raster result."""
    fast = score_proposals(states, objs, smap, config, **kw)
    exact = score_proposals(states, objs, smap, ScorerConfig(**{**config.__dict__, "exact": True}), **kw)
    for name in ("nc", "dac", "ep", "ttc", "comfort", "ddc", "score", "first_collision_idx", "first_offroad_idx",
                 "first_ttc_idx"):
        torch.testing.assert_close(getattr(fast, name), getattr(exact, name), msg=name)
    return fast
