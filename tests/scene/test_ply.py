"""INRIA 3DGS PLY read/write (spec gaussian-splatting.md §8.1, data-formats.md §3)."""
from __future__ import annotations

import numpy as np
import pytest

from worldengine_lab.datatypes import GaussianScene
from worldengine_lab.errors import CorruptFileError, DataFormatError, MissingFileError, ShapeError
from worldengine_lab.scene.ply import PlyGaussians, read_ply, read_ply_raw, write_ply


def _raw(g: int, degree: int, seed: int = 0, normals: bool = False) -> PlyGaussians:
    rng = np.random.default_rng(seed)
    f = np.float32
    k = (degree + 1) ** 2
    return PlyGaussians(
        means=rng.normal(size=(g, 3)).astype(f) * 10, f_dc=rng.normal(size=(g, 3)).astype(f),
        f_rest=rng.normal(size=(g, k - 1, 3)).astype(f), opacity_logit=rng.normal(size=g).astype(f) * 3,
        log_scales=rng.normal(-3, 1, size=(g, 3)).astype(f), quats=rng.normal(size=(g, 4)).astype(f),
        normals=np.zeros((g, 3), f) if normals else None)


def _header(names: list[str], n: int, fmt: str = "binary_little_endian") -> bytes:
    return (f"ply\nformat {fmt} 1.0\nelement vertex {n}\n" + "".join(f"property float {x}\n" for x in names)
            + "end_header\n").encode()


BASE = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3"]


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("normals", [False, True])
def test_round_trip_bitwise(tmp_path, degree, normals):
    raw = _raw(257, degree, seed=degree, normals=normals)
    path = write_ply(tmp_path / f"d{degree}.ply", raw)
    back = read_ply_raw(path)
    assert back.sh_degree == degree and (back.normals is not None) == normals
    for name in ("means", "f_dc", "f_rest", "opacity_logit", "log_scales", "quats"):
        np.testing.assert_array_equal(getattr(back, name), getattr(raw, name))
        assert getattr(back, name).view(np.uint32).tobytes() == getattr(raw, name).view(np.uint32).tobytes()
    again = write_ply(tmp_path / f"d{degree}_again.ply", back)
    assert again.read_bytes() == path.read_bytes()
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    n_rest = 3 * ((degree + 1) ** 2 - 1)
    assert header.count("property float") == 14 + n_rest + 3 * normals
    assert ("f_rest_%d" % (n_rest - 1)) in header if n_rest else "f_rest" not in header


