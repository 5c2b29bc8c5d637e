"""Boundary checks for tensors entering the simulator: shape, dtype and finiteness, with the fix in the message."""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ScenarioValidationError, ShapeError

__all__ = ["check_tensor", "check_finite", "float_dtype"]


def check_tensor(name: str, value: object, shape: Sequence[int | None], finite: bool = True) -> torch.Tensor:
    """Check that ``value`` is a floating tensor of ``shape`` (None = any size) and, optionally, finite.

    Raises:
        ShapeError: not a tensor, wrong rank/shape or a non-floating dtype (names ``name``, expected, received).
        ScenarioValidationError: NaN/inf entries when ``finite``.
    """
    spec = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
    if not isinstance(value, torch.Tensor):
        raise ShapeError(f"{name}: expected a torch.Tensor of shape {spec}, received {type(value).__name__}")
    if value.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, value.shape)):
        raise ShapeError(f"{name}: expected shape {spec}, received {list(value.shape)}")
    if not value.is_floating_point():
        raise ShapeError(f"{name}: expected a float32/float64 tensor, received {value.dtype}")
    if finite:
        check_finite(name, value)
    return value


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise ScenarioValidationError if ``value`` holds NaN or inf (counting them)."""
    ok = torch.isfinite(value)
    if not bool(ok.all()):
        bad = int((~ok).sum())
        raise ScenarioValidationError(
            f"{name}: expected finite values, received {bad} NaN/inf entries of {value.numel()}; "
            "check the inputs that produced it"
        )


def float_dtype(name: str, *tensors: torch.Tensor) -> torch.dtype:
    """The common floating dtype of ``tensors``: float32 or float64 (float16/bfloat16 are rejected)."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ShapeError(f"{name}: expected float32 or float64 tensors, received {dtype}; cast with .double()")
    return dtype
