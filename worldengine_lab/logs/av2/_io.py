"""File access for Argoverse 2: Feather, Parquet and JSON readers that fail with the file in the message.

Every reader checks the container first (CorruptFileError), then the columns the caller relies on
(MissingColumnError), so a broken file never surfaces as a raw pyarrow/json exception.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ...errors import CorruptFileError, DataFormatError, MissingColumnError, MissingFileError

__all__ = ["require_file", "read_feather", "read_parquet", "read_json", "column"]

_PATH_KEY = b"worldengine_lab.path"


def require_file(path: Path, what: str, fix: str) -> Path:
    """Return ``path`` if it is a file, else raise MissingFileError naming it, ``what`` it is and ``fix``."""
    if not path.is_file():
        raise MissingFileError(f"{path}: expected {what}, but the file does not exist; {fix}")
    return path


def _check_columns(path: Path, schema: pa.Schema, required: Sequence[str], what: str) -> None:
    names = set(schema.names)
    missing = [c for c in required if c not in names]
    if missing:
        raise MissingColumnError(
            f"{path}: the {what} table lacks column(s) {missing} (has {sorted(names)}); "
            "re-export the file with the AV2 schema (spec/data-formats.md §2)"
        )


def read_feather(path: Path, required: Sequence[str], optional: Sequence[str] = (), what: str = "") -> pa.Table:
    """Read the ``required`` (+ present ``optional``) columns of an Arrow IPC (Feather v2) file.

    Raises CorruptFileError if the file is not a readable Feather file and MissingColumnError if a
    required column is absent.
    """
    what = what or path.name
    try:
        table = feather.read_table(path, memory_map=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: expected an Arrow IPC (Feather v2) file for the {what} table, but it cannot be read "
            f"({type(exc).__name__}: {exc}); the file is truncated or not Feather, download it again"
        ) from exc
    _check_columns(path, table.schema, required, what)
    keep = [c for c in list(required) + list(optional) if c in table.schema.names]
    return _validated(path, table.select(keep), "Feather", what)


def _validated(path: Path, table: pa.Table, container: str, what: str) -> pa.Table:
    """``table`` after a full check of its buffers (offsets, UTF-8): a damaged file that still parses is
    caught here, with its name, instead of as a raw pyarrow error when a column is converted."""
    try:
        table.validate(full=True)
    except (pa.ArrowException, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: the {container} {what} table parses but its data is damaged ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the file is corrupt, download it again"
        ) from exc
    meta = dict(table.schema.metadata or {})
    meta[_PATH_KEY] = str(path).encode()
    return table.replace_schema_metadata(meta)  # column() names the file in its errors


def read_parquet(path: Path, required: Sequence[str], optional: Sequence[str] = (), what: str = "") -> pa.Table:
    """Read the ``required`` (+ present ``optional``) columns of a Parquet file (errors as :func:`read_feather`)."""
    what = what or path.name
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: expected a Parquet file for the {what} table, but it cannot be read "
            f"({type(exc).__name__}: {exc}); the file is truncated or not Parquet, download it again"
        ) from exc
    _check_columns(path, schema, required, what)
    keep = [c for c in list(required) + list(optional) if c in schema.names]
    try:
        table = pq.read_table(path, columns=keep)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptFileError(
            f"{path}: the Parquet {what} table cannot be decoded ({type(exc).__name__}: {exc}); download it again"
        ) from exc
    return _validated(path, table, "Parquet", what)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; raise CorruptFileError (naming the file and position) if it is not valid JSON."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(
            f"{path}: expected a JSON {what}, but it does not parse ({exc}); the file is truncated or "
            "corrupt, download it again"
        ) from exc


def column(table: pa.Table, name: str, dtype: Any = None) -> np.ndarray:
    """Return column ``name`` of ``table`` as a numpy array (cast to ``dtype`` if given).

    Arrow nulls become NaN for floats; string columns come back as object arrays of str.
    """
    col = table.column(name)
    try:
        if dtype is not None and np.dtype(dtype).kind == "f":
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)
        arr = col.to_numpy(zero_copy_only=False)
        return arr if dtype is None else arr.astype(dtype)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        where = (table.schema.metadata or {}).get(_PATH_KEY, b"<table>").decode()
        raise DataFormatError(
            f"{where}: column '{name}': expected {np.dtype(dtype) if dtype is not None else 'values'} of type "
            f"{col.type} that convert to numpy, the conversion failed ({type(exc).__name__}: {str(exc)[:200]}); "
            "re-export the file with the AV2 schema (spec/data-formats.md §2)"
        ) from exc