def test_activation_and_channel_major_rest(tmp_path):
    raw = _raw(5, 1)
    scene = read_ply(write_ply(tmp_path / "a.ply", raw))
    np.testing.assert_allclose(scene.scales, np.exp(raw.log_scales.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(scene.opacities, 1 / (1 + np.exp(-raw.opacity_logit.astype(np.float64))), rtol=1e-6)
    np.testing.assert_array_equal(scene.sh[:, 0], raw.f_dc)
    np.testing.assert_array_equal(scene.sh[:, 1:], raw.f_rest)
    np.testing.assert_array_equal(scene.quats, raw.quats)
    assert (scene.actor_ids == -1).all()
    # channel-major on disk: f_rest_{c*(K-1)+k-1} is coefficient k of channel c
    data = (tmp_path / "a.ply").read_bytes()
    table = np.frombuffer(data.split(b"end_header\n", 1)[1], "<f4").reshape(5, -1)
    first_rest = 6  # x y z f_dc_0..2
    np.testing.assert_array_equal(table[:, first_rest + 3 * 1 + 2], raw.f_rest[:, 2, 1])  # channel G, coefficient 3


def test_scene_round_trip_close(tmp_path):
    rng = np.random.default_rng(4)
    g = 100
    scene = GaussianScene(rng.normal(size=(g, 3)).astype(np.float32), rng.normal(size=(g, 4)).astype(np.float32),
                          rng.uniform(0.01, 2, (g, 3)).astype(np.float32), rng.uniform(0, 1, g).astype(np.float32),
                          rng.normal(size=(g, 9, 3)).astype(np.float32))
    back = read_ply(write_ply(tmp_path / "s.ply", scene))
    np.testing.assert_array_equal(back.means, scene.means)
    np.testing.assert_array_equal(back.sh, scene.sh)
    np.testing.assert_allclose(back.scales, scene.scales, rtol=1e-6)
    np.testing.assert_allclose(back.opacities, scene.opacities, rtol=1e-5, atol=1e-6)


def test_properties_located_by_name_and_extra_fields(tmp_path):
    names = ["opacity", "rot_0", "rot_1", "rot_2", "rot_3", "extra", "z", "y", "x", "scale_2", "scale_1", "scale_0",
             "f_dc_2", "f_dc_1", "f_dc_0"]
    vals = np.arange(2 * len(names), dtype="<f4").reshape(2, -1)
    vals[:, names.index("rot_0")] = 1.0
    p = tmp_path / "shuffled.ply"
    p.write_bytes(_header(names, 2) + vals.tobytes())
    raw = read_ply_raw(p)
    np.testing.assert_array_equal(raw.means[:, 0], vals[:, names.index("x")])
    np.testing.assert_array_equal(raw.f_dc[:, 2], vals[:, names.index("f_dc_2")])
    assert raw.sh_degree == 0 and raw.normals is None


def test_big_endian_and_ascii_are_read(tmp_path):
    raw = _raw(3, 0)
    le = read_ply_raw(write_ply(tmp_path / "le.ply", raw))
    table = np.frombuffer((tmp_path / "le.ply").read_bytes().split(b"end_header\n", 1)[1], "<f4").reshape(3, -1)
    (tmp_path / "be.ply").write_bytes(_header(BASE, 3, "binary_big_endian") + table.astype(">f4").tobytes())
    np.testing.assert_array_equal(read_ply_raw(tmp_path / "be.ply").means, le.means)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in table) + "\n"
    (tmp_path / "a.ply").write_bytes(_header(BASE, 3, "ascii") + text.encode())
    asc = read_ply_raw(tmp_path / "a.ply")
    np.testing.assert_array_equal(asc.means, le.means)
    np.testing.assert_array_equal(asc.quats, le.quats)


def test_truncated_file(tmp_path):
    path = write_ply(tmp_path / "t.ply", _raw(10, 3))
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(CorruptFileError, match="truncated.*10 vertices"):
        read_ply(path)
    path.write_bytes(data[:40])
    with pytest.raises(CorruptFileError, match="end_header"):
        read_ply(path)
    path.write_bytes(b"PK\x03\x04 not a ply")
    with pytest.raises(CorruptFileError, match="not a PLY"):
        read_ply(path)
    with pytest.raises(MissingFileError):
        read_ply(tmp_path / "absent.ply")


def test_missing_property_and_bad_rest_count(tmp_path):
    names = [n for n in BASE if n != "scale_1"]
    (tmp_path / "m.ply").write_bytes(_header(names, 1) + np.ones(len(names), "<f4").tobytes())
    with pytest.raises(DataFormatError, match="scale_1"):
        read_ply(tmp_path / "m.ply")
    names = BASE + [f"f_rest_{i}" for i in range(5)]
    (tmp_path / "r.ply").write_bytes(_header(names, 1) + np.ones(len(names), "<f4").tobytes())
    with pytest.raises(DataFormatError, match="0, 9, 24 or 45"):
        read_ply(tmp_path / "r.ply")
    (tmp_path / "v.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement face 0\n"
                                     b"property list uchar int vertex_indices\nend_header\n")
    with pytest.raises(DataFormatError, match="no 'vertex' element"):
        read_ply(tmp_path / "v.ply")


def test_nan_rows_raise_or_drop(tmp_path):
    raw = _raw(20, 1)
    data = {k: getattr(raw, k).copy() for k in ("means", "f_dc", "f_rest", "opacity_logit", "log_scales", "quats")}
    data["means"][3, 1] = np.nan
    data["f_rest"][11, 2, 0] = np.inf
    data["quats"][17] = 0.0
    bad = PlyGaussians(**data)
    with pytest.raises(ShapeError, match=r"rows \[3, 11, 17\]"):
        write_ply(tmp_path / "bad.ply", bad)
    # write the bad values directly (an exporter that keeps them) and read them back
    good = write_ply(tmp_path / "good.ply", raw).read_bytes()
    header, body = good.split(b"end_header\n", 1)
    table = np.frombuffer(body, "<f4").reshape(20, -1).copy()
    table[3, 1] = np.nan
    table[11, 6] = np.inf
    (tmp_path / "bad.ply").write_bytes(header + b"end_header\n" + table.tobytes())
    with pytest.raises(ShapeError, match=r"2 of 20 .*rows 3, 11.*drop_invalid=True"):
        read_ply(tmp_path / "bad.ply")
    kept = read_ply(tmp_path / "bad.ply", drop_invalid=True)
    assert kept.num_gaussians == 18 and np.isfinite(kept.means).all()


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_ply(tmp_path / "x.ply", _raw(4, 2))
    write_ply(tmp_path / "x.ply", _raw(6, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ply"]
    assert read_ply(tmp_path / "x.ply").num_gaussians == 6
