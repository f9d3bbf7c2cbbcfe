"""Background refreshes of stale entries (``stale_ttl=``).

A call that finds its entry stale returns the stale value at once; the one call that
wins the key's refresh (single flight: per process, and across processes for the
shared engines) hands the computation to a small pool of worker threads here, for a
sync function, or to a task on the running event loop, for an async one (see
``_async.refresh``). A refresh that raises keeps the stale value and logs a warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["submit"]

# Refreshes are rare (one per key per stale period) and mostly wait on I/O.
_WORKERS = 4

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_log = logging.getLogger("twat_cache")


def submit(job: Callable[[], Any]) -> None:
    """Runs ``job()`` on a refresh worker thread."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="twat-cache-refresh")
        pool = _pool
    pool.submit(_run, job)


def _run(job: Callable[[], Any]) -> None:
    try:
        job()
    except Exception:  # a refresh reports its own failures; this is a last resort
        _log.exception("twat_cache: a background refresh failed")


def after_fork_in_child() -> None:
    """The parent's workers are not in the child (and its lock may have been taken)."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()
