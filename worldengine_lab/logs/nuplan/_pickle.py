"""A restricted unpickler for nuPlan's pickled columns (spec §1.2).

nuPlan pickles ``Translation``, ``Rotation``, ``CameraIntrinsic`` and distortion lists, all list subclasses
from ``nuplan.database.common.data_types``. We accept exactly those names (and ``builtins.list``),
map them to ``list`` and refuse every other global, so a hostile .db cannot run code.
"""
from __future__ import annotations

import io
import pickle
from typing import Any

from ...errors import CorruptFileError

__all__ = ["ALLOWED_CLASSES", "loads_restricted"]

ALLOWED_CLASSES: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "list"),
        ("nuplan.database.common.data_types", "Translation"),
        ("nuplan.database.common.data_types", "Rotation"),
        ("nuplan.database.common.data_types", "CameraIntrinsic"),
        ("nuplan.database.common.data_types", "Distortion"),
        ("nuplan.database.common.data_types", "Size"),
        ("nuplan.database.common.data_types", "Visibility"),
    }
)


class _ListOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        if (module, name) in ALLOWED_CLASSES:
            return list
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def loads_restricted(data: bytes, where: str) -> list:
    """Unpickle ``data`` allowing only nuPlan's list-like classes; return a plain (nested) list.

    Raises CorruptFileError naming ``where`` (e.g. 'log.db: camera.rotation') for anything else.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CorruptFileError(f"{where}: expected a pickled BLOB, received {type(data).__name__}")
    try:
        value = _ListOnlyUnpickler(io.BytesIO(bytes(data))).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a data error here
        raise CorruptFileError(
            f"{where}: not an allowed pickled list ({exc}); only {sorted(n for _, n in ALLOWED_CLASSES)} are accepted"
        ) from exc
    if not isinstance(value, list):
        raise CorruptFileError(f"{where}: expected a list-like value, received {type(value).__name__}")
    return value
