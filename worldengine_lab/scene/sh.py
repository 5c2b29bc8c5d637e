"""Real spherical harmonics up to degree 3 (gsplat / INRIA basis order) and view-dependent colour.

Conventions (spec ``gaussian-splatting.md`` §3.7): coefficients are coefficient-major ``[..., K, 3]`` with band 0
first and K = (d + 1)²; the basis is evaluated on the **normalised** view direction (Gaussian mean minus camera
centre, world frame); colour = max(0, Σ_k c_k Y_k(dir) + 0.5) per channel, with no upper clamp (gsplat).
WorldEngine / MTGS additionally clamp at 1 (``clamp_max=1.0``).

Every function is batched over leading dimensions and differentiable by autograd.

Examples:
    >>> import torch
    >>> sh = torch.zeros(1, 4, 3); sh[0, 0] = 1.0
    >>> sh_to_color(sh, torch.tensor([[0.0, 0.0, 1.0]]))
    tensor([[0.7821, 0.7821, 0.7821]])
"""
from __future__ import annotations

import torch

from ..errors import ShapeError

__all__ = ["SH_C0", "MAX_SH_DEGREE", "num_sh_bases", "sh_bases", "eval_sh", "sh_to_color"]

SH_C0 = 0.28209479177387814
"""Y_0, the constant band-0 basis value."""

MAX_SH_DEGREE = 3
"""Highest supported degree (gsplat also has degree 4; we stop at 3)."""

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)


def num_sh_bases(degree: int) -> int:
    """K = (degree + 1)², the number of bases up to ``degree``.

    >>> num_sh_bases(3)
    16
    """
    if not 0 <= int(degree) <= MAX_SH_DEGREE:
        raise ShapeError(f"sh_degree: expected an int in [0, {MAX_SH_DEGREE}], received {degree}")
    return (int(degree) + 1) ** 2


def _basis_list(dirs: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """The (degree + 1)² basis values as a list of ``[...]`` tensors (spec §3.7 order)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (3.0 * zz - 1.0), _C2[3] * xz, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * xy * z,
            _C3[2] * y * (5.0 * zz - 1.0),
            _C3[3] * z * (5.0 * zz - 3.0),
            _C3[4] * x * (5.0 * zz - 1.0),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return out


def sh_bases(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Evaluate the real SH basis on unit directions.

    Args:
        dirs: ``[..., 3]`` unit view directions (x, y, z), any float dtype; **not** normalised here.
        degree: d in [0, 3].

    Returns:
        ``[..., (d + 1)²]`` basis values Y_k(dir), same dtype as ``dirs``, in the order of spec §3.7.
    """
    if dirs.shape[-1] != 3:
        raise ShapeError(f"sh_bases: expected dirs [..., 3], received {tuple(dirs.shape)}")
    num_sh_bases(degree)
    return torch.stack(_basis_list(dirs, degree), dim=-1)


def _check_degree(coeffs: torch.Tensor, degree: int | None) -> int:
    if coeffs.ndim < 2 or coeffs.shape[-1] != 3:
        raise ShapeError(f"sh coefficients: expected [..., K, 3], received {tuple(coeffs.shape)}")
    k = int(coeffs.shape[-2])
    if degree is None:
        for d in range(MAX_SH_DEGREE + 1):
            if (d + 1) ** 2 == k:
                return d
        raise ShapeError(f"sh coefficients: expected K = (d + 1)² in (1, 4, 9, 16), received K = {k}; "
                         "pass sh_degree explicitly to use the first (d + 1)² bases")
    if num_sh_bases(degree) > k:
        raise ShapeError(f"sh_degree={degree} needs K >= {num_sh_bases(degree)} coefficients, received K = {k}; "
                         "lower sh_degree")
    return int(degree)


def eval_sh(coeffs: torch.Tensor, dirs: torch.Tensor, degree: int | None = None) -> torch.Tensor:
    """Σ_k c_k Y_k(dir / ‖dir‖), without the +0.5 offset.

    Args:
        coeffs: ``[..., K, 3]`` SH coefficients (band 0 first); bases above (degree + 1)² are ignored.
        dirs: ``[..., 3]`` view directions (any length; normalised here, a zero vector gives only band 0),
            broadcastable against ``coeffs[..., 0, :]``.
        degree: d; None means the full degree of K.

    Returns:
        ``[..., 3]`` raw colour, same dtype as ``coeffs``.
    """
    d = _check_degree(coeffs, degree)
    k = num_sh_bases(d)
    unit = torch.nn.functional.normalize(dirs.to(coeffs.dtype), dim=-1)
    basis = torch.stack(_basis_list(unit, d), dim=-1)  # [..., k]
    return torch.einsum("...k,...kc->...c", basis, coeffs[..., :k, :])


def sh_to_color(coeffs: torch.Tensor, dirs: torch.Tensor, degree: int | None = None, *,
                clamp_max: float | None = None) -> torch.Tensor:
    """Colour of each Gaussian seen along ``dirs``: max(0, eval_sh + 0.5), optionally clamped at ``clamp_max``.

    Args:
        coeffs: ``[..., K, 3]`` SH coefficients.
        dirs: ``[..., 3]`` view directions, world frame (Gaussian mean minus camera centre, m; any length).
        degree: d; None means the full degree of K.
        clamp_max: None (gsplat: no upper clamp) or 1.0 (WorldEngine / MTGS).

    Returns:
        ``[..., 3]`` RGB, linear, >= 0.
    """
    rgb = eval_sh(coeffs, dirs, degree) + 0.5
    if clamp_max is None:
        return rgb.clamp_min(0.0)
    return rgb.clamp(0.0, float(clamp_max))
