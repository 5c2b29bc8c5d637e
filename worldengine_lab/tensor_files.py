"""Files of tensors and plain data: written atomically with ``torch.save``, read only with
``torch.load(weights_only=True)`` so that nothing untrusted is unpickled (checkpoints, vocabularies, caches)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .artifacts import atomic_write_bytes
from .errors import CorruptFileError, MissingFileError

__all__ = ["save_tensors", "load_tensors", "brief_error"]


def save_tensors(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically; return the path."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_tensors(path: str | os.PathLike[str], what: str = "file", remedy: str = "re-create it") -> Any:
    """Read a :func:`save_tensors` file on the CPU with ``weights_only=True``.

    Args:
        what: what the file is, for messages (e.g. "checkpoint"); remedy: what the user should do if it is bad.
    Raises:
        MissingFileError: no file at ``path``; CorruptFileError: unreadable or not plain data (names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"expected a {what} at {str(p)!r}, found none; check the path or {remedy}")
    try:
        return torch.load(p, weights_only=True, map_location="cpu")
    except Exception as e:  # torn writes, foreign pickles, other formats: one clear message
        raise CorruptFileError(f"{what} {str(p)!r}: expected a torch.save file of plain data, could not read it "
                               f"({brief_error(e)}); {remedy}") from e


def brief_error(e: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` on one line, cut to ``limit`` characters (state-dict errors list every tensor)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{' ...' if len(text) > limit else ''}"
