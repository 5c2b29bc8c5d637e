"""TrajectoryVocabulary: k-means fit, determinism, nearest-entry lookup, persistence and input errors."""
from __future__ import annotations

import pytest
import torch

from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingFileError, ShapeError
from worldengine_lab.planners import TrajectoryVocabulary
from worldengine_lab.planners.vocabulary import _update_centres

SPEEDS = (3.0, 8.0, 13.0, 18.0)  # m/s
YAW_RATES = (-0.15, 0.0, 0.15)  # rad/s


def _arcs(speed: torch.Tensor, yaw_rate: torch.Tensor) -> torch.Tensor:
    """``[M, 40, 3]`` constant-speed, constant-yaw-rate plans in the body frame (integrated at 0.1 s)."""
    t = torch.arange(1, 41, dtype=torch.float64) * 0.1
    yaw = yaw_rate[:, None] * t  # [M, 40]
    mid = yaw - 0.05 * yaw_rate[:, None]  # heading at the middle of each step
    x = torch.cumsum(0.1 * speed[:, None] * torch.cos(mid), dim=1)
    y = torch.cumsum(0.1 * speed[:, None] * torch.sin(mid), dim=1)
    return torch.stack([x, y, yaw], dim=-1).float()


def _clustered(per_cluster: int = 25, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy arcs around 12 (speed, yaw rate) prototypes; returns futures ``[M, 40, 3]`` and labels ``[M]``."""
    g = torch.Generator().manual_seed(seed)
    v, w = torch.meshgrid(torch.tensor(SPEEDS), torch.tensor(YAW_RATES), indexing="ij")
    v, w = v.reshape(-1).repeat_interleave(per_cluster), w.reshape(-1).repeat_interleave(per_cluster)
    labels = torch.arange(len(SPEEDS) * len(YAW_RATES)).repeat_interleave(per_cluster)
    v = v + 0.1 * torch.randn(v.shape, generator=g)
    w = w + 0.005 * torch.randn(w.shape, generator=g)
    return _arcs(v.double(), w.double()), labels


def test_fit_recovers_the_cluster_structure() -> None:
    futures, labels = _clustered()
    vocab = TrajectoryVocabulary.fit(futures, size=12, seed=0)
    assert len(vocab) == 12 and vocab.trajectories.shape == (12, 40, 3)
    assert vocab.trajectories.dtype == torch.float32
    assign = vocab.nearest(futures)
    # every true cluster maps to one entry, and different clusters to different entries
    entry_of = torch.stack([assign[labels == c].mode().values for c in range(12)])
    for c in range(12):
        assert bool((assign[labels == c] == entry_of[c]).all())
    assert len(set(entry_of.tolist())) == 12
    # the entries sit near the noiseless prototypes
    v, w = torch.meshgrid(torch.tensor(SPEEDS), torch.tensor(YAW_RATES), indexing="ij")
    protos = _arcs(v.reshape(-1).double(), w.reshape(-1).double())
    assert float(vocab.distances(protos).min(dim=1).values.max()) < 0.5  # m, RMS over the poses


def test_fit_is_deterministic_for_a_seed() -> None:
    futures, _ = _clustered(per_cluster=10)
    a = TrajectoryVocabulary.fit(futures, size=8, seed=3)
    b = TrajectoryVocabulary.fit(futures, size=8, seed=3)
    assert torch.equal(a.trajectories, b.trajectories)


def test_nearest_of_the_entries_is_their_index() -> None:
    futures, _ = _clustered(per_cluster=10)
    vocab = TrajectoryVocabulary.fit(futures, size=20, seed=1)
    idx = vocab.nearest(vocab.trajectories)
    assert idx.dtype == torch.int64
    assert torch.equal(idx, torch.arange(20))


def test_fit_with_size_equal_to_the_number_of_futures_keeps_every_future() -> None:
    futures = _arcs(torch.tensor([1.0, 5.0, 9.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    vocab = TrajectoryVocabulary.fit(futures, size=3, seed=0)
    order = vocab.nearest(futures)
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(vocab.trajectories[order], futures)


def test_empty_clusters_are_reseeded_from_the_farthest_point() -> None:
    feats = torch.tensor([[0.0], [1.0], [10.0], [30.0]], dtype=torch.float64)
    assign = torch.tensor([0, 0, 1, 1])
    near = torch.tensor([0.5, 0.5, 10.0, 10.0], dtype=torch.float64)
    centres = _update_centres(feats, assign, near, k=3)
    torch.testing.assert_close(centres[:2], torch.tensor([[0.5], [20.0]], dtype=torch.float64))
    assert float(centres[2, 0]) == 10.0  # the first of the farthest points


def test_save_load_round_trip_is_exact(tmp_path) -> None:
    futures, _ = _clustered(per_cluster=5)
    vocab = TrajectoryVocabulary.fit(futures, size=6, seed=0, yaw_weight_m_per_rad=3.0)
    path = vocab.save(tmp_path / "sub" / "vocab.pt")
    back = TrajectoryVocabulary.load(path)
    assert torch.equal(back.trajectories, vocab.trajectories)
    assert back.yaw_weight_m_per_rad == 3.0
    # the dict form lives inside a weights-only checkpoint
    torch.save({"vocabulary": vocab.to_dict()}, tmp_path / "ckpt.pt")
    data = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert torch.equal(TrajectoryVocabulary.from_dict(data["vocabulary"]).trajectories, vocab.trajectories)
    assert not list((tmp_path / "sub").glob("*.tmp"))  # the atomic write leaves no temporary file


def test_bad_inputs_raise_clear_errors(tmp_path) -> None:
    futures, _ = _clustered(per_cluster=2)
    with pytest.raises(ShapeError, match=r"\[M, 40, 3\].*\[24, 40, 2\]"):
        TrajectoryVocabulary.fit(futures[..., :2], size=4)
    nan = futures.clone()
    nan[3, 5, 1] = float("nan")
    with pytest.raises(ShapeError, match="NaN/inf in 1 of 24"):
        TrajectoryVocabulary.fit(nan, size=4)
    with pytest.raises(DataFormatError, match="at least size = 30 futures, received M = 24"):
        TrajectoryVocabulary.fit(futures, size=30)
    vocab = TrajectoryVocabulary.fit(futures, size=4)
    with pytest.raises(ShapeError, match="nearest"):
        vocab.nearest(futures[0])
    with pytest.raises(MissingFileError, match="absent.pt"):
        TrajectoryVocabulary.load(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CorruptFileError, match="garbage.pt"):
        TrajectoryVocabulary.load(garbage)
    wrong = tmp_path / "wrong.pt"
    torch.save({"version": 1, "trajectories": torch.zeros(4, 40, 2)}, wrong)
    with pytest.raises(CorruptFileError, match=r"wrong.pt.*\[4, 40, 2\]"):
        TrajectoryVocabulary.load(wrong)
    bad = vocab.to_dict()
    bad["trajectories"][0, 0, 0] = float("inf")
    torch.save(bad, tmp_path / "inf.pt")
    with pytest.raises(CorruptFileError, match="inf.pt"):
        TrajectoryVocabulary.load(tmp_path / "inf.pt")
    future_version = dict(vocab.to_dict(), version=99)
    torch.save(future_version, tmp_path / "v99.pt")
    with pytest.raises(CorruptFileError, match="version 1, received 99"):
        TrajectoryVocabulary.load(tmp_path / "v99.pt")
