"""MTGS / World Engine portable asset checkpoints (spec ``gaussian-splatting.md`` §7.1, §7.2, §8.2).

A checkpoint is ``{asset_name: {"config": {...}, "state_dict": {...}}}``; the token is
``asset_name.split("_")[-1]`` (``background``, ``skybox`` or an actor's track token). State-dict keys may be
flat (``"gauss_params.means"``) or nested (``{"gauss_params": {"means": ...}}``); :func:`load_mtgs_asset`
accepts both and :func:`write_mtgs_asset` writes flat keys. Values are kept as stored (log scales, logit
opacities, raw quats) so a load/write round trip is bitwise; activation (§7.2) happens on demand.

Frames: static models (``VanillaGaussianSplattingModel``, ``SkyboxGaussianSplattingModel``) are in the recon
frame (world UTM = recon + ``recon2world_translation``); rigid models are in their actor frame (x heading,
y left, z up, box centre) with world_from_actor poses per log frame (``instance_trans/quats``), sentinel
frames (z >= 1000) marking absence.
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..datatypes import GaussianScene, Scenario
from ..errors import DataFormatError, MissingDependencyError, MissingFileError, CorruptFileError
from .compose import (
    SENTINEL_Z_M, GroundHeight, PoseLog, ScenarioScene, actor_to_world, interpolate_log_poses, mirror_gaussians,
    quat_from_matrix,
)
from .ply import SH_C0

__all__ = ["MTGSSubAsset", "MTGSAsset", "load_mtgs_asset", "write_mtgs_asset", "STATIC_TYPES", "RIGID_TYPES"]

log = logging.getLogger(__name__)

STATIC_TYPES = ("VanillaGaussianSplattingModel", "SkyboxGaussianSplattingModel")
RIGID_TYPES = ("RigidSubModel", "MirroredRigidSubModel")
_UNSUPPORTED = ("DeformableSubModel",)
_GP = "gauss_params."
_REQUIRED = ("means", "scales", "quats", "features_dc", "opacities")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise MissingDependencyError("MTGS checkpoints need torch; pip install torch") from exc
    return torch


def _to_numpy(value: Any) -> Any:
    """Tensors (recursively in dicts/lists) -> numpy arrays; everything else unchanged."""
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, Mapping):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---------------------------------------------------------------------------------------------- sub-assets
@dataclass(frozen=True, eq=False)
class MTGSSubAsset:
    """One model of an asset, with its stored values.

    Attributes:
        name: the asset-dict key (e.g. ``background``, ``rigid_<token>``).
        config: the model config (tensors converted to numpy arrays).
        params: flat state-dict ``{key: ndarray}`` as stored (``gauss_params.means [G, 3]``, ``gauss_params.scales``
            log σ ``[G, 3]`` or ``[G, 1]``, ``gauss_params.quats [G, 4]``, ``gauss_params.features_dc [G, 3]``,
            ``gauss_params.features_rest [G, K − 1, 3]``, ``gauss_params.opacities`` logit ``[G, 1]``, and for
            rigid models ``instance_trans [F, 3]|[3]`` m, ``instance_quats [F, 4]|[4]``).
    """

    name: str
    config: dict
    params: dict

    @property
    def token(self) -> str:
        """``name.split("_")[-1]``: ``background``, ``skybox`` or the actor's track token."""
        return self.name.split("_")[-1]

    @property
    def model_type(self) -> str:
        return str(self.config.get("type", ""))

    @property
    def is_static(self) -> bool:
        """True for background / skybox models (Gaussians in the recon frame)."""
        return self.model_type in STATIC_TYPES

    @property
    def is_dynamic(self) -> bool:
        """True for rigid models with one pose per log frame (``instance_trans [F, 3]``)."""
        return not self.is_static and np.ndim(self.params["instance_trans"]) == 2

    @property
    def sh_degree(self) -> int:
        return int(self.config["sh_degree"])

    @property
    def log_timestamps_us(self) -> np.ndarray | None:
        """``[F]`` int64 µs of a dynamic rigid model, else None."""
        ts = self.config.get("log_timestamps")
        return None if ts is None else np.asarray(ts, np.int64).reshape(-1)

    def gaussians(self) -> GaussianScene:
        """Activated Gaussians in the model's own frame (§7.2): σ = exp (×3 if scale_dim = 1), q normalised
        (identity if scale_dim = 1), o = sigmoid, SH = [features_dc, features_rest] or, for sh_degree 0,
        band 0 = (sigmoid(features_dc) − 0.5) / C0. Mirrored models return 2G Gaussians (§7.4)."""
        p = self.params
        means = np.asarray(p[_GP + "means"], np.float64)
        g = len(means)
        scales = np.exp(np.asarray(p[_GP + "scales"], np.float64))
        if int(self.config.get("scale_dim", 3)) == 1:
            scales = np.repeat(scales.reshape(g, 1), 3, axis=1)
            quats = np.tile([1.0, 0.0, 0.0, 0.0], (g, 1))
        else:
            quats = np.asarray(p[_GP + "quats"], np.float64)
            quats = quats / np.linalg.norm(quats, axis=1, keepdims=True)
        opac = 1.0 / (1.0 + np.exp(-np.asarray(p[_GP + "opacities"], np.float64).reshape(g)))
        dc = np.asarray(p[_GP + "features_dc"], np.float64).reshape(g, 1, 3)
        if self.sh_degree == 0:
            sh = (1.0 / (1.0 + np.exp(-dc)) - 0.5) / SH_C0
        else:
            sh = np.concatenate([dc, np.asarray(p[_GP + "features_rest"], np.float64)], axis=1)
        if self.model_type == "MirroredRigidSubModel":
            mm, mq, ms = mirror_gaussians(means, quats, sh)
            means, quats, sh = np.concatenate([means, mm]), np.concatenate([quats, mq]), np.concatenate([sh, ms])
            scales, opac = np.concatenate([scales, scales]), np.concatenate([opac, opac])
        f = np.float32
        return GaussianScene(means.astype(f), quats.astype(f), scales.astype(f), opac.astype(f), sh.astype(f))

    def poses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World_from_actor poses of a rigid model: ``(trans [F, 3] f64 m recon frame, quats [F, 4], valid [F])``
        (F = 1 for a static actor; sentinel frames are invalid)."""
        tr = np.asarray(self.params["instance_trans"], np.float64).reshape(-1, 3)
        q = np.asarray(self.params["instance_quats"], np.float64).reshape(-1, 4)
        return tr, q, tr[:, 2] < SENTINEL_Z_M

    @staticmethod
    def from_gaussians(name: str, model_type: str, gaussians: GaussianScene, *, instance_trans: np.ndarray | None = None,
                       instance_quats: np.ndarray | None = None, log_timestamps_us: np.ndarray | None = None,
                       recon2world_translation: np.ndarray | None = None) -> "MTGSSubAsset":
        """Stored values (log σ, logit o, float32) of activated Gaussians (the model's own frame), for writing.

        SH degree 0 is stored as MTGS does: features_dc = logit(colour) with colour = 0.5 + C0·sh₀ clipped to
        [1e-6, 1 − 1e-6]; higher degrees store the SH coefficients. Mirrored models need degree 3.
        """
        logit = lambda p: np.log(p / (1.0 - p))  # noqa: E731
        o = np.clip(gaussians.opacities.astype(np.float64), 1e-7, 1 - 1e-7)
        sh = gaussians.sh.astype(np.float64)
        dc = sh[:, 0] if gaussians.sh_degree else logit(np.clip(0.5 + SH_C0 * sh[:, 0], 1e-6, 1 - 1e-6))
        params: dict[str, np.ndarray] = {
            _GP + "means": gaussians.means.astype(np.float32),
            _GP + "scales": np.log(np.maximum(gaussians.scales.astype(np.float64), 1e-30)).astype(np.float32),
            _GP + "quats": gaussians.quats.astype(np.float32),
            _GP + "features_dc": dc.astype(np.float32),
            _GP + "features_rest": sh[:, 1:].astype(np.float32),
            _GP + "opacities": logit(o).astype(np.float32)[:, None],
        }
        config: dict[str, Any] = {"type": model_type, "sh_degree": gaussians.sh_degree}
        if instance_trans is not None:
            params["instance_trans"] = np.asarray(instance_trans, np.float32)
            params["instance_quats"] = np.asarray(instance_quats, np.float32)
        if log_timestamps_us is not None:
            config["log_timestamps"] = np.asarray(log_timestamps_us, np.int64)
        if recon2world_translation is not None:
            config["recon2world_translation"] = np.asarray(recon2world_translation, np.float64)
        return MTGSSubAsset(name, config, params)


# ---------------------------------------------------------------------------------------------- asset
@dataclass(frozen=True, eq=False)
class MTGSAsset:
    """A loaded asset: sub-assets in file order plus the recon -> world translation.

    Attributes:
        sub_assets: every model, in asset-dict order (WorldEngine's composition order).
        recon2world_translation: ``[3]`` float64, m: world (UTM) = recon + this.
        path: the checkpoint it came from ('' when built in memory).
    """

    sub_assets: tuple[MTGSSubAsset, ...]
    recon2world_translation: np.ndarray  # [3] float64, m
    path: str = ""

    @property
    def static_models(self) -> list[MTGSSubAsset]:
        return [s for s in self.sub_assets if s.is_static]

    @property
    def actor_models(self) -> list[MTGSSubAsset]:
        return [s for s in self.sub_assets if not s.is_static]

    def background(self) -> GaussianScene:
        """Static models concatenated, recon frame (``actor_ids == -1``)."""
        parts = [s.gaussians() for s in self.static_models]
        return GaussianScene.concat(parts) if parts else _empty()

    def log_replay_poses(self, t_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Poses of every rigid model at ``t_us`` (µs) by MTGS log replay (§7.3), vectorised over actors.

        Returns ``(tokens [A] str, trans [A, 3] f64 recon frame, quats [A, 4], present [A] bool)``; static
        actors are always present at their pose.
        """
        models = self.actor_models
        if not models:
            return np.zeros(0, dtype="<U1"), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0, bool)
        f = max(len(m.poses()[0]) for m in models)
        a = len(models)
        ts, tr, qs, real = np.zeros((a, f), np.int64), np.zeros((a, f, 3)), np.zeros((a, f, 4)), np.zeros((a, f), bool)
        qs[..., 0] = 1.0
        static = np.array([not m.is_dynamic for m in models])
        for i, m in enumerate(models):  # packing, once per model; the interpolation below is batched
            t, q, _ = m.poses()
            tr[i, :len(t)], qs[i, :len(t)], real[i, :len(t)] = t, q, True
            if m.is_dynamic:
                ts[i, :len(t)] = m.log_timestamps_us
        out_t, out_q, present = interpolate_log_poses(ts, tr, qs, int(t_us), real)
        out_t = np.where(static[:, None], tr[:, 0], out_t)
        out_q = np.where(static[:, None], qs[:, 0], out_q)
        present = np.where(static, tr[:, 0, 2] < SENTINEL_Z_M, present)
        return np.array([m.token for m in models]), out_t, out_q, present

    def to_scenario_scene(self, scenario: Scenario, *, ego_poses_recon: np.ndarray | None = None) -> ScenarioScene:
        """A :class:`ScenarioScene` in ``scenario``'s frame (scenario = recon + recon2world − (origin_xy, 0)).

        Rigid models whose token is a track of the scenario become actors (posed from its tracks, with z, roll
        and pitch from their nearest logged pose); static actors not in the scenario are baked into the
        background at their pose; dynamic ones not in the scenario are dropped (logged).
        ``ego_poses_recon``: ``[F, 4, 4]`` logged world_from_ego (rear axle, recon frame), e.g. WorldEngine's
        ``digitaltwin_ego2globals``; gives the ego camera its logged z, roll and pitch.
        """
        shift = self.recon2world_translation - np.array([*np.asarray(scenario.origin_xy, np.float64), 0.0])
        tracks = set(np.asarray(scenario.agents.track_ids).astype(str).tolist())
        bg_parts = [_shifted(s.gaussians(), shift) for s in self.static_models]
        by_token: dict[str, list[MTGSSubAsset]] = {}
        dropped = 0
        for s in self.actor_models:
            if s.token in tracks:
                by_token.setdefault(s.token, []).append(s)
            elif not s.is_dynamic and s.poses()[2][0]:
                t, q, _ = s.poses()
                g = s.gaussians()
                m, qq = actor_to_world(g.means, g.quats, q[0], t[0] + shift)
                bg_parts.append(GaussianScene(m.astype(np.float32), qq.astype(np.float32), g.scales, g.opacities, g.sh))
            else:
                dropped += 1
        if dropped:
            log.info("MTGS asset %s: %d dynamic actor(s) are not tracks of scenario %s and are left out",
                     self.path, dropped, scenario.scenario_id)
        tokens = list(by_token)
        actor_parts, logs = [], []
        for tok in tokens:  # one rigid model (or a few sharing the token) per actor
            actor_parts.append(GaussianScene.concat([s.gaussians() for s in by_token[tok]]))
            logs.append(by_token[tok][0].poses())
        actors = _merge_actors(actor_parts, tokens)
        f = max([len(t) for t, _, _ in logs], default=0)
        trans, quats, valid = np.zeros((len(logs), f, 3)), np.tile([1.0, 0, 0, 0], (len(logs), f, 1)), \
            np.zeros((len(logs), f), bool)
        for i, (t, q, v) in enumerate(logs):
            trans[i, :len(t)], quats[i, :len(t)], valid[i, :len(t)] = t + shift, q, v
        ego_log, ground = None, GroundHeight()
        if ego_poses_recon is not None:
            e = np.asarray(ego_poses_recon, np.float64).reshape(-1, 4, 4)
            et = e[:, :3, 3] + shift
            ego_log = PoseLog(et[None], quat_from_matrix(e[:, :3, :3])[None], np.ones((1, len(e)), bool))
            ground = GroundHeight(default_z=float(np.median(et[:, 2])))
        return ScenarioScene(
            background=GaussianScene.concat(bg_parts) if bg_parts else _empty(), actors=actors, scenario=scenario,
            ground=ground, ego_log=ego_log, actor_log=PoseLog(trans, quats, valid) if tokens else None,
            meta={"source": "mtgs", "path": self.path, "recon2world_translation": self.recon2world_translation.tolist()})


def _empty() -> GaussianScene:
    z = np.zeros((0, 3), np.float32)
    return GaussianScene(z, np.zeros((0, 4), np.float32), z.copy(), np.zeros(0, np.float32), np.zeros((0, 1, 3), np.float32))


def _shifted(g: GaussianScene, shift: np.ndarray) -> GaussianScene:
    return GaussianScene((g.means.astype(np.float64) + shift).astype(np.float32), g.quats, g.scales, g.opacities, g.sh)


def _merge_actors(parts: list[GaussianScene], tokens: list[str]) -> GaussianScene:
    """Actor ``i`` = ``parts[i]`` (box frame), ``actor_track_ids`` = ``tokens``; SH zero-padded to the largest K."""
    e = _empty()
    parts = parts or [e]
    k = max(p.sh.shape[1] for p in parts)
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    ids = np.repeat(np.arange(len(parts)), [p.num_gaussians for p in parts]).astype(np.int32)
    return GaussianScene(cat("means"), cat("quats"), cat("scales"), cat("opacities"),
                         np.concatenate([np.pad(p.sh, ((0, 0), (0, k - p.sh.shape[1]), (0, 0))) for p in parts]),
                         ids, np.array(tokens, dtype=str))


# ---------------------------------------------------------------------------------------------- loading
def _numpy_safe_globals() -> list:
    """The numpy globals a checkpoint needs to hold plain arrays and scalars (nothing executable)."""
    import numpy._core.multiarray as ma

    out: list = [ma._reconstruct, np.ndarray, np.dtype, ma.scalar,
                 (ma._reconstruct, "numpy.core.multiarray._reconstruct"), (ma.scalar, "numpy.core.multiarray.scalar")]
    for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
              "float64", "complex64", "complex128"):
        out.append(type(np.dtype(t)))
    return out


