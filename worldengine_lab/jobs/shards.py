"""Shards: split a list of work items (scenario ids) into contiguous pieces and map a function over them.

:func:`map_local` is the in-process map used by the ``local`` backend; ``ray_backend.map_shards`` is the same
contract on a Ray cluster. Both return results in shard order, call ``on_result(index, result)`` as each shard
finishes, and stop between shards when ``should_stop()`` turns true.

Examples:
    >>> split_shards(list("abcde"), 2)
    [['a', 'b', 'c'], ['d', 'e']]
    >>> map_local(len, split_shards(list("abcde"), 2))
    [3, 2]
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence, TypeVar

from ..errors import ShapeError

__all__ = ["split_shards", "map_local", "ShardCallback", "StopCheck"]

T = TypeVar("T")
R = TypeVar("R")

ShardCallback = Callable[[int, Any], None]
"""``on_result(shard_index, result)``, called in the driver as each shard finishes."""
StopCheck = Callable[[], None]
"""Called between shards; raises (e.g. ``JobCancelled``) to stop the map."""


def split_shards(items: Sequence[T], num_shards: int | None = None, shard_size: int | None = None) -> list[list[T]]:
    """Contiguous, nearly equal shards of ``items`` (order kept; no empty shard).

    Give ``num_shards`` (at most ``len(items)`` are made) or ``shard_size`` (items per shard), not both.
    """
    if (num_shards is None) == (shard_size is None):
        raise ShapeError(f"split_shards: expected exactly one of num_shards, shard_size; received "
                         f"num_shards={num_shards}, shard_size={shard_size}")
    items = list(items)
    if not items:
        return []
    if shard_size is not None:
        if shard_size < 1:
            raise ShapeError(f"split_shards(shard_size): expected >= 1, received {shard_size}")
        num_shards = math.ceil(len(items) / shard_size)
    assert num_shards is not None
    if num_shards < 1:
        raise ShapeError(f"split_shards(num_shards): expected >= 1, received {num_shards}")
    n = min(num_shards, len(items))
    base, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        stop = start + base + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def map_local(fn: Callable[[T], R], shards: Sequence[T], on_result: ShardCallback | None = None,
              check_stop: StopCheck | None = None) -> list[R]:
    """``[fn(s) for s in shards]`` in this process, with a callback per shard and a stop check between shards."""
    out: list[R] = []
    for i, shard in enumerate(shards):
        if check_stop is not None:
            check_stop()
        res = fn(shard)
        out.append(res)
        if on_result is not None:
            on_result(i, res)
    return out
