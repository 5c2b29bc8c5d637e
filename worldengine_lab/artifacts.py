"""Workspace location, content hashes, code version, provenance stamps and atomic file writes.

The workspace folder is chosen by, in order: an explicit path (``--workspace DIR``), the environment variable
``WORLDENGINE_LAB_WORKSPACE``, else ``./workspace`` relative to the current directory.

Examples:
    >>> sha256_bytes(b"abc")[:16]
    'ba7816bf8f01cfea'
    >>> resolve_workspace("/tmp/ws").as_posix()
    '/tmp/ws'
"""
from __future__ import annotations

import datetime as _dt
import functools
import getpass
import hashlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ._version import __version__

__all__ = [
    "WORKSPACE_ENV",
    "DEFAULT_WORKSPACE",
    "resolve_workspace",
    "sha256_bytes",
    "sha256_file",
    "code_version",
    "utc_now_iso",
    "current_user",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_copy_file",
]

logger = logging.getLogger(__name__)

WORKSPACE_ENV = "WORLDENGINE_LAB_WORKSPACE"
"""Environment variable naming the workspace folder when no explicit path is given."""

DEFAULT_WORKSPACE = "workspace"
"""Workspace folder used when neither a path nor ``$WORLDENGINE_LAB_WORKSPACE`` is given (relative to cwd)."""

_CHUNK_BYTES = 1 << 20  # 1 MiB read/write chunks for hashing and copying


# -- locations ----------------------------------------------------------------------------------------------
def resolve_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute workspace folder: ``path``, else ``$WORLDENGINE_LAB_WORKSPACE``, else ``./workspace``.

    ``~`` is expanded; symlinks are kept as given (the folder need not exist yet).
    """
    if path is None or str(path) == "":
        env = os.environ.get(WORKSPACE_ENV, "")
        path = env if env else DEFAULT_WORKSPACE
    return Path(path).expanduser().absolute()


# -- hashes -------------------------------------------------------------------------------------------------
def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = _CHUNK_BYTES) -> str:
    """Hex sha256 of a file's content, read in ``chunk_bytes`` chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()


# -- provenance -----------------------------------------------------------------------------------------------
def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5.0, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, plus ``+g<git short hash>`` (and ``.dirty`` for uncommitted changes to the
    package) when the package is imported from a git checkout that tracks it; the plain version otherwise.

    Computed once per process.
    """
    pkg = Path(__file__).resolve().parent
    tracked = _git(["ls-files", "--error-unmatch", "__init__.py"], pkg)
    if tracked is None or tracked.returncode != 0:
        return __version__
    head = _git(["rev-parse", "--short", "HEAD"], pkg)
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return __version__
    version = f"{__version__}+g{head.stdout.strip()}"
    diff = _git(["diff", "--quiet", "HEAD", "--", "."], pkg)
    if diff is not None and diff.returncode == 1:
        version += ".dirty"
    return version


def utc_now_iso() -> str:
    """The current time as an ISO-8601 UTC string with milliseconds, e.g. ``2025-01-31T12:00:00.000+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def current_user() -> str:
    """The login name of whoever runs this process, or ``'unknown'`` where it cannot be determined."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # getpass raises OSError/KeyError without a passwd entry or env var
        return "unknown"


# -- atomic writes --------------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], mode: int) -> Path:
    """Write through ``write(file)`` into a temporary file beside ``path``, fsync it, then ``os.replace`` it
    over ``path``. Readers see either the old file or the whole new one; a crash leaves no partial file."""
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)
    return dst


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview, mode: int = 0o644) -> Path:
    """Atomically write ``data`` to ``path`` (parents created); return the path.

    Examples:
        >>> import tempfile, pathlib
        >>> p = atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.bin", b"xyz")
        >>> p.read_bytes()
        b'xyz'
    """
    return _atomic_write(path, lambda f: f.write(data), mode)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8", mode: int = 0o644) -> Path:
    """Atomically write ``text`` to ``path`` (parents created); return the path."""
    return atomic_write_bytes(path, text.encode(encoding), mode)


def atomic_copy_file(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], mode: int = 0o644
) -> tuple[Path, str]:
    """Atomically copy ``src`` to ``dst``, hashing while copying; return ``(dst, sha256 hex)``."""
    h = hashlib.sha256()

    def write(out: BinaryIO) -> None:
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
                h.update(chunk)
                out.write(chunk)

    return _atomic_write(dst, write, mode), h.hexdigest()