def _torch_load(path: Path, trust: bool) -> Any:
    torch = _torch()
    if trust:
        log.warning("%s: loading with full unpickling (trust=True); only do this for files you trust", path)
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        others = [g for g in found if not g.startswith("numpy")]
        if others:
            raise DataFormatError(f"{path}: the checkpoint needs globals {others} that a weights-only load refuses; "
                                  "it may execute code. If you trust the file, pass trust=True") from None
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                raise DataFormatError(f"{path}: weights-only load failed even with numpy arrays allowed ({exc}); "
                                      "pass trust=True only if you trust the file") from exc


def _check_sub_asset(path: Path, name: str, sub: Any) -> MTGSSubAsset:
    where = f"{path}: sub-asset {name!r}"
    if not isinstance(sub, Mapping) or "config" not in sub or "state_dict" not in sub:
        got = sorted(sub) if isinstance(sub, Mapping) else type(sub).__name__
        raise DataFormatError(f"{where}: expected a dict with keys 'config' and 'state_dict', found {got}")
    config, params = dict(_to_numpy(sub["config"])), _flatten(_to_numpy(sub["state_dict"]))
    params = {k: np.asarray(v) for k, v in params.items()}
    kind = config.get("type")
    if kind in _UNSUPPORTED:
        raise DataFormatError(f"{where}: config.type {kind!r} is not supported (WorldEngine ignores deformable "
                              f"models); remove it from the asset or convert it to {RIGID_TYPES}")
    if kind not in STATIC_TYPES + RIGID_TYPES:
        raise DataFormatError(f"{where}: key 'config.type': expected one of {STATIC_TYPES + RIGID_TYPES}, found {kind!r}")
    for k in _REQUIRED:
        if _GP + k not in params:
            raise DataFormatError(f"{where}: key 'state_dict.{_GP}{k}' is missing (found {sorted(params)})")
    if "sh_degree" not in config:
        rest = params.get(_GP + "features_rest")
        if rest is None or rest.ndim != 3 or rest.shape[1] + 1 not in (4, 9, 16):
            raise DataFormatError(f"{where}: key 'config.sh_degree' is missing and features_rest does not tell it")
        config["sh_degree"] = int(round(np.sqrt(rest.shape[1] + 1))) - 1
        log.warning("%s: config.sh_degree missing; inferred %d from features_rest", where, config["sh_degree"])
    deg = int(config["sh_degree"])
    if kind == "MirroredRigidSubModel" and deg != 3:
        raise DataFormatError(f"{where}: key 'config.sh_degree': mirrored models must be degree 3, found {deg}")
    if config.get("fourier_features_dim"):
        raise DataFormatError(f"{where}: key 'config.fourier_features_dim' = {config['fourier_features_dim']}: "
                              "time-varying colour is not supported; expected None")
    g = params[_GP + "means"].shape[0] if params[_GP + "means"].ndim == 2 else -1
    sd = int(config.get("scale_dim", 3))
    want = {"means": (g, 3), "scales": (g, sd), "quats": (g, 4),
            "features_dc": (g, 1, 3) if params[_GP + "features_dc"].ndim == 3 else (g, 3),
            "features_rest": (g, (deg + 1) ** 2 - 1, 3)}
    for k, shape in want.items():
        arr = params.get(_GP + k)
        if arr is None and k == "features_rest" and deg == 0:
            params[_GP + k] = np.zeros((g, 0, 3), params[_GP + "features_dc"].dtype)
            continue
        if arr is None:
            raise DataFormatError(f"{where}: key 'state_dict.{_GP}{k}' is missing; expected shape {list(shape)}")
        if arr.shape != shape or g < 0:
            raise DataFormatError(f"{where}: key 'state_dict.{_GP}{k}': expected shape {list(shape)} "
                                  f"(G = {g}, sh_degree = {deg}, scale_dim = {sd}), found {list(arr.shape)}")
    op = params[_GP + "opacities"]
    if op.shape not in ((g,), (g, 1)):
        raise DataFormatError(f"{where}: key 'state_dict.{_GP}opacities': expected shape [{g}, 1] or [{g}], found "
                              f"{list(op.shape)}")
    for k in _REQUIRED + ("features_rest",):
        if not np.isfinite(params[_GP + k]).all():
            raise DataFormatError(f"{where}: key 'state_dict.{_GP}{k}' holds NaN/Inf values")
    if sd != 1 and g > 0 and (np.abs(params[_GP + "quats"]).sum(1) == 0).any():
        raise DataFormatError(f"{where}: key 'state_dict.{_GP}quats': expected non-zero quaternions, found all-zero rows")
    if kind in RIGID_TYPES:
        _check_rigid(where, config, params)
    return MTGSSubAsset(name, config, params)


