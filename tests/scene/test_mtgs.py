"""MTGS / World Engine portable assets (spec gaussian-splatting.md §7.1, §7.2, §8.2)."""
from __future__ import annotations

import fractions

import numpy as np
import pytest
import torch

from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingFileError
from worldengine_lab.scene.compose import quat_from_yaw
from worldengine_lab.scene.mtgs import load_mtgs_asset, write_mtgs_asset
from worldengine_lab.scene.ply import SH_C0
from worldengine_lab.testing import make_scenario

T0_US = 1_620_000_000_000_000


def _gauss(g: int, degree: int, seed: int, scale_dim: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return {"means": torch.randn(g, 3, generator=gen), "scales": torch.randn(g, scale_dim, generator=gen) - 2,
            "quats": torch.randn(g, 4, generator=gen), "features_dc": torch.randn(g, 3, generator=gen),
            "features_rest": torch.randn(g, k - 1, 3, generator=gen), "opacities": torch.randn(g, 1, generator=gen)}


def _asset(flat: bool) -> dict:
    """background (degree 3), skybox (degree 0, isotropic), static / dynamic / mirrored rigid actors."""
    def sd(gp: dict, **extra) -> dict:
        if flat:
            return {**{f"gauss_params.{k}": v for k, v in gp.items()}, **extra}
        return {"gauss_params": gp, **extra}

    yaw = torch.tensor(quat_from_yaw(np.array([0.0, np.pi / 2, 0.0, 0.0])), dtype=torch.float32)
    dyn_trans = torch.tensor([[0.0, 0, 0.8], [10.0, 0, 0.8], [0.0, 0.0, 100000.0], [30.0, 0, 0.8]])
    return {
        "background": {"config": {"type": "VanillaGaussianSplattingModel", "sh_degree": 3,
                                  "recon2world_translation": [331000.0, 4690000.0, 10.0]},
                       "state_dict": sd(_gauss(40, 3, 0))},
        "skybox": {"config": {"type": "SkyboxGaussianSplattingModel", "sh_degree": 0, "scale_dim": 1,
                              "skybox_radius": 1500.0},
                   "state_dict": sd({k: v for k, v in _gauss(10, 0, 1, scale_dim=1).items() if k != "features_rest"})},
        "rigid_aaaa": {"config": {"type": "RigidSubModel", "sh_degree": 3},
                       "state_dict": sd(_gauss(7, 3, 2), instance_trans=torch.tensor([5.0, -3.0, 0.9]),
                                        instance_quats=torch.tensor([1.0, 0.0, 0.0, 0.0]))},
        "rigid_veh1": {"config": {"type": "RigidSubModel", "sh_degree": 3,
                                  "log_timestamps": torch.tensor([T0_US + i * 100_000 for i in range(4)])},
                       "state_dict": sd(_gauss(5, 3, 3), instance_trans=dyn_trans, instance_quats=yaw)},
        "mirrored_veh2": {"config": {"type": "MirroredRigidSubModel", "sh_degree": 3},
                          "state_dict": sd(_gauss(6, 3, 4), instance_trans=torch.tensor([40.0, 0.0, 0.7]),
                                           instance_quats=torch.tensor([1.0, 0.0, 0.0, 0.0]))},
    }


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "flat.ckpt"
    torch.save(_asset(flat=True), path)
    return path


def test_flat_and_nested_keys_load_the_same(tmp_path, ckpt):
    nested = tmp_path / "nested.ckpt"
    torch.save(_asset(flat=False), nested)
    a, b = load_mtgs_asset(ckpt), load_mtgs_asset(nested)
    assert [s.name for s in a.sub_assets] == ["background", "skybox", "rigid_aaaa", "rigid_veh1", "mirrored_veh2"]
    assert [s.token for s in a.sub_assets] == ["background", "skybox", "aaaa", "veh1", "veh2"]
    for sa, sb in zip(a.sub_assets, b.sub_assets):
        assert sorted(sa.params) == sorted(sb.params)
        for k in sa.params:
            np.testing.assert_array_equal(sa.params[k], sb.params[k])
    np.testing.assert_array_equal(a.recon2world_translation, [331000.0, 4690000.0, 10.0])
    assert a.recon2world_translation.dtype == np.float64


def test_activation_per_model(ckpt):
    asset = load_mtgs_asset(ckpt)
    bg, sky, static, dyn, mirrored = asset.sub_assets
    raw = bg.params
    g = bg.gaussians()
    np.testing.assert_allclose(g.scales, np.exp(raw["gauss_params.scales"]), rtol=1e-6)
    np.testing.assert_allclose(g.opacities, 1 / (1 + np.exp(-raw["gauss_params.opacities"][:, 0])), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(g.quats, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(g.sh[:, 0], raw["gauss_params.features_dc"])
    np.testing.assert_array_equal(g.sh[:, 1:], raw["gauss_params.features_rest"])
    s = sky.gaussians()  # degree 0: colour = sigmoid(features_dc) as band 0; scale_dim 1: isotropic, identity
    assert s.sh.shape == (10, 1, 3)
    np.testing.assert_allclose(0.5 + SH_C0 * s.sh[:, 0], 1 / (1 + np.exp(-sky.params["gauss_params.features_dc"])),
                               rtol=1e-5)
    np.testing.assert_allclose(s.scales, np.repeat(np.exp(sky.params["gauss_params.scales"]), 3, 1), rtol=1e-6)
    np.testing.assert_array_equal(s.quats, np.tile([1, 0, 0, 0], (10, 1)))
    m = mirrored.gaussians()  # 2G: originals then copies mirrored through the local xz plane
    assert m.num_gaussians == 12
    np.testing.assert_allclose(m.means[6:], m.means[:6] * [1, -1, 1])
    np.testing.assert_allclose(m.quats[6:], m.quats[:6] * [1, -1, 1, -1])
    np.testing.assert_allclose(m.sh[6:, [1, 4, 5, 9, 10, 11]], -m.sh[:6, [1, 4, 5, 9, 10, 11]])
    np.testing.assert_allclose(m.sh[6:, [0, 2, 3, 6, 7, 8]], m.sh[:6, [0, 2, 3, 6, 7, 8]])
    assert not static.is_dynamic and dyn.is_dynamic
    assert asset.background().num_gaussians == 50


def test_round_trip_is_bitwise(tmp_path, ckpt):
    first = load_mtgs_asset(ckpt)
    out = write_mtgs_asset(tmp_path / "again.ckpt", first)
    raw = torch.load(out, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for sub in raw.values() for v in sub["state_dict"].values())  # flat
    assert "gauss_params.means" in raw["background"]["state_dict"]
    second = load_mtgs_asset(out)
    for a, b in zip(first.sub_assets, second.sub_assets):
        assert a.name == b.name and sorted(a.config) == sorted(b.config)
        for k in a.params:
            assert a.params[k].dtype == b.params[k].dtype
            assert a.params[k].tobytes() == b.params[k].tobytes()
        for k, v in a.config.items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(b.config[k]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.ckpt", "flat.ckpt"]


def test_numpy_values_need_the_allow_list_not_trust(tmp_path):
    asset = _asset(flat=True)
    asset["background"]["config"]["recon2world_translation"] = np.array([1.0, 2.0, 3.0])
    asset["rigid_veh1"]["config"]["log_timestamps"] = np.array([0, 100_000, 200_000, 300_000], np.int64)
    path = tmp_path / "numpy.ckpt"
    torch.save(asset, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    loaded = load_mtgs_asset(path)
    np.testing.assert_array_equal(loaded.recon2world_translation, [1, 2, 3])
    asset["background"]["config"]["note"] = fractions.Fraction(1, 3)  # not an array: refused without trust
    torch.save(asset, path)
    with pytest.raises(DataFormatError, match="fractions.Fraction.*trust=True"):
        load_mtgs_asset(path)
    assert load_mtgs_asset(path, trust=True).sub_assets[0].config["note"] == fractions.Fraction(1, 3)


def test_log_replay_with_sentinel_frames(ckpt):
    asset = load_mtgs_asset(ckpt)
    tokens, trans, quats, present = asset.log_replay_poses(T0_US + 50_000)
    assert tokens.tolist() == ["aaaa", "veh1", "veh2"] and present.tolist() == [True, True, True]
    np.testing.assert_allclose(trans[1], [5.0, 0, 0.8], atol=1e-5)
    np.testing.assert_allclose(quats[1], quat_from_yaw(np.pi / 4), atol=1e-6)
    np.testing.assert_allclose(trans[0], [5.0, -3.0, 0.9])
    for t in (T0_US + 150_000, T0_US + 200_000, T0_US + 250_000, T0_US - 1, T0_US + 300_001):
        assert not asset.log_replay_poses(t)[3][1], t  # next to / at the sentinel, or outside the log
    _, trans, _, present = asset.log_replay_poses(T0_US + 300_000)
    assert present[1] and np.allclose(trans[1], [30, 0, 0.8])


def test_to_scenario_scene(ckpt):
    asset = load_mtgs_asset(ckpt)
    s = make_scenario(num_agents=3, num_steps=11, t0=2)  # tracks veh1, veh2; 'aaaa' is not a track
    s = s.__class__(**{**s.__dict__, "origin_xy": np.array([331000.0, 4690000.0])})
    sc = asset.to_scenario_scene(s)
    assert sc.actors.actor_track_ids.tolist() == ["veh1", "veh2"]
    assert sc.actors.num_gaussians == 5 + 12
    assert sc.background.num_gaussians == 40 + 10 + 7  # the static actor is baked in at its pose (+ z shift 10)
    bg = asset.sub_assets[0].gaussians()
    np.testing.assert_allclose(sc.background.means[:40], bg.means + [0, 0, 10], atol=1e-5)
    scene, _ = sc.frame(4)
    veh2 = scene.means[scene.actor_ids == 1][:6]
    local = asset.sub_assets[4].gaussians().means[:6]
    xy = s.agents.xy[4, 2]
    np.testing.assert_allclose(veh2, local + [xy[0], xy[1], 0.7 + 10.0], atol=1e-4)  # z from the logged pose
    ego_log = np.tile(np.eye(4), (3, 1, 1))
    ego_log[:, :3, 3] = [[0, 0, -9.7], [20, 0, -9.6], [40, 0, -9.5]]
    _, pose = asset.to_scenario_scene(s, ego_poses_recon=ego_log).frame(2)
    assert abs(pose[2, 3] - 0.4) < 1e-9  # nearest logged ego pose (x = 20), z = -9.6 + 10


def test_write_from_activated_gaussians(tmp_path):
    from worldengine_lab.scene.mtgs import MTGSAsset, MTGSSubAsset
    from worldengine_lab.scene.procedural import build_scene

    sc = build_scene(make_scenario(num_agents=2, num_steps=5, t0=1))
    bg = sc.background.select(np.arange(sc.background.num_gaussians) < 500)  # degree 0: stored as logit colour
    car = sc.actors
    subs = (MTGSSubAsset.from_gaussians("background", "VanillaGaussianSplattingModel", bg,
                                        recon2world_translation=[100.0, 200.0, 0.0]),
            MTGSSubAsset.from_gaussians("rigid_veh1", "RigidSubModel", car, instance_trans=[1.0, 2.0, 0.8],
                                        instance_quats=[1.0, 0.0, 0.0, 0.0]))
    path = write_mtgs_asset(tmp_path / "procedural.ckpt", MTGSAsset(subs, np.array([100.0, 200.0, 0.0])))
    back = load_mtgs_asset(path)
    g = back.sub_assets[0].gaussians()
    np.testing.assert_allclose(g.means, bg.means)
    np.testing.assert_allclose(g.scales, bg.scales, rtol=1e-5)
    np.testing.assert_allclose(g.opacities, bg.opacities, rtol=1e-5)
    np.testing.assert_allclose(0.5 + SH_C0 * g.sh[:, 0], np.clip(0.5 + SH_C0 * bg.sh[:, 0], 0, 1), atol=1e-5)
    assert back.sub_assets[0].config["sh_degree"] == 0 and back.sub_assets[1].token == "veh1"


def _save(tmp_path, asset) -> str:
    path = tmp_path / "bad.ckpt"
    torch.save(asset, path)
    return str(path)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a["rigid_veh1"]["state_dict"].pop("gauss_params.means"),
     r"sub-asset 'rigid_veh1': key 'state_dict.gauss_params.means' is missing"),
    (lambda a: a["background"]["state_dict"].__setitem__("gauss_params.features_rest", torch.zeros(40, 8, 3)),
     r"sub-asset 'background': key 'state_dict.gauss_params.features_rest': expected shape \[40, 15, 3\].*found \[40, 8, 3\]"),
    (lambda a: a["rigid_veh1"]["config"].__setitem__("log_timestamps", torch.tensor([3, 2, 1, 0])),
     r"'rigid_veh1': key 'config.log_timestamps': expected sorted"),
    (lambda a: a["rigid_veh1"]["config"].__setitem__("log_timestamps", torch.tensor([0, 1, 2])),
     r"'rigid_veh1': key 'config.log_timestamps': expected F = 4"),
    (lambda a: a["rigid_veh1"]["config"].__setitem__("log_timestamps", torch.tensor([0.0, 1, 2, 3])),
     r"expected int64"),
    (lambda a: a["rigid_veh1"]["config"].pop("log_timestamps"), r"'config.log_timestamps' is missing"),
    (lambda a: a["rigid_aaaa"]["state_dict"].pop("instance_quats"), r"'rigid_aaaa': key 'state_dict.instance_quats'"),
    (lambda a: a["mirrored_veh2"]["config"].__setitem__("sh_degree", 1), r"mirrored models must be degree 3"),
    (lambda a: a["rigid_aaaa"]["config"].__setitem__("type", "DeformableSubModel"),
     r"'rigid_aaaa'.*DeformableSubModel.*not supported"),
    (lambda a: a["rigid_aaaa"]["config"].__setitem__("type", "Banana"), r"key 'config.type'"),
    (lambda a: a["background"]["state_dict"]["gauss_params.quats"].zero_(), r"non-zero quaternions"),
    (lambda a: a["background"]["state_dict"]["gauss_params.means"].__setitem__((0, 0), float("nan")), r"NaN"),
])
def test_bad_assets_name_the_key(tmp_path, edit, match):
    asset = _asset(flat=True)
    edit(asset)
    with pytest.raises(DataFormatError, match=match):
        load_mtgs_asset(_save(tmp_path, asset))


def test_unreadable_files(tmp_path):
    with pytest.raises(MissingFileError):
        load_mtgs_asset(tmp_path / "none.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"\x00\x01not a checkpoint")
    with pytest.raises(CorruptFileError, match="cannot read as a torch checkpoint"):
        load_mtgs_asset(tmp_path / "junk.ckpt")
    with pytest.raises(DataFormatError, match="expected a non-empty dict"):
        load_mtgs_asset(_save(tmp_path, [1, 2]))
