"""Bounded retries with exponential backoff for SQLite's ``database is locked`` / ``busy`` errors.

SQLite already waits up to ``busy_timeout`` for a lock; these retries cover the cases where it gives up early
(e.g. while another process converts the file to WAL or recovers a WAL after a crash) and long lock holders.
"""
from __future__ import annotations

import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..errors import WorkspaceError

__all__ = ["is_busy_error", "retry_on_busy", "RetryPolicy", "DEFAULT_RETRY"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying a busy database."""

    max_attempts: int = 10
    """Attempts in all, the first included."""
    base_delay_s: float = 0.02
    """Sleep before the second attempt, s; doubles each time (with ±50 % jitter)."""
    max_delay_s: float = 2.0
    """Cap on one sleep, s."""
    deadline_s: float = 180.0
    """Give up once this much time has passed since the first attempt, s (each attempt itself may wait up to
    the connection's ``busy_timeout``)."""

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Sleep before attempt ``attempt + 1`` (``attempt`` counts from 1), s."""
        d = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return d * rng.uniform(0.5, 1.5)


DEFAULT_RETRY = RetryPolicy()


def is_busy_error(exc: BaseException) -> bool:
    """True if ``exc`` is SQLite telling that another connection holds a lock (SQLITE_BUSY / SQLITE_LOCKED)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    msg = str(exc).lower()
    return "database is locked" in msg or "database is busy" in msg or "database table is locked" in msg


def retry_on_busy(fn: Callable[[], T], what: str = "write to the workspace", policy: RetryPolicy = DEFAULT_RETRY) -> T:
    """Call ``fn()``; while it raises a busy/locked error, sleep with exponential backoff and call it again.

    ``fn`` must be safe to repeat (a whole transaction, or a statement that had no effect when it failed).
    Other errors propagate unchanged. When the attempts or the deadline run out, raises WorkspaceError.
    """
    rng = random.Random()
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy_error(exc):
                raise
            elapsed = time.monotonic() - start
            if attempt >= policy.max_attempts or elapsed >= policy.deadline_s:
                raise WorkspaceError(
                    f"Could not {what}: the workspace database stayed locked for {elapsed:.1f} s over {attempt} "
                    f"attempts (expected another process to finish its write within that time). Find the process "
                    f"holding a long write transaction (a stuck job or kernel), stop it, and try again."
                ) from exc
            delay = min(policy.delay_s(attempt, rng), max(0.0, policy.deadline_s - elapsed))
            logger.debug("workspace busy while trying to %s (attempt %d): %s; retrying in %.3f s",
                         what, attempt, exc, delay)
            time.sleep(delay)