def _check_rigid(where: str, config: dict, params: dict) -> None:
    for k in ("instance_trans", "instance_quats"):
        if k not in params:
            raise DataFormatError(f"{where}: key 'state_dict.{k}' is missing; rigid models need their poses")
    tr, q = params["instance_trans"], params["instance_quats"]
    if tr.shape == (3,) and q.shape == (4,):
        return
    if tr.ndim != 2 or tr.shape[1] != 3 or q.shape != (tr.shape[0], 4):
        raise DataFormatError(f"{where}: keys 'state_dict.instance_trans/instance_quats': expected [F, 3] and [F, 4] "
                              f"(or [3] and [4] for a static actor), found {list(tr.shape)} and {list(q.shape)}")
    ts = config.get("log_timestamps")
    if ts is None:
        raise DataFormatError(f"{where}: key 'config.log_timestamps' is missing; dynamic rigid models need int64 µs "
                              f"timestamps, one per pose ({tr.shape[0]})")
    ts = np.asarray(ts)
    if ts.dtype.kind not in "iu":
        raise DataFormatError(f"{where}: key 'config.log_timestamps': expected int64 µs, found dtype {ts.dtype}")
    if ts.shape != (tr.shape[0],):
        raise DataFormatError(f"{where}: key 'config.log_timestamps': expected F = {tr.shape[0]} entries (as "
                              f"instance_trans), found shape {list(ts.shape)}")
    if (np.diff(ts.astype(np.int64)) < 0).any():
        raise DataFormatError(f"{where}: key 'config.log_timestamps': expected sorted timestamps, found a decrease")


