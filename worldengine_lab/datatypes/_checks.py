"""Validation helpers shared by the seam types (numpy only)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ScenarioValidationError, ShapeError


def check_array(
    owner: str,
    name: str,
    value: object,
    shape: Sequence[int | str | None],
    kinds: str,
    dims: dict[str, int] | None = None,
    finite: bool = False,
) -> np.ndarray:
    """Check that ``value`` is an ndarray of the given shape and dtype kind.

    ``shape`` entries are ints (exact), letters (named dims, bound on first use in ``dims``) or None (any).
    ``kinds`` is a string of numpy dtype kinds accepted ('f' float, 'i' int, 'u' unsigned, 'b' bool, 'U'/'O' str).
    Raises ShapeError naming ``owner.name``, the expected and the received shape/dtype.
    """
    where = f"{owner}.{name}"
    if not isinstance(value, np.ndarray):
        raise ShapeError(f"{where}: expected a numpy array, received {type(value).__name__}; convert with np.asarray")
    spec = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
    if value.ndim != len(shape):
        raise ShapeError(f"{where}: expected shape {spec}, received {list(value.shape)} (ndim {value.ndim})")
    if value.dtype.kind not in kinds:
        raise ShapeError(f"{where}: expected dtype kind in {kinds!r}, received {value.dtype}")
    if dims is not None:
        for axis, (want, got) in enumerate(zip(shape, value.shape)):
            if want is None:
                continue
            if isinstance(want, int):
                if got != want:
                    raise ShapeError(f"{where}: expected shape {spec}, received {list(value.shape)} (axis {axis})")
            else:
                bound = dims.setdefault(want, got)
                if bound != got:
                    raise ShapeError(
                        f"{where}: axis {axis} ({want}) must be {bound} to match the other fields, received {got}"
                    )
    if finite and value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise ScenarioValidationError(f"{where}: expected finite values, received {bad} NaN/inf entries")
    return value


def freeze(*arrays: np.ndarray) -> None:
    """Mark arrays read-only so frozen dataclasses are frozen all the way down."""
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
