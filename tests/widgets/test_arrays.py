"""Arrays on the wire (widgets/_arrays.py): float32 / int32 little-endian C-order bytes and back."""
from __future__ import annotations

import numpy as np
import pytest

from worldengine_lab.errors import ShapeError
from worldengine_lab.widgets._arrays import from_bytes, to_bytes, wire_dtype, wire_shape


def test_float_round_trip_is_float32_little_endian_c_order() -> None:
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)[:, ::-1]  # not C-contiguous
    data = to_bytes(a)
    assert isinstance(data, bytes) and len(data) == a.size * 4
    assert wire_dtype(a) == "float32" and wire_shape(a) == [2, 3, 4]
    np.testing.assert_array_equal(from_bytes(data, wire_shape(a), "float32"), a.astype(np.float32))
    assert data[:4] == np.float32(a.flat[0]).astype("<f4").tobytes()
    assert to_bytes(np.array([1.5], dtype=">f8")) == np.array([1.5], dtype="<f4").tobytes()


def test_ints_and_bools_travel_as_int32() -> None:
    assert wire_dtype(np.array([1, 2], dtype=np.int64)) == wire_dtype(np.array([True])) == "int32"
    np.testing.assert_array_equal(from_bytes(to_bytes(np.array([[1, -2], [3, 4]])), [2, 2], "int32"), [[1, -2], [3, 4]])
    assert from_bytes(to_bytes(np.array([True, False, True])), [3], "int32").tolist() == [1, 0, 1]
    assert to_bytes(np.zeros((0, 3), dtype=np.float32)) == b""


def test_bad_inputs_raise() -> None:
    with pytest.raises(ShapeError, match="int32 range"):
        to_bytes(np.array([2**40]))
    with pytest.raises(ShapeError, match="dtype"):
        to_bytes(np.array(["a"]))
    with pytest.raises(ShapeError, match="bytes"):
        from_bytes(b"\x00" * 8, [3], "float32")
    with pytest.raises(ShapeError, match="dtype"):
        from_bytes(b"", [0], "float64")
