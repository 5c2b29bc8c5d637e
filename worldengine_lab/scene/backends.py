"""Which rasterizer renders: ``"gsplat"`` (CUDA), ``"torch_ref"`` (CPU, pure torch) or ``"auto"``.

gsplat is an optional dependency (``pip install worldengine_lab[gpu]``). ``import gsplat`` succeeds on a CPU
machine and its compiled extension loads lazily on the first CUDA call (spec ``gaussian-splatting.md`` §1), so
availability is probed once, on demand: CUDA must be available, ``gsplat.cuda._backend`` must import, and its
``_C`` extension must not be None. The result is cached for the process.

Examples:
    >>> resolve_backend("torch_ref")
    'torch_ref'
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..errors import BackendUnavailableError

__all__ = ["BACKENDS", "GSPLAT_VERSION", "gsplat_available", "available_backends", "resolve_backend",
           "rasterizer"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "gsplat", "torch_ref")
"""Accepted ``backend=`` values."""
GSPLAT_VERSION = "1.5.3"
"""The gsplat release whose CUDA semantics the torch renderer reproduces (constants are version-specific)."""

_probe: tuple[bool, str] | None = None


def _probe_gsplat() -> tuple[bool, str]:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        return False, f"torch is not importable ({exc})"
    if not torch.cuda.is_available():
        return False, "CUDA is not available"
    try:
        import gsplat
        from gsplat.cuda import _backend  # may build the extension the first time (minutes)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable": ImportError, OSError, build errors
        return False, f"gsplat could not be imported ({type(exc).__name__}: {exc})"
    if getattr(_backend, "_C", None) is None:
        return False, "gsplat's CUDA extension is not built (no prebuilt wheel and no CUDA toolkit)"
    version = getattr(gsplat, "__version__", "unknown")
    if version != GSPLAT_VERSION:
        log.warning("gsplat %s is installed; the torch renderer and its parity tests follow gsplat %s",
                    version, GSPLAT_VERSION)
    return True, ""


def gsplat_available() -> bool:
    """True when gsplat can rasterize here (CUDA + the compiled extension); probed once and cached."""
    global _probe
    if _probe is None:
        _probe = _probe_gsplat()
        if not _probe[0]:
            log.debug("gsplat backend unavailable: %s", _probe[1])
    return _probe[0]


def available_backends() -> tuple[str, ...]:
    """Concrete backends usable here, preferred first: ``("gsplat", "torch_ref")`` or ``("torch_ref",)``."""
    return ("gsplat", "torch_ref") if gsplat_available() else ("torch_ref",)


def resolve_backend(backend: str = "auto") -> str:
    """Map ``"auto" | "gsplat" | "torch_ref"`` to a concrete, usable backend name.

    Raises:
        BackendUnavailableError: an unknown name, or ``"gsplat"`` where it cannot run.
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"backend: expected one of {BACKENDS}, received {backend!r}; "
                                      "pass backend='auto' to pick the fastest available")
    if backend == "auto":
        return available_backends()[0]
    if backend == "gsplat" and not gsplat_available():
        assert _probe is not None
        raise BackendUnavailableError(f"gsplat needs CUDA and its compiled extension ({_probe[1]}); "
                                      "pass backend='torch_ref' (CPU) or backend='auto'")
    return backend


def rasterizer(backend: str) -> Callable[..., Any]:
    """The ``rasterization``-compatible function of a concrete backend (gsplat is imported only here)."""
    name = resolve_backend(backend)
    if name == "gsplat":
        from gsplat import rasterization

        return rasterization
    from .render_torch import rasterize

    return rasterize
