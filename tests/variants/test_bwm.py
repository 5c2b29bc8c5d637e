"""The behaviour world model: features, training, per-agent noise levels, seeded sampling, checkpoints, lineage."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _bwm_helpers import TINY, TINY_FEATURES, moved, one_thread, scenes, tiny_model  # noqa: F401

from worldengine_lab.errors import CorruptFileError, ShapeError
from worldengine_lab.variants import (BWMTrainConfig, load_bwm, model_hash, pack_scenes, sample_bwm, sample_variants,
                                      save_bwm, train_bwm)
from worldengine_lab.variants.bwm import sample_tokens, scene_seed, smoothing_matrix

pytestmark = pytest.mark.usefixtures("one_thread")


def test_pack_scenes_is_agent_centric():
    s = scenes(1)[0]
    b = pack_scenes([s], TINY_FEATURES, [[2]])
    assert b.hist.shape == (1, 4, 5, 7) and b.future.shape == (1, 4, 10, 2)
    assert b.agent_index[0].tolist() == [0, 2, 1, 3]  # ego, the asked agent, then nearest first
    assert b.generate[0].tolist() == [False, True, False, False]
    # every agent drives straight along +x at constant speed: its own frame sees (v t, 0), exactly its cv future
    torch.testing.assert_close(b.future, b.cv, atol=1e-3, rtol=0)
    assert torch.allclose(b.hist[0, :, -1, :2], torch.zeros(4, 2))  # now is the origin of each agent's frame
    assert b.map_valid[0].all()
    with pytest.raises(ShapeError, match="observed at now"):
        pack_scenes([s], TINY_FEATURES, [[0]])


def test_tiny_model_loss_decreases():
    cfg = BWMTrainConfig(model=TINY, epochs=25, batch_size=4, lr=3e-3, t0_offsets=(0, 5), max_minutes=None)
    res = train_bwm(scenes(4), cfg)
    first, last = np.mean(res.losses[:3]), np.mean(res.losses[-3:])
    assert res.num_steps == 50 and last < 0.5 * first  # 25 epochs of 2 batches (8 windows)


def test_fixed_agents_stay_exactly_fixed():
    model = tiny_model()
    s = scenes(1)[0]
    out = sample_bwm(model, [s], [[1]], seed=3)[0]
    a, b = s.agents, out.agents
    fut = slice(s.t0 + 1, None)
    assert moved(b.xy[fut, 1], a.xy[fut, 1])  # generated
    for i in (0, 2, 3):  # ego and held agents: noise level 0, untouched
        assert np.array_equal(b.xy[:, i], a.xy[:, i]) and np.array_equal(b.vel_xy[:, i], a.vel_xy[:, i])
    assert np.array_equal(b.xy[: s.t0 + 1], a.xy[: s.t0 + 1])  # history of everyone
    # token level: held tokens come back bit for bit
    batch = pack_scenes([s], TINY_FEATURES, [[1]])
    tok = sample_tokens(model, batch, [7])
    fixed = model.encode(batch.future, batch.cv) * batch.future_valid[..., None]
    held = ~batch.generate[0]
    assert torch.equal(tok[0, held], fixed[0, held])


def test_sampling_is_seeded():
    model = tiny_model()
    ss = scenes(2)
    a = sample_bwm(model, ss, seed=1)
    b = sample_bwm(model, ss, seed=1)
    c = sample_bwm(model, ss, seed=2)
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x.agents.xy, y.agents.xy)
        assert moved(x.agents.xy, z.agents.xy)
    # a scene's noise does not depend on what else is in the batch
    alone = sample_bwm(model, ss[1:], seed=1)[0]
    np.testing.assert_allclose(alone.agents.xy, a[1].agents.xy, atol=1e-4)
    assert scene_seed(1, "x") != scene_seed(1, "x", index=1)


def test_sampled_futures_are_feasible_and_valid_everywhere():
    from worldengine_lab.variants import check_kinematics

    model = tiny_model()
    s = scenes(1)[0]
    out = sample_bwm(model, [s], [[1, 2]], seed=0)[0]
    assert out.agents.valid[s.t0:, [1, 2]].all()
    assert check_kinematics(out, [1, 2])["ok"].all()


def test_smoothing_keeps_constant_acceleration_and_removes_noise():
    s = smoothing_matrix(20, 30.0)
    t = np.arange(1, 21) * 0.4
    quad = 0.5 * 2.0 * t ** 2
    assert np.abs(s @ quad - quad)[5:].max() < 0.05
    noise = np.random.default_rng(0).normal(size=20) * 0.3
    assert np.abs(np.diff(s @ noise, 3)).max() < 0.1 * np.abs(np.diff(noise, 3)).max()
    assert np.array_equal(smoothing_matrix(5, 0.0), np.eye(5))


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = tiny_model(seed=4)
    model.scale.fill_(2.0)
    path = save_bwm(tmp_path / "bwm.pt", model, extra={"note": "tiny"})
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["format"] == "worldengine_lab.bwm/1" and raw["config"]["d_model"] == 32
    back, extra = load_bwm(path)
    assert extra == {"note": "tiny"} and model_hash(back) == model_hash(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(CorruptFileError, match="expected format"):
        load_bwm(tmp_path / "bad.pt")


def test_sample_variants_carry_lineage():
    from worldengine_lab.variants import op_from_dict

    model = tiny_model()
    s = scenes(1)[0]
    v0, v1 = sample_variants(model, [s, s], [[1], [1]], seed=5, index=[0, 1])
    rec = v0.op_records()[0]
    assert rec["op"] == "bwm_sample" and rec["sampler"] == "bwm" and rec["checkpoint"] == model_hash(model)
    assert rec["agents"] == ["veh1"] and v0.seed == 5 and v0.parent_id == s.scenario_id
    assert v0.variant_id != v1.variant_id and v0.scenario.scenario_id == v0.variant_id
    assert "variant" in v0.scenario.tags and v0.scenario.provenance.source == "variant"
    assert op_from_dict(rec).checkpoint == rec["checkpoint"]
    again = sample_variants(model, [s], [[1]], seed=5, index=0)[0]
    assert again.variant_id == v0.variant_id and np.array_equal(again.scenario.agents.xy, v0.scenario.agents.xy)
