"""Files of tensors and plain data: written atomically with ``torch.save``, read only with
``torch.load(weights_only=True)`` so that nothing untrusted is unpickled (checkpoints, vocabularies, caches)."""
from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .artifacts import atomic_write_bytes, sha256_bytes, sha256_file
from .errors import CorruptFileError, MissingFileError

__all__ = ["save_tensors", "load_tensors", "save_training_state", "load_training_state", "previous_path",
           "digest_path", "brief_error"]

logger = logging.getLogger(__name__)


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


def digest_path(path: str | os.PathLike[str]) -> Path:
    """The sha256 sidecar of a training-state file: ``<name>.sha256`` beside it."""
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def previous_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`save_training_state` keeps the state it replaces: ``<name>.prev`` (``last.pt.prev``; not a
    ``*.pt`` name, so checkpoint pickers do not list it)."""
    p = Path(path)
    return p.with_name(p.name + ".prev")


def save_training_state(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write a resumable training state (e.g. ``last.pt``) with its sha256 sidecar, keeping the state it replaces
    as :func:`previous_path` (with its sidecar) so a damaged newest file can fall back one checkpoint.

    Every step is an atomic rename or write, ordered so that a kill at any point leaves a loadable state:
    sidecar and file move to ``.prev`` (sidecar first), then the new file is written, then its sidecar.
    """
    p = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    prev, digest, prev_digest = previous_path(p), digest_path(p), digest_path(previous_path(p))
    if p.exists():
        if digest.exists():
            os.replace(digest, prev_digest)
        else:
            prev_digest.unlink(missing_ok=True)
        os.replace(p, prev)
    atomic_write_bytes(p, data)
    atomic_write_bytes(digest, (sha256_bytes(data) + "\n").encode())
    return p


def _verified(p: Path) -> str | None:
    """None if ``p`` matches its sidecar (or has none); else why not."""
    side = digest_path(p)
    if not side.exists():
        return None
    want = side.read_text(errors="replace").strip()
    have = sha256_file(p)
    return None if want == have else f"content hash {have[:12]} differs from the recorded {want[:12]} ({side.name})"


def load_training_state(path: str | os.PathLike[str], what: str = "training state",
                        remedy: str = "delete it to restart the run") -> tuple[Any, Path] | None:
    """Read the newest good training state written by :func:`save_training_state`: ``path`` if its content hash
    matches its sidecar and it loads, else (with a warning) the previous one. Returns ``(state, file read)``, or
    None when neither file exists.

    Raises:
        CorruptFileError: files exist but none is intact (names each file and why).
    """
    problems = []
    for cand in (Path(path), previous_path(path)):
        if not cand.exists():
            continue
        try:
            why = _verified(cand)
            state = load_tensors(cand, what, remedy) if why is None else None
        except (FileNotFoundError, MissingFileError):  # moved by a writer rotating it right now: not there
            continue
        except CorruptFileError as exc:
            why = str(exc)
        if why is None:
            if problems:
                logger.warning("%s: using the previous checkpoint %s instead (%s)", what, cand, "; ".join(problems))
            return state, cand
        problems.append(f"{cand}: {why}")
        logger.warning("%s %s is damaged: %s", what, cand, why)
    if problems:
        raise CorruptFileError(f"{what}: no intact checkpoint ({'; '.join(problems)}); {remedy}")
    return None


def brief_error(e: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` on one line, cut to ``limit`` characters (state-dict errors list every tensor)."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{' ...' if len(text) > limit else ''}"
