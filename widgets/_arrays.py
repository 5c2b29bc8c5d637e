"""Arrays on the wire: numpy arrays travel to the front end as ``traitlets.Bytes``, never as JSON lists.

Convention (every widget follows it):

* the data trait holds the raw buffer: ``xy = traitlets.Bytes(b"").tag(sync=True)``, filled with
  :func:`to_bytes` — float32 for real values, int32 for integers, booleans and ids; little-endian; C order;
* a companion trait ``<name>_shape = traitlets.List(traitlets.Int()).tag(sync=True)`` holds the shape
  (:func:`wire_shape`); the dtype is part of the trait's documented contract (``# [T, N, 2] float32, m``);
* set the shape trait first, then the data trait, inside ``with widget.hold_sync():`` so both arrive together.

In the front end a ``Bytes`` trait arrives as a ``DataView``; view it without copying::

    const dv = model.get("xy");
    const xy = new Float32Array(dv.buffer, dv.byteOffset, dv.byteLength / 4);   // Int32Array for int32
    const [T, N, C] = model.get("xy_shape");                                    // xy[(t * N + n) * C + c]

Examples:
    >>> import numpy as np
    >>> data = to_bytes(np.arange(6, dtype=np.float64).reshape(2, 3))
    >>> len(data), from_bytes(data, [2, 3], "float32")[1].tolist()
    (24, [3.0, 4.0, 5.0])
    >>> from_bytes(to_bytes(np.array([True, False])), [2], "int32").tolist()
    [1, 0]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from worldengine_lab.errors import ShapeError

__all__ = ["WIRE_DTYPES", "wire_dtype", "wire_shape", "to_bytes", "from_bytes"]

WIRE_DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
"""The two dtypes arrays travel as (little-endian)."""

_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def wire_dtype(array: np.ndarray) -> str:
    """``'float32'`` for floating arrays, ``'int32'`` for integer and boolean arrays; raise ShapeError otherwise."""
    kind = np.asarray(array).dtype.kind
    if kind == "f":
        return "float32"
    if kind in "iub":
        return "int32"
    raise ShapeError(f"to_bytes: expected a numeric or boolean array, received dtype {np.asarray(array).dtype}; "
                     f"send text as a list trait instead")


def wire_shape(array: np.ndarray) -> list[int]:
    """The shape to put in the ``<name>_shape`` trait (a list of ints)."""
    return [int(n) for n in np.shape(array)]


def to_bytes(array: np.ndarray | Sequence[float]) -> bytes:
    """``array`` as little-endian, C-ordered float32 (floating input) or int32 (integer / boolean input) bytes.

    Raises ShapeError for other dtypes and for integers outside the int32 range.
    """
    a = np.asarray(array)
    dtype = wire_dtype(a)
    if dtype == "int32" and a.size and a.dtype.kind != "b" and (a.min() < _INT32_MIN or a.max() > _INT32_MAX):
        raise ShapeError(f"to_bytes: expected integers within int32 range, received values in [{a.min()}, "
                         f"{a.max()}]; send them as float32 or offsets from a base value")
    return np.ascontiguousarray(a, dtype=WIRE_DTYPES[dtype]).tobytes(order="C")


def from_bytes(data: bytes | bytearray | memoryview, shape: Sequence[int], dtype: str = "float32") -> np.ndarray:
    """Inverse of :func:`to_bytes`: a read-only view of ``data`` as ``shape`` in the wire ``dtype``."""
    if dtype not in WIRE_DTYPES:
        raise ShapeError(f"from_bytes: dtype: expected one of {list(WIRE_DTYPES)}, received {dtype!r}")
    wire = WIRE_DTYPES[dtype]
    shape = tuple(int(n) for n in shape)
    need = int(np.prod(shape, dtype=np.int64)) * wire.itemsize
    if len(data) != need:
        raise ShapeError(f"from_bytes: expected {need} bytes for shape {list(shape)} {dtype}, received "
                         f"{len(data)}; send the shape trait with the data")
    return np.frombuffer(data, dtype=wire).reshape(shape)
