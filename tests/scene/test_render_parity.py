"""The torch rasterizer against the hand values of spec gaussian-splatting.md §6 (cases 1–11), a sequential
per-pixel reference, finite-difference gradients, odd image sizes and the ``render`` call on CPU."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldengine_lab.datatypes import CameraRig, GaussianScene
from worldengine_lab.errors import BackendUnavailableError, WorldEngineLabError
from worldengine_lab.scene.render_torch import quat_scale_to_covar, rasterize
from worldengine_lab.scene.sh import sh_to_color

ATOL = 1e-5
IDQ = (1.0, 0.0, 0.0, 0.0)
RED, GREEN = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


def intrinsics(c: float = 32.0, f: float = 100.0) -> torch.Tensor:
    return torch.tensor([[[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]]])


def splat(gaussians: list[tuple], *, K: torch.Tensor | None = None, viewmats: torch.Tensor | None = None,
          width: int = 64, height: int = 64, dtype=torch.float32, **kw):
    """Render [(mean, scale (scalar or xyz), opacity, colour[, quat])] with the §6 common setup."""
    means = torch.tensor([g[0] for g in gaussians], dtype=dtype)
    scales = torch.tensor([[g[1]] * 3 if np.isscalar(g[1]) else g[1] for g in gaussians], dtype=dtype)
    opac = torch.tensor([g[2] for g in gaussians], dtype=dtype)
    colors = kw.pop("colors", None)
    if colors is None:
        colors = torch.tensor([g[3] for g in gaussians], dtype=dtype)
    quats = torch.tensor([g[4] if len(g) > 4 else IDQ for g in gaussians], dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype)[None] if viewmats is None else viewmats.to(dtype)
    K = (intrinsics() if K is None else K).expand(viewmats.shape[0], 3, 3).to(dtype)
    kw.setdefault("packed", False)
    return rasterize(means, quats, scales, opac, colors, viewmats, K, width, height, **kw)


STANDARD = ((0.0, 0.0, 5.0), 0.05, 0.8, (1.0, 0.5, 0.25))


def close(actual, expected, atol: float = ATOL) -> None:
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64), rtol=0, atol=atol)


# ------------------------------------------------------------------------------------------ spec §6 cases
def test_case1_single_blob() -> None:
    rgb, alpha, meta = splat([STANDARD])
    for i, j in [(31, 31), (31, 32), (32, 31), (32, 32)]:
        close(alpha[0, i, j, 0], 0.660042)
        close(rgb[0, i, j], (0.660042, 0.330021, 0.165011))
    close(alpha[0, 32, 34, 0], 0.065668)
    close(alpha[0, 31, 28, 0], 0.006533)
    assert alpha[0, 31, 27, 0] == 0 and alpha[0, 0, 0, 0] == 0 and (rgb[0, 0, 0] == 0).all()
    close(meta["depths"][0, 0], 5.0)
    close(meta["means2d"][0, 0], (32.0, 32.0))
    close(meta["conics"][0, 0], (0.769231, 0.0, 0.769231))
    assert meta["radii"][0, 0].tolist() == [4, 4] and meta["radii"].dtype == torch.int32
    assert meta["tiles_per_gauss"][0, 0] == 4  # tiles x, y in {1, 2}


@pytest.mark.parametrize("mode", ["RGB+D", "RGB+ED"])
def test_case2_two_depths(mode: str) -> None:
    rgb, alpha, _ = splat([((0, 0, 10.0), 0.1, 0.5, GREEN), ((0, 0, 5.0), 0.05, 0.8, RED)], render_mode=mode)
    assert rgb.shape == (1, 64, 64, 4)
    d31, d34 = (4.702627, 0.711813) if mode == "RGB+D" else (5.876199, 6.843350)
    close(rgb[0, 31, 31], (0.660042, 0.140242, 0.0, d31))
    close(alpha[0, 31, 31, 0], 0.800284)
    close(rgb[0, 32, 34], (0.065668, 0.038347, 0.0, d34))
    close(alpha[0, 32, 34, 0], 0.104015)


def test_depth_only_modes() -> None:
    g = [((0, 0, 10.0), 0.1, 0.5, GREEN), ((0, 0, 5.0), 0.05, 0.8, RED)]
    d, _, _ = splat(g, render_mode="D", backgrounds=torch.tensor([[0.2, 0.4, 0.6]]))
    ed, _, _ = splat(g, render_mode="ED")
    assert d.shape == ed.shape == (1, 64, 64, 1)
    close(d[0, 31, 31, 0], 4.702627)
    close(ed[0, 32, 34, 0], 6.843350)
    assert d[0, 0, 0, 0] == 0  # depth background is 0


def test_case3_equal_depth_tie() -> None:
    blob = ((0.0, 0.0, 5.0), 0.05, 0.5)
    rgb, alpha, _ = splat([(*blob, RED), (*blob, GREEN)])
    close(rgb[0, 31, 31], (0.412526, 0.242348, 0.0))
    close(alpha[0, 31, 31, 0], 0.654875)
    rgb2, _, _ = splat([(*blob, GREEN), (*blob, RED)])
    close(rgb2[0, 31, 31], (0.242348, 0.412526, 0.0))


def test_case4_near_plane_and_behind() -> None:
    rgb, alpha, meta = splat([((0, 0, 0.005), 0.05, 0.8, RED), ((0, 0, -5.0), 0.05, 0.8, RED),
                              ((0, 0, 0.0099), 1.0, 0.8, RED)], backgrounds=torch.tensor([[0.1, 0.2, 0.3]]))
    assert (meta["radii"] == 0).all()
    assert (alpha == 0).all()
    assert torch.equal(rgb[0, 10, 10], torch.tensor([0.1, 0.2, 0.3]))
    # z exactly at the near plane is kept (the test is strict: z < near culls)
    _, _, meta = splat([((0, 0, 0.5), 0.05, 0.8, RED)], near_plane=0.5)
    assert (meta["radii"][0, 0] > 0).all()


def test_case5a_partly_off_screen() -> None:
    _, alpha, meta = splat([((-1.7, 0.0, 5.0), 0.05, 0.8, RED)])
    close(meta["means2d"][0, 0], (-2.0, 32.0))
    close(meta["conics"][0, 0], (1 / 1.4156, 0.0, 1 / 1.3))
    assert meta["radii"][0, 0].tolist() == [4, 4]
    close(alpha[0, 31, 0, 0], 0.079911)
    close(alpha[0, 32, 0, 0], 0.079911)
    close(alpha[0, 31, 1, 0], 0.009599)
    assert alpha[0, 31, 2, 0] == 0


def test_case5b_jacobian_clamp() -> None:
    _, alpha, meta = splat([((-5.0, 0.0, 5.0), 1.0, 0.8, RED)])
    close(meta["means2d"][0, 0], (-68.0, 32.0), atol=2e-5)
    close(meta["conics"][0, 0], (1 / 469.5224, 0.0, 1 / 400.3), atol=1e-7)
    assert meta["radii"][0, 0].tolist() == [71, 66]
    close(alpha[0, 32, 0, 0], 0.005406)
    close(alpha[0, 32, 1, 0], 0.004667)
    close(alpha[0, 32, 2, 0], 0.004021)


def test_case6_anisotropic_rotated() -> None:
    q = (math.cos(math.radians(22.5)), 0.0, 0.0, math.sin(math.radians(22.5)))
    _, alpha, meta = splat([((0, 0, 5.0), (0.1, 0.02, 0.02), 0.8, RED, q)])
    close(meta["conics"][0, 0], (1.203236, -0.970677, 1.203236))
    assert meta["radii"][0, 0].tolist() == [6, 6]
    close(alpha[0, 32, 32, 0], 0.754815)
    close(alpha[0, 31, 31, 0], 0.754815)
    close(alpha[0, 31, 32, 0], 0.464580)
    close(alpha[0, 32, 31, 0], 0.464580)
    close(alpha[0, 33, 33, 0], 0.474070)
    close(alpha[0, 30, 33, 0], 0.006009)


def test_case7_sh_view_dependence() -> None:
    sh = torch.zeros(1, 16, 3)
    sh[0, 2] = torch.tensor([0.5, 0.0, -0.5])
    sh[0, 9] = 7.0
    views = torch.stack([torch.eye(4), torch.tensor([[-1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 10], [0, 0, 0, 1]])])
    rgb, _, meta = splat([STANDARD], viewmats=views, colors=sh, sh_degree=1)
    close(meta["means2d"][:, 0], [(32.0, 32.0), (32.0, 32.0)])
    close(meta["depths"][:, 0], (5.0, 5.0))
    close(rgb[0, 31, 31], (0.491270, 0.330021, 0.168772))
    close(rgb[1, 31, 31], (0.168772, 0.330021, 0.491270))
    colour_a = sh_to_color(sh[:, :4], torch.tensor([[0.0, 0.0, 5.0]]))
    close(colour_a[0], (0.744301, 0.5, 0.255699))
    c3 = torch.zeros(1, 4, 3)
    c3[0, 3, 0] = 0.5
    close(sh_to_color(c3, torch.tensor([[1.0, 0.0, 5.0]]))[0, 0], 0.452089)
    c1 = torch.zeros(1, 4, 3)
    c1[0, 1, 0] = 0.5
    close(sh_to_color(c1, torch.tensor([[0.0, 1.0, 5.0]]))[0, 0], 0.452089)
    close(sh_to_color(torch.full((1, 1, 3), 2.0), torch.tensor([[0.0, 0.0, 1.0]]))[0], (1.064190,) * 3)


def test_case8_background() -> None:
    rgb, alpha, _ = splat([STANDARD], backgrounds=torch.tensor([[0.2, 0.4, 0.6]]))
    assert torch.equal(rgb[0, 0, 0], torch.tensor([0.2, 0.4, 0.6]))
    assert alpha[0, 0, 0, 0] == 0
    close(rgb[0, 31, 31], (0.728034, 0.466004, 0.368985))
    close(rgb[0, 32, 34], (0.252534, 0.406567, 0.577016))


def test_case9_antialiased() -> None:
    _, alpha, meta = splat([STANDARD], rasterize_mode="antialiased")
    close(meta["opacities"][0, 0], 0.615385)
    assert meta["radii"][0, 0].tolist() == [4, 4]
    close(alpha[0, 31, 31, 0], 0.507725)
    close(alpha[0, 32, 34, 0], 0.050514)
    tiny = [((0.0, 0.0, 5.0), 1e-4, 0.8, RED)]
    _, alpha, meta = splat(tiny)
    close(meta["conics"][0, 0, 0], 3.333289)
    assert meta["radii"][0, 0].tolist() == [2, 2]
    close(alpha[0, 31, 31, 0], 0.347682)
    close(alpha[0, 31, 33, 0], 0.012404)
    rgb, alpha, meta = splat(tiny, rasterize_mode="antialiased")
    assert meta["radii"][0, 0].tolist() == [0, 0] and (alpha == 0).all() and (rgb == 0).all()


def test_case10_alpha_clamp_and_early_stop() -> None:
    K = intrinsics(c=32.5)
    _, alpha, _ = splat([((0.0, 0.0, 5.0), 0.05, 1.0, RED)], K=K)
    close(alpha[0, 32, 32, 0], 0.999)
    close(alpha[0, 32, 33, 0], 0.680712)
    rgb, alpha, _ = splat([((0.0, 0.0, 5.0), 0.05, 0.995, RED), ((0.0, 0.0, 6.0), 0.06, 0.995, GREEN)], K=K)
    close(rgb[0, 32, 32], (0.995, 0.0, 0.0))
    close(alpha[0, 32, 32, 0], 0.995)
    close(rgb[0, 32, 33], (0.677309, 0.218562, 0.0))
    close(alpha[0, 32, 33, 0], 0.895870)


def test_case11_thresholds() -> None:
    rgb, alpha, meta = splat([((0.0, 0.0, 5.0), 0.05, 0.004, RED)])
    assert meta["radii"][0, 0].tolist() == [1, 1]
    assert alpha[0, 31, 31, 0] == 0 and rgb[0, 31, 31, 0] == 0
    _, _, meta = splat([((0.0, 0.0, 5.0), 0.05, 0.003, RED)])
    assert meta["radii"][0, 0].tolist() == [0, 0]


# ---------------------------------------------------------------------- sequential per-pixel reference
def random_scene(g: int, seed: int, dtype=torch.float32, sh: bool = False):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(g, 3, generator=gen, dtype=torch.float64) * torch.tensor([1.5, 1.0, 1.0]) + torch.tensor(
        [0.0, 0.0, 6.0])
    quats = torch.randn(g, 4, generator=gen, dtype=torch.float64)
    scales = 0.01 + 0.2 * torch.rand(g, 3, generator=gen, dtype=torch.float64)
    opac = torch.rand(g, generator=gen, dtype=torch.float64)
    colors = (0.3 * torch.randn(g, 16, 3, generator=gen, dtype=torch.float64) if sh
              else torch.rand(g, 3, generator=gen, dtype=torch.float64))
    return [t.to(dtype) for t in (means, quats, scales, opac, colors)]


def sequential_reference(meta: dict, colors: torch.Tensor, width: int, height: int,
                         background: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """gsplat's per-pixel loop (§3.9), one Gaussian at a time in stable depth order, all pixels independent."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px, py = j.float() + 0.5, i.float() + 0.5
    T = torch.ones(height, width)
    done = torch.zeros(height, width, dtype=torch.bool)
    out = torch.zeros(height, width, colors.shape[-1])
    valid = (meta["radii"][0] > 0).all(-1)
    order = torch.sort(torch.where(valid, meta["depths"][0], torch.inf), stable=True).indices[: int(valid.sum())]
    for g in order.tolist():
        (mx, my), (a, b, c), o = meta["means2d"][0, g], meta["conics"][0, g], meta["opacities"][0, g]
        dx, dy = mx - px, my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(o * torch.exp(-sigma), 0.999)
        use = ~done & (sigma >= 0) & (alpha >= 1 / 255)
        nxt = T * (1 - alpha)
        stop = use & (nxt <= 1e-4)
        done |= stop
        add = use & ~stop
        out += torch.where(add[..., None], (alpha * T)[..., None] * colors[g], 0.0)
        T = torch.where(add, nxt, T)
    if background is not None:
        out = out + T[..., None] * background
    return out, 1 - T[..., None]


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_vectorised_equals_sequential_reference(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import worldengine_lab.scene._composite as composite

    if mode == "classic":  # tiny chunks: the early-stop state must survive many chunk boundaries (pitfall 5)
        monkeypatch.setattr(composite, "_FIRST_CHUNK", 4)
        monkeypatch.setattr(composite, "_MAX_CHUNK", 16)
    means, quats, scales, opac, colors = random_scene(500, seed=1)
    scales, opac = 2.0 * scales, 0.5 + 0.5 * opac  # dense and opaque: many pixels hit the early stop
    K = torch.tensor([[[60.0, 0, 37], [0, 60.0, 27], [0, 0, 1]]])
    bg = torch.tensor([0.1, 0.2, 0.3])
    rgb, alpha, meta = rasterize(means, quats, scales, opac, colors, torch.eye(4)[None], K, 75, 53, packed=False,
                                 rasterize_mode=mode, backgrounds=bg[None])
    ref_rgb, ref_alpha = sequential_reference(meta, colors, 75, 53, bg)
    assert (alpha > 0.999).float().mean() > 0.1  # the early stop is exercised
    torch.testing.assert_close(rgb[0], ref_rgb, rtol=0, atol=5e-6)
    torch.testing.assert_close(alpha[0], ref_alpha, rtol=0, atol=5e-6)
    # the settings render() uses on the CPU: 8 px tiles, ellipse-pruned pair lists
    rgb, alpha, _ = rasterize(means, quats, scales, opac, colors, torch.eye(4)[None], K, 75, 53, tile_size=8,
                              isect_meta=False, rasterize_mode=mode, backgrounds=bg[None])
    torch.testing.assert_close(rgb[0], ref_rgb, rtol=0, atol=5e-6)
    torch.testing.assert_close(alpha[0], ref_alpha, rtol=0, atol=5e-6)


def test_pruned_pairs_fast_and_autograd_paths_agree() -> None:
    """Ellipse-pruned tile lists (isect_meta=False), small tiles and the autograd path give the same image."""
    means, quats, scales, opac, colors = random_scene(300, seed=6)
    scales = scales * torch.tensor([4.0, 0.3, 1.0])  # elongated, randomly rotated: boxes much larger than ellipses
    K = torch.tensor([[[70.0, 0, 40], [0, 70.0, 30], [0, 0, 1]]])
    args = (means, quats, scales, opac, colors, torch.eye(4)[None], K, 81, 61)
    kw = {"render_mode": "RGB+ED", "rasterize_mode": "antialiased", "packed": False}
    with torch.no_grad():
        base = rasterize(*args, **kw)
        full_pairs = base[2]["isect_ids"].numel()
        for ts in (16, 8, 4):
            rgb, alpha, meta = rasterize(*args, tile_size=ts, isect_meta=False, **kw)
            assert meta["isect_ids"] is None
            torch.testing.assert_close(rgb[..., :3], base[0][..., :3], rtol=0, atol=1e-6)
            torch.testing.assert_close(alpha, base[1], rtol=0, atol=1e-6)
        with_pairs = rasterize(*args, tile_size=16, isect_meta=True, **kw)[2]["isect_ids"].numel()
    assert with_pairs == full_pairs
    grad_args = [t.clone().requires_grad_(True) for t in args[:5]]
    rgb, alpha, _ = rasterize(*grad_args, *args[5:], isect_meta=False, tile_size=8, **kw)
    assert rgb.requires_grad
    torch.testing.assert_close(rgb.detach()[..., :3], base[0][..., :3], rtol=0, atol=5e-6)
    torch.testing.assert_close(alpha.detach(), base[1], rtol=0, atol=5e-6)


@pytest.mark.parametrize("size", [(1, 1), (17, 5), (100, 75), (33, 47)])
def test_odd_image_sizes_match_a_larger_crop(size: tuple[int, int]) -> None:
    width, height = size
    means, quats, scales, opac, colors = random_scene(300, seed=2)
    K = torch.tensor([[[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]]])
    args = (means, quats, scales, opac, colors, torch.eye(4)[None], K)
    rgb, alpha, meta = rasterize(*args, width, height, packed=False)
    assert rgb.shape == (1, height, width, 3) and alpha.shape == (1, height, width, 1)
    assert meta["tile_width"] == math.ceil(width / 16) and meta["isect_offsets"].shape[-2:] == (
        math.ceil(height / 16), math.ceil(width / 16))
    ref, ref_alpha = sequential_reference(meta, colors, width, height, None)
    torch.testing.assert_close(rgb[0], ref, rtol=0, atol=5e-6)
    torch.testing.assert_close(alpha[0], ref_alpha, rtol=0, atol=5e-6)


def test_tile_size_and_packed_do_not_change_the_image() -> None:
    means, quats, scales, opac, colors = random_scene(300, seed=3, sh=True)
    views = torch.eye(4).repeat(2, 1, 1)
    yaw = math.radians(10)
    views[1, :3, :3] = torch.tensor([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    K = torch.tensor([[60.0, 0, 50], [0, 60.0, 37.5], [0, 0, 1]]).expand(2, 3, 3)
    base = rasterize(means, quats, scales, opac, colors, views, K, 100, 75, sh_degree=3, packed=False,
                     render_mode="RGB+ED")
    for kw in ({"tile_size": 8}, {"packed": True}, {"tile_size": 32, "packed": True}):
        other = rasterize(means, quats, scales, opac, colors, views, K, 100, 75, sh_degree=3, render_mode="RGB+ED",
                          **{"packed": False, **kw})
        torch.testing.assert_close(other[0][..., :3], base[0][..., :3], rtol=0, atol=2e-6)
        torch.testing.assert_close(other[0][..., 3], base[0][..., 3], rtol=1e-5, atol=1e-6)  # depth, m
        torch.testing.assert_close(other[1], base[1], rtol=0, atol=2e-6)
    _, _, packed = rasterize(means, quats, scales, opac, colors, views, K, 100, 75, sh_degree=3, packed=True)
    m = base[2]["radii"].reshape(-1, 2)
    rows = packed["camera_ids"].long() * 300 + packed["gaussian_ids"].long()
    assert torch.equal(packed["radii"], m[rows])
    torch.testing.assert_close(packed["means2d"], base[2]["means2d"].reshape(-1, 2)[rows])
    assert int(packed["flatten_ids"].max()) < rows.numel()
    # intersection ids are globally sorted: (image, tile, depth bits)
    ids = base[2]["isect_ids"]
    assert bool((ids[1:] >= ids[:-1]).all())


def test_batch_dims_and_float64() -> None:
    means, quats, scales, opac, colors = random_scene(200, seed=4, dtype=torch.float64)
    K = torch.tensor([[[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]]], dtype=torch.float64)
    one, a1, _ = rasterize(means, quats, scales, opac, colors, torch.eye(4, dtype=torch.float64)[None], K, 40, 30)
    assert one.dtype == torch.float64
    batched, a2, meta = rasterize(means.expand(2, -1, -1), quats.expand(2, -1, -1), scales.expand(2, -1, -1),
                                  opac.expand(2, -1), colors.expand(2, -1, -1),
                                  torch.eye(4, dtype=torch.float64).expand(2, 1, 4, 4), K.expand(2, 1, 3, 3), 40, 30,
                                  packed=False)
    assert batched.shape == (2, 1, 30, 40, 3) and meta["radii"].shape == (2, 1, 200, 2) and meta["n_batches"] == 2
    torch.testing.assert_close(batched[1], one)
    # float64 vs float32 renders agree to f32 accuracy
    f32, _, _ = rasterize(*(t.float() for t in (means, quats, scales, opac, colors)), torch.eye(4)[None], K.float(),
                          40, 30)
    torch.testing.assert_close(f32.double(), one, rtol=0, atol=1e-4)


def test_ortho_camera() -> None:
    K = torch.tensor([[[20.0, 0, 32], [0, 20.0, 32], [0, 0, 1]]])
    _, alpha, meta = splat([((0.0, 0.0, 5.0), 0.05, 0.8, RED), ((0.5, 0.0, 9.0), 0.05, 0.8, RED)], K=K,
                           camera_model="ortho")
    close(meta["means2d"][0], [(32.0, 32.0), (42.0, 32.0)])
    s = 0.05 ** 2 * 400 + 0.3  # Σ2D = fx² σ² + eps2d, independent of depth
    close(meta["conics"][0, :, 0], (1 / s, 1 / s))


def test_unsupported_options_raise() -> None:
    with pytest.raises(NotImplementedError, match="fisheye"):
        splat([STANDARD], camera_model="fisheye")
    with pytest.raises(NotImplementedError, match="with_ut"):
        splat([STANDARD], with_ut=True)
    with pytest.raises(NotImplementedError, match="radial_coeffs"):
        splat([STANDARD], radial_coeffs=torch.zeros(1, 6))


# ------------------------------------------------------------------------------------------------ gradients
def test_gradcheck_tiny_scene_float64() -> None:
    dtype = torch.float64
    means = torch.tensor([[0.05, -0.02, 2.0], [-0.03, 0.04, 2.5], [0.0, 0.0, 3.0]], dtype=dtype, requires_grad=True)
    quats = torch.tensor([[1.0, 0.1, 0.0, 0.2], [0.9, 0.0, 0.3, 0.0], [1.0, 0, 0, 0]], dtype=dtype,
                         requires_grad=True)
    scales = torch.tensor([[0.04, 0.03, 0.05], [0.05, 0.06, 0.04], [0.08, 0.08, 0.08]], dtype=dtype,
                          requires_grad=True)
    opac = torch.tensor([0.6, 0.7, 0.9], dtype=dtype, requires_grad=True)
    colors = torch.tensor([[1.0, 0.2, 0.1], [0.1, 0.9, 0.3], [0.2, 0.3, 1.0]], dtype=dtype, requires_grad=True)
    K = torch.tensor([[[30.0, 0, 6.3], [0, 30.0, 5.7], [0, 0, 1]]], dtype=dtype)
    proj = torch.rand(3, 11, 13, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)

    def fn(m, q, s, o, c):  # three random projections of the RGB + ED + alpha images
        rgb, alpha, _ = rasterize(m, q, s, o, c, torch.eye(4, dtype=dtype)[None], K, 13, 11,
                                  rasterize_mode="antialiased", render_mode="RGB+ED", tile_size=8)
        return (proj * torch.cat([rgb[0], alpha[0]], -1)).flatten(1).sum(1)

    assert torch.autograd.gradcheck(fn, (means, quats, scales, opac, colors), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_means2d_grad_is_retained_and_finite() -> None:
    means, quats, scales, opac, colors = random_scene(300, seed=5)
    params = [t.clone().requires_grad_(True) for t in (means, quats, scales, opac, colors)]
    K = torch.tensor([[[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]]])
    for packed in (False, True):
        rgb, alpha, meta = rasterize(*params, torch.eye(4)[None], K, 64, 48, packed=packed,
                                     rasterize_mode="antialiased")
        meta["means2d"].retain_grad()
        (rgb.sum() + alpha.sum()).backward()
        g = meta["means2d"].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
        for p in params:
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
            p.grad = None


# ------------------------------------------------------------------------------------------- render() call
def forward_rig(width: int = 64, height: int = 48) -> CameraRig:
    # camera 1.5 m above the rear axle, looking along ego +x (OpenCV axes: x right = -y_ego, y down = -z_ego)
    ego_from_cam = np.eye(4)
    ego_from_cam[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    ego_from_cam[:3, 3] = (0.0, 0.0, 1.5)
    K = np.array([[50.0, 0, width / 2], [0, 50.0, height / 2], [0, 0, 1]], np.float32)
    return CameraRig(np.array(["CAM_F0"]), ego_from_cam[None], K[None], width, height)


def street_scene() -> GaussianScene:
    rng = np.random.default_rng(0)
    g = 300
    means = np.stack([rng.uniform(4, 20, g), rng.uniform(-4, 4, g), rng.uniform(0, 3, g)], -1).astype(np.float32)
    quats = rng.normal(size=(g, 4)).astype(np.float32)
    scales = rng.uniform(0.05, 0.3, (g, 3)).astype(np.float32)
    sh = (0.3 * rng.normal(size=(g, 16, 3))).astype(np.float32)
    return GaussianScene(means, quats, scales, rng.uniform(0.2, 1.0, g).astype(np.float32), sh)


def test_render_gaussian_scene_with_rig() -> None:
    from worldengine_lab.scene import RenderResult, render

    scene, rig = street_scene(), forward_rig()
    world_from_ego = np.eye(4)
    world_from_ego[:3, 3] = (1.0, 0.0, 0.0)
    out = render(scene, rig, t=3, world_from_ego=world_from_ego, backend="torch_ref", background=(0.0, 0.0, 1.0))
    assert isinstance(out, RenderResult) and out.backend == "torch_ref" and out.t == 3
    assert out.rgb.shape == (1, 48, 64, 3) and out.depth.shape == (1, 48, 64) and out.alpha.shape == (1, 48, 64)
    assert out.rgb.dtype == np.float32 and out.rgb.min() >= 0 and out.rgb.max() <= 1
    assert list(out.camera_names) == ["CAM_F0"]
    assert 0.2 < out.alpha.mean() < 1.0
    hit = out.alpha > 0.5
    assert (out.depth[hit] > 2.0).all() and (out.depth[hit] < 20.0).all()
    empty = out.alpha == 0
    if empty.any():  # sky: blue background, depth filled with the frame's farthest depth
        assert np.allclose(out.rgb[empty], (0, 0, 1))
    # same as rasterize with WorldEngine's colour convention (clamped SH colour, background blended after)
    from worldengine_lab.scene.render_torch import rasterize as rast

    view = torch.from_numpy(rig.viewmats(world_from_ego))
    campos = torch.from_numpy(np.linalg.inv(rig.viewmats(world_from_ego)[0])[:3, 3])
    cols = sh_to_color(torch.from_numpy(scene.sh), torch.from_numpy(scene.means) - campos, clamp_max=1.0)
    rgb, alpha, _ = rast(*(torch.from_numpy(a) for a in (scene.means, scene.quats, scene.scales, scene.opacities)),
                         cols, view, torch.from_numpy(rig.Ks), 64, 48, rasterize_mode="antialiased", packed=False)
    expect = torch.clamp(rgb + (1 - alpha) * torch.tensor([0.0, 0.0, 1.0]), 0, 1)
    np.testing.assert_allclose(out.rgb, expect.numpy(), atol=1e-6)


def test_render_scenario_scene_duck_type() -> None:
    from worldengine_lab.scene import render

    scene, rig = street_scene(), forward_rig(32, 24)

    class Frames:
        def frame(self, t: int):
            pose = np.eye(4)
            pose[0, 3] = 0.5 * t
            return scene, pose

    a = render(Frames(), rig, t=2, backend="auto", depth=False)
    b = render(scene, rig, world_from_ego=Frames().frame(2)[1], backend="torch_ref", depth=False)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert a.depth is None or a.depth.shape == (1, 24, 32)


def test_render_input_errors() -> None:
    from worldengine_lab.scene import render

    with pytest.raises(WorldEngineLabError, match="world_from_ego"):
        render(street_scene(), forward_rig(), backend="torch_ref")
    with pytest.raises(WorldEngineLabError, match="backend"):
        render(street_scene(), forward_rig(), world_from_ego=np.eye(4), backend="vulkan")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_gsplat_backend_without_cuda_raises() -> None:
    from worldengine_lab.scene import available_backends, render

    assert available_backends() == ("torch_ref",)
    with pytest.raises(BackendUnavailableError, match="backend='torch_ref'"):
        render(street_scene(), forward_rig(), world_from_ego=np.eye(4), backend="gsplat")


def test_covariance_helper() -> None:
    q = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    cov = quat_scale_to_covar(q, torch.tensor([[1.0, 2.0, 3.0]]))
    close(cov[0], torch.diag(torch.tensor([1.0, 4.0, 9.0])))