def load_mtgs_asset(path: str | Path, *, trust: bool = False) -> MTGSAsset:
    """Load and validate an MTGS portable asset checkpoint (spec §7.1, §8.2).

    Uses ``torch.load(weights_only=True)``; if that fails only because of numpy arrays, retries with numpy's
    array globals allowed. A full unpickle needs ``trust=True`` (a checkpoint is executable pickle).

    Returns:
        MTGSAsset: sub-assets in file order with their stored values; ``recon2world_translation [3]`` float64
        from the background config (zeros, with a warning, when no model carries it).
    Raises:
        MissingFileError, CorruptFileError (not a torch checkpoint), DataFormatError naming the sub-asset, the
        key, what was expected and what was found (DeformableSubModel included).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such MTGS asset; expected <asset_root>/<id>/background/<id>.ckpt")
    try:
        data = _torch_load(path, trust)
    except (DataFormatError, MissingDependencyError):
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        raise CorruptFileError(f"{path}: cannot read as a torch checkpoint ({type(exc).__name__}: {exc}); the file is "
                               "truncated or not an MTGS asset") from exc
    if not isinstance(data, Mapping) or not data:
        raise DataFormatError(f"{path}: expected a non-empty dict {{asset_name: sub_asset}}, found {type(data).__name__}")
    subs = tuple(_check_sub_asset(path, str(name), sub) for name, sub in data.items())
    r2w = next((s.config["recon2world_translation"] for s in subs if s.config.get("recon2world_translation") is not None),
               None)
    if r2w is None:
        log.warning("%s: no model carries config.recon2world_translation; using (0, 0, 0)", path)
        r2w = np.zeros(3)
    r2w = np.asarray(r2w, np.float64).reshape(-1)
    if r2w.shape != (3,) or not np.isfinite(r2w).all():
        raise DataFormatError(f"{path}: key 'config.recon2world_translation': expected 3 finite numbers, found {r2w}")
    return MTGSAsset(subs, r2w, str(path))


# ---------------------------------------------------------------------------------------------- writing
def _to_torch(value: Any) -> Any:
    torch = _torch()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Mapping):
        return {k: _to_torch(v) for k, v in value.items()}
    return value


def write_mtgs_asset(path: str | Path, asset: MTGSAsset | Mapping[str, Any]) -> Path:
    """Write an asset as ``{name: {"config", "state_dict" (flat keys)}}`` with ``torch.save``, atomically.

    Args:
        asset: an :class:`MTGSAsset` (e.g. from :func:`load_mtgs_asset`), or a mapping ``{name: MTGSSubAsset}`` or
            ``{name: {"config": ..., "state_dict": ...}}`` (nested or flat keys; numpy or torch values).
    Numpy arrays are written as CPU tensors (loadable with ``weights_only=True``); values keep their bits.
    """
    torch = _torch()
    path = Path(path)
    items = asset.sub_assets if isinstance(asset, MTGSAsset) else [
        v if isinstance(v, MTGSSubAsset) else MTGSSubAsset(str(k), dict(_to_numpy(v["config"])),
                                                           _flatten(_to_numpy(v["state_dict"])))
        for k, v in asset.items()]
    out = {s.name: {"config": _to_torch(dict(s.config)),
                    "state_dict": {k: _to_torch(np.asarray(v)) for k, v in s.params.items()}} for s in items}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(out, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
