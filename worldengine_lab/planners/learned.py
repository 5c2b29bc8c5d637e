"""A learned vocabulary-scoring planner in the World Engine / Hydra-MDP style (spec/post-training.md, policy).

:class:`VocabularyScorer` encodes the scene (an ego token, agent tokens from an MLP over their history, lane tokens
from an MLP over the resampled centreline points) with a transformer encoder; each of the K vocabulary
candidates is embedded (Fourier features of its 40 body-frame poses -> MLP), added to the ego encoding and
cross-attends to the scene tokens. Per candidate it outputs an imitation logit (softmax over K = the policy
pi) and five sub-score logits in the order NC, DAC, TTC, C, EP (sigmoid = predicted PDM sub-scores).

:func:`select` picks the candidate maximising
``w_im log pi + w_nc log NC + w_dac log DAC + w_score log(w_ttc TTC + w_c C + w_ep EP)``
(World Engine's default weights in :class:`SelectionWeights`). :class:`LearnedPlanner` wraps features, model,
selection and vocabulary as a :class:`~worldengine_lab.planners.Planner`; checkpoints are plain dicts readable
with ``torch.load(weights_only=True)`` (:func:`save_checkpoint`, :func:`load_checkpoint`).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import CorruptFileError, DataFormatError, ShapeError
from ..tensor_files import brief_error, load_tensors, save_tensors
from .base import PLAN_NUM_POSES, Observation
from .candidate_geometry import CHECK_POSES, GEOMETRY_DIM, candidate_geometry
from .features import (AGENT_DIM, EGO_DIM, LANE_DIM, FeatureConfig, SceneFeatures, _config_from_dict,
                       extract_features)
from .vocabulary import TrajectoryVocabulary

__all__ = ["ModelConfig", "SelectionWeights", "ScorerOutput", "TopK", "VocabularyScorer", "LearnedPlanner",
           "selection_scores", "select", "save_checkpoint", "load_checkpoint", "SUBSCORE_NAMES",
           "CHECKPOINT_FORMAT_VERSION"]

SUBSCORE_NAMES = ("nc", "dac", "ttc", "c", "ep")
"""Order of the sub-score heads: no collision, drivable-area compliance, time to collision, comfort, progress."""
CHECKPOINT_FORMAT_VERSION = 1
"""Version of the checkpoint dict written by :func:`save_checkpoint`."""

_POSE_SCALE = (40.0, 10.0, 1.0)  # x m, y m, yaw rad -> O(1) before the Fourier encoding
_LOG_CLAMP = 1e-6  # floor of the weighted sub-score sum inside the log


@dataclass(frozen=True)
class ModelConfig:
    """Size of a :class:`VocabularyScorer`.

    Attributes:
        vocab_size: K, candidates scored (the vocabulary's length).
        d_model: token width; heads: attention heads (must divide d_model); layers: scene encoder layers.
        dropout: dropout in the attention blocks.
        fourier_bands: frequencies of the candidate pose encoding (sin/cos at pi * 2^i, i < bands).
        history_steps: H of the agent features (:class:`FeatureConfig.history_steps`).
        lane_points: P of the lane features (:class:`FeatureConfig.lane_points`).
        ego_dim / agent_dim / lane_dim: feature widths (defaults: :mod:`.features`).
        candidate_geometry: add each candidate's distances to lanes, route and agents
            (:mod:`.candidate_geometry`) to its embedding.
    """

    vocab_size: int = 256
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.0
    fourier_bands: int = 4
    history_steps: int = 5
    lane_points: int = 20
    ego_dim: int = EGO_DIM
    agent_dim: int = AGENT_DIM
    lane_dim: int = LANE_DIM
    candidate_geometry: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "heads", "layers", "history_steps", "lane_points", "ego_dim", "agent_dim",
                     "lane_dim"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise DataFormatError(f"ModelConfig.{name}: expected an int >= 1, received {v!r}")
        if not (isinstance(self.fourier_bands, int) and self.fourier_bands >= 0):
            raise DataFormatError(f"ModelConfig.fourier_bands: expected an int >= 0, received {self.fourier_bands!r}")
        if self.d_model % self.heads:
            raise DataFormatError(f"ModelConfig.heads: expected a divisor of d_model = {self.d_model}, received "
                                  f"{self.heads}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise DataFormatError(f"ModelConfig.dropout: expected a probability in [0, 1), received {self.dropout!r}")

    @staticmethod
    def for_features(feature_config: FeatureConfig, vocab_size: int, **sizes: Any) -> "ModelConfig":
        """A config matching ``feature_config`` (history length, lane points) for ``vocab_size`` candidates."""
        return ModelConfig(vocab_size=vocab_size, history_steps=feature_config.history_steps,
                           lane_points=feature_config.lane_points, **sizes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-like dict of the fields."""
        return asdict(self)

    @staticmethod
    def from_dict(data: Any) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; raises DataFormatError on a non-dict or unknown keys."""
        return _config_from_dict(ModelConfig, data)


@dataclass(frozen=True)
class SelectionWeights:
    """Weights of the selection score (World Engine's defaults)."""

    imitation: float = 0.05
    nc: float = 0.5
    dac: float = 0.5
    score: float = 8.0
    ttc: float = 5.0
    comfort: float = 2.0
    ep: float = 5.0


class ScorerOutput(NamedTuple):
    """Raw outputs for B scenes and K candidates.

    Attributes:
        logits: ``[B, K]`` imitation logits (``softmax`` = pi).
        subscore_logits: ``[B, K, 5]`` logits of NC, DAC, TTC, C, EP (``sigmoid`` = probabilities in [0, 1]).
    """

    logits: torch.Tensor
    subscore_logits: torch.Tensor


class TopK(NamedTuple):
    """The k best candidates per scene by selection score, best first (from :meth:`LearnedPlanner.top_k`).

    Attributes:
        indices: ``[B, k]`` int64 vocabulary indices.
        scores: ``[B, k]`` selection scores (:func:`selection_scores`).
        policy: ``[B, k]`` imitation probabilities pi.
        subscores: ``[B, k, 5]`` predicted NC, DAC, TTC, C, EP probabilities.
    """

    indices: torch.Tensor
    scores: torch.Tensor
    policy: torch.Tensor
    subscores: torch.Tensor


# ------------------------------------------------------------------------------------------------------ model
def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class VocabularyScorer(nn.Module):
    """Scores the K candidates of a fixed vocabulary for B scenes (see the module docstring).

    Args:
        config: model sizes; ``config.vocab_size`` must equal K.
        candidates: ``[K, 40, 3]`` the vocabulary's body-frame poses (x m, y m, yaw rad); kept as a
            non-persistent buffer (checkpoints store the vocabulary separately).
    """

    candidates: torch.Tensor  # [K, 40, 3] float32 buffer

    def __init__(self, config: ModelConfig, candidates: torch.Tensor) -> None:
        super().__init__()
        if tuple(candidates.shape) != (config.vocab_size, PLAN_NUM_POSES, 3):
            raise ShapeError(f"VocabularyScorer(candidates): expected [vocab_size={config.vocab_size}, "
                             f"{PLAN_NUM_POSES}, 3], received {list(candidates.shape)}; build the ModelConfig with "
                             "vocab_size=len(vocabulary)")
        self.config = config
        d = config.d_model
        self.register_buffer("candidates", candidates.detach().float().clone(), persistent=False)
        self.ego_encoder = _mlp(config.ego_dim, d, d)
        self.agent_encoder = _mlp(config.history_steps * config.agent_dim, d, d)
        self.lane_encoder = _mlp(config.lane_points * config.lane_dim, d, d)
        self.token_type = nn.Embedding(3, d)  # ego, agent, lane
        layer = nn.TransformerEncoderLayer(d, config.heads, dim_feedforward=2 * d, dropout=config.dropout,
                                           batch_first=True, norm_first=True)
        self.scene_encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.scene_norm = nn.LayerNorm(d)
        pose_dim = PLAN_NUM_POSES * 3 * (1 + 2 * config.fourier_bands)
        self.candidate_encoder = _mlp(pose_dim, d, d)
        self.geometry_encoder = _mlp(len(CHECK_POSES) * GEOMETRY_DIM, d, d) if config.candidate_geometry else None
        self.query_norm = nn.LayerNorm(d)
        self.cross_attention = nn.MultiheadAttention(d, config.heads, dropout=config.dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = _mlp(d, d, d)
        self.head = nn.Sequential(nn.LayerNorm(d), _mlp(d, d, 1 + len(SUBSCORE_NAMES)))

    def encode_candidates(self) -> torch.Tensor:
        """``[K, d_model]`` embeddings of the vocabulary (Fourier features of the scaled poses -> MLP)."""
        p = self.candidates / self.candidates.new_tensor(_POSE_SCALE)  # [K, 40, 3]
        parts = [p]
        for i in range(self.config.fourier_bands):  # a handful of bands, not a data loop
            parts += [torch.sin(math.pi * 2.0 ** i * p), torch.cos(math.pi * 2.0 ** i * p)]
        return self.candidate_encoder(torch.cat(parts, dim=-1).flatten(1))

    def encode_scene(self, features: SceneFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scene tokens ``[B, 1 + A + L, d]``, their padding mask ``[B, 1 + A + L]`` (True = ignore) and the ego
        encoding ``[B, d]``. The ego token is never masked, so no row of the mask is all True."""
        self._check(features)
        b = features.batch_size
        ego = self.ego_encoder(features.ego)  # [B, d]
        agents = self.agent_encoder(features.agents.flatten(2))  # [B, A, d]
        lanes = self.lane_encoder(features.lanes.flatten(2))  # [B, L, d]
        kinds = self.token_type.weight
        tokens = torch.cat([(ego + kinds[0]).unsqueeze(1), agents + kinds[1], lanes + kinds[2]], dim=1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=ego.device), ~features.agents_mask,
                         ~features.lanes_mask], dim=1)
        tokens = self.scene_norm(self.scene_encoder(tokens, src_key_padding_mask=pad))
        return tokens, pad, ego

    def forward(self, features: SceneFeatures, geometry: torch.Tensor | None = None) -> ScorerOutput:
        """:class:`ScorerOutput` with ``logits [B, K]`` and ``subscore_logits [B, K, 5]``.

        ``geometry``: precomputed :func:`~.candidate_geometry.candidate_geometry` of these features and this
        model's candidates (it has no parameters, so training may compute it once per state); computed here
        when None.
        """
        tokens, pad, ego = self.encode_scene(features)
        q = self.encode_candidates().unsqueeze(0) + ego.unsqueeze(1)  # [B, K, d]
        if self.geometry_encoder is not None:
            geo = candidate_geometry(features, self.candidates) if geometry is None else geometry
            q = q + self.geometry_encoder(geo.flatten(2))
        qn = self.query_norm(q)
        att, _ = self.cross_attention(qn, tokens, tokens, key_padding_mask=pad, need_weights=False)
        q = q + att
        q = q + self.ffn(self.ffn_norm(q))
        out = self.head(q)  # [B, K, 6]
        return ScorerOutput(logits=out[..., 0], subscore_logits=out[..., 1:])

    def _check(self, f: SceneFeatures) -> None:
        c = self.config
        b = f.ego.shape[0]
        checks = (("ego", f.ego, (b, c.ego_dim)),
                  ("agents", f.agents, (b, f.agents.shape[1], c.history_steps, c.agent_dim)),
                  ("agents_mask", f.agents_mask, (b, f.agents.shape[1])),
                  ("lanes", f.lanes, (b, f.lanes.shape[1], c.lane_points, c.lane_dim)),
                  ("lanes_mask", f.lanes_mask, (b, f.lanes.shape[1])))
        for name, x, shape in checks:
            if x.ndim != len(shape) or tuple(x.shape) != shape:
                raise ShapeError(f"VocabularyScorer(features.{name}): expected shape {list(shape)} (ModelConfig: "
                                 f"history_steps={c.history_steps}, lane_points={c.lane_points}, ego/agent/lane dims "
                                 f"{c.ego_dim}/{c.agent_dim}/{c.lane_dim}), received {list(x.shape)}; extract features "
                                 "with the FeatureConfig the model was built for")


# -------------------------------------------------------------------------------------------------- selection
def selection_scores(output: ScorerOutput, weights: SelectionWeights = SelectionWeights()) -> torch.Tensor:
    """``[B, K]`` selection score of every candidate:
    ``w_im log pi + w_nc log NC + w_dac log DAC + w_score log(w_ttc TTC + w_c C + w_ep EP)``
    (log-sigmoids for NC and DAC; the weighted sum is floored at 1e-6 before its log)."""
    sub = output.subscore_logits
    if sub.shape != (*output.logits.shape, len(SUBSCORE_NAMES)):
        raise ShapeError(f"selection_scores(output): expected subscore_logits {[*output.logits.shape, 5]} to match "
                         f"logits {list(output.logits.shape)}, received {list(sub.shape)}")
    w = weights
    prob = torch.sigmoid(sub)
    mix = w.ttc * prob[..., 2] + w.comfort * prob[..., 3] + w.ep * prob[..., 4]
    return (w.imitation * torch.log_softmax(output.logits, dim=-1)
            + w.nc * nn.functional.logsigmoid(sub[..., 0])
            + w.dac * nn.functional.logsigmoid(sub[..., 1])
            + w.score * torch.log(mix.clamp(min=_LOG_CLAMP)))


def select(output: ScorerOutput, weights: SelectionWeights = SelectionWeights()) -> torch.Tensor:
    """``[B]`` int64: the candidate with the highest :func:`selection_scores` in each scene."""
    return selection_scores(output, weights).argmax(dim=-1)


# ---------------------------------------------------------------------------------------------------- planner
class LearnedPlanner:
    """A :class:`~worldengine_lab.planners.Planner` that drives the vocabulary entry :func:`select` picks.

    Args:
        model: the scorer (its ``vocab_size`` must equal ``len(vocabulary)``).
        vocabulary: the K candidate plans.
        feature_config: how features are extracted (as in training).
        weights: selection weights.
        planner_id: name in rollouts and tables.
    """

    def __init__(self, model: VocabularyScorer, vocabulary: TrajectoryVocabulary,
                 feature_config: FeatureConfig = FeatureConfig(), weights: SelectionWeights = SelectionWeights(),
                 planner_id: str = "learned") -> None:
        _check_pair(model, vocabulary, "LearnedPlanner(model, vocabulary)")
        mc = model.config
        if (mc.history_steps, mc.lane_points) != (feature_config.history_steps, feature_config.lane_points):
            raise ShapeError(f"LearnedPlanner(feature_config): expected history_steps = {mc.history_steps} and "
                             f"lane_points = {mc.lane_points} (the model's), received {feature_config.history_steps} "
                             f"and {feature_config.lane_points}; use the FeatureConfig the model was trained with")
        self.model = model
        self.vocabulary = vocabulary
        self.feature_config = feature_config
        self.weights = weights
        self.planner_id = planner_id

    @staticmethod
    def from_checkpoint(path: str | os.PathLike[str], weights: SelectionWeights | None = None,
                        planner_id: str | None = None) -> "LearnedPlanner":
        """A planner from a :func:`save_checkpoint` file (default id ``"learned:<file stem>"``)."""
        model, vocab, fcfg, _ = load_checkpoint(path)
        return LearnedPlanner(model, vocab, fcfg, weights or SelectionWeights(),
                              planner_id or f"learned:{Path(path).stem}")

    def score(self, obs: Observation) -> ScorerOutput:
        """Model outputs for ``obs`` (eval mode, no gradients; the model's training flag is restored)."""
        feats = extract_features(obs, self.feature_config)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(feats.to(device))
        finally:
            self.model.train(was_training)
        return ScorerOutput(out.logits.cpu(), out.subscore_logits.cpu())

    def plan(self, obs: Observation) -> torch.Tensor:
        """``[B, 40, 3]`` body-frame rear-axle poses (x m, y m, yaw rad) at 0.1 .. 4.0 s, in ``obs.dtype``."""
        idx = select(self.score(obs), self.weights)
        return self.vocabulary.trajectories[idx].to(obs.dtype)

    def top_k(self, obs: Observation, k: int = 5) -> TopK:
        """The ``k`` best candidates per scene with their selection scores, pi and sub-score probabilities."""
        if not (isinstance(k, int) and 1 <= k <= len(self.vocabulary)):
            raise DataFormatError(f"LearnedPlanner.top_k(k): expected an int in [1, {len(self.vocabulary)}], "
                                  f"received {k!r}")
        out = self.score(obs)
        scores, idx = selection_scores(out, self.weights).topk(k, dim=-1)
        policy = torch.softmax(out.logits, dim=-1).gather(1, idx)
        sub = torch.sigmoid(out.subscore_logits).gather(1, idx.unsqueeze(-1).expand(-1, -1, len(SUBSCORE_NAMES)))
        return TopK(indices=idx, scores=scores, policy=policy, subscores=sub)


# ------------------------------------------------------------------------------------------------- checkpoints
_CHECKPOINT_KEYS = ("format_version", "model_config", "state_dict", "vocabulary", "feature_config", "extra")


def save_checkpoint(path: str | os.PathLike[str], model: VocabularyScorer, vocabulary: TrajectoryVocabulary,
                    feature_config: FeatureConfig, extra: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint readable by ``torch.load(weights_only=True)``; return the path.

    The file holds ``{format_version, model_config, state_dict, vocabulary, feature_config, extra}`` with plain
    dicts, tensors and numbers only.

    Raises:
        ShapeError: the model was not built for this vocabulary.
        DataFormatError: ``extra`` holds values other than None, bool, int, float, str, lists/tuples and dicts
            with str keys.
    """
    _check_pair(model, vocabulary, "save_checkpoint(model, vocabulary)")
    extra = {} if extra is None else extra
    _check_plain(extra, "save_checkpoint(extra)")
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "vocabulary": vocabulary.to_dict(),
        "feature_config": feature_config.to_dict(),
        "extra": extra,
    }
    return save_tensors(path, payload)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[VocabularyScorer, TrajectoryVocabulary, FeatureConfig,
                                                           dict[str, Any]]:
    """Read a :func:`save_checkpoint` file with ``torch.load(weights_only=True, map_location="cpu")``.

    Returns:
        ``(model in eval mode, vocabulary, feature config, extra)``.

    Raises:
        MissingFileError: ``path`` does not exist.
        CorruptFileError: unreadable, an unknown format version, or inconsistent contents (names the file).
    """
    p = Path(path)
    what = f"checkpoint {str(p)!r}"
    data = load_tensors(p, "checkpoint", "write one with save_checkpoint")
    if not isinstance(data, dict) or any(k not in data for k in _CHECKPOINT_KEYS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CorruptFileError(f"{what}: expected a dict with keys {list(_CHECKPOINT_KEYS)}, received {got}; "
                               "is it a LearnedPlanner checkpoint?")
    if data["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CorruptFileError(f"{what}: expected format_version {CHECKPOINT_FORMAT_VERSION}, received "
                               f"{data['format_version']!r}; re-save it with this version of worldengine_lab")
    try:
        vocab = TrajectoryVocabulary.from_dict(data["vocabulary"], source=f"{what}, vocabulary")
        mcfg = ModelConfig.from_dict(data["model_config"])
        fcfg = FeatureConfig.from_dict(data["feature_config"])
        model = VocabularyScorer(mcfg, vocab.trajectories)
        model.load_state_dict(data["state_dict"], strict=True)
    except (DataFormatError, ShapeError, RuntimeError, TypeError) as e:
        raise CorruptFileError(f"{what}: inconsistent contents ({brief_error(e)}); re-create it with save_checkpoint") from e
    if not isinstance(data["extra"], dict):
        raise CorruptFileError(f"{what}: expected 'extra' to be a dict, received {type(data['extra']).__name__}")
    return model.eval(), vocab, fcfg, data["extra"]


def _check_pair(model: VocabularyScorer, vocabulary: TrajectoryVocabulary, where: str) -> None:
    """Raise ShapeError unless ``model`` was built on exactly the candidates of ``vocabulary``."""
    if model.config.vocab_size != len(vocabulary):
        raise ShapeError(f"{where}: expected a model for {len(vocabulary)} candidates, received one for "
                         f"{model.config.vocab_size}; pair the model with the vocabulary it was built on")
    if not torch.equal(model.candidates.cpu(), vocabulary.trajectories):
        raise ShapeError(f"{where}: the model's candidates differ from the vocabulary's trajectories; pair the model "
                         "with the vocabulary it was built on")



def _check_plain(x: Any, where: str) -> None:
    """Raise DataFormatError unless ``x`` is JSON-like (None, bool, int, float, str, list/tuple, str-keyed dict)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return
    if isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise DataFormatError(f"{where}: expected str keys, received {type(k).__name__} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise DataFormatError(f"{where}: expected plain JSON-like values (None, bool, int, float, str, list, dict), "
                          f"received {type(x).__name__}; convert it first (e.g. tensor.tolist())")
