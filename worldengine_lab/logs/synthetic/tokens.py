"""Deterministic 8-byte tokens: a keyed counter passed through the splitmix64 bijection.

Tokens depend only on the key (e.g. the log name) and the order in which they are taken, never on time,
process or hash seeds, so the same seed writes byte-identical files.

Examples:
    >>> a, b = TokenStream("log-a"), TokenStream("log-a")
    >>> a.take(3) == b.take(3)
    True
    >>> len(a.take(1)[0])
    8
"""
from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["TokenStream", "fixed_token", "splitmix64"]

_C1, _C2, _C3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, a bijection on uint64: ``x [...]`` -> ``[...]`` uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _C1
        z = (z ^ (z >> np.uint64(30))) * _C2
        z = (z ^ (z >> np.uint64(27))) * _C3
        return z ^ (z >> np.uint64(31))


def fixed_token(name: str) -> bytes:
    """A token that depends only on ``name`` (for rows shared by every log, e.g. categories)."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


class TokenStream:
    """Distinct 8-byte tokens for one file, taken in order from a key-dependent counter."""

    def __init__(self, key: str) -> None:
        self._base = np.uint64(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big"))
        self._next = 0

    def take(self, n: int) -> list[bytes]:
        """The next ``n`` tokens."""
        with np.errstate(over="ignore"):
            x = self._base + np.arange(self._next, self._next + n, dtype=np.uint64)
        self._next += n
        raw = splitmix64(x).astype(">u8").tobytes()
        return [raw[8 * i: 8 * i + 8] for i in range(n)]
