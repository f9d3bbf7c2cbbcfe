"""What a child made by ``os.fork()`` needs (``multiprocessing``'s default start method on
Linux before Python 3.14): the engines' locks are held by the forking thread across the
fork, so no lock is left taken by a thread that does not exist in the child; worker
pools, the background thread and SQLite connections are made anew there; and the
package's own locks, async flights and TTL sweeper start afresh in the child."""

from __future__ import annotations

import os
import sys

from . import _async, _core, _refresh, _registry, _wire


def _after_in_child() -> None:
    _core.fork_after_in_child()
    _async.after_fork_in_child()
    _refresh.after_fork_in_child()
    _registry.after_fork_in_child()
    _wire.after_fork_in_child()
    _fold_at_child_exit()


class _Child:
    """What ``multiprocessing`` calls back in a child it starts (it keeps a weak reference)."""

    @staticmethod
    def started(_: object) -> None:
        import multiprocessing.util

        multiprocessing.util.Finalize(None, _core.fold_stats, exitpriority=0)


_CHILD = _Child()


def _fold_at_child_exit() -> None:
    """A ``multiprocessing`` child ends with ``os._exit``, which skips ``atexit``: its
    counts are folded by a finalizer that ``multiprocessing`` runs there instead. (It
    clears the finalizers it inherited when the child starts, then calls its
    after-fork hooks: the finalizer is registered from one of those.)"""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_CHILD, _Child.started)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_core.fork_prepare,
        after_in_parent=_core.fork_after_in_parent,
        after_in_child=_after_in_child,
    )
