"""Fewer garbage collections while dbt runs in this process.

A flow run holds everything Prefect and dbt import, and then dbt's manifest: several hundred thousand long-lived
objects that CPython's cyclic collector scans again at every full collection, while dbt and Prefect allocate enough
short-lived objects to trigger a young collection every 700 allocations. Freezing the heap that exists when dbt starts
(it moves to a generation the collector never scans) and collecting young objects every 10,000 allocations instead
took the collection time of a build of the tenant project from 1.3 s to 0.9 s with per-node task runs and from
0.9 s to 0.6 s in lean mode (measured with `gc.callbacks`).
Frozen objects that die while dbt runs are collected later, when the last dbt invocation in the process ends and the
heap is unfrozen.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Freeze the current heap and collect young objects less often; nested and concurrent uses share one setting."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), _saved[1], _saved[2])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
