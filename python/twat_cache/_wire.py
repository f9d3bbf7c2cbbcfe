"""The async hit path of ``rcache`` on one server: each event loop gets a connection of
its own per cached function (``LoopWire`` in ``crates/twat-cache-python/src/wire.rs``),
which the loop watches with ``add_reader``. A hit is one round trip on the loop, with
no executor thread; a miss, a cluster, TLS, or a wire that cannot be used take the
executor path (``twat_cache._async.cached_call``).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from ._async import Slot, cached_call
from ._core import LoopWire

__all__ = ["after_fork_in_child", "wire_call"]

# Per loop: cached function id -> its LoopWire, or the loop time before which no new
# connection is tried (a connection is being made, failed, or cannot be made).
_WIRES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Any]] = weakref.WeakKeyDictionary()
_RETRY = 1.0


def after_fork_in_child() -> None:
    """The parent's connections are its own: the child makes its own."""
    _WIRES.clear()


def _wire(loop: asyncio.AbstractEventLoop, cached: Any) -> LoopWire | None:
    wires = _WIRES.get(loop)
    if wires is None:
        wires = _WIRES[loop] = {}
    wire = wires.get(id(cached))
    if isinstance(wire, LoopWire):
        if not wire.broken:
            return wire
        wires.pop(id(cached), None)
        wire = None
    if wire is None or loop.time() >= wire[0]:
        wires[id(cached)] = (loop.time() + 3600.0, cached)  # one connection attempt at a time
        loop.create_task(_connect(loop, cached, wires))
    return None


async def _connect(loop: asyncio.AbstractEventLoop, cached: Any, wires: dict[int, Any]) -> None:
    try:
        wire = await loop.run_in_executor(None, LoopWire.connect, cached, loop)
    except Exception:
        wire = None  # the server is unreachable: the executor path warns and counts it
    if wire is None:
        # No wire for this store (cluster, TLS) is retried as seldom as a dead server.
        wires[id(cached)] = (loop.time() + _RETRY, cached)
        return
    loop.add_reader(wire.fd, wire.on_readable)
    wires[id(cached)] = wire


async def wire_call(slot: Slot, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call of an async ``rcache`` function: the value from the loop's wire, or
    ``cached_call`` (the miss path, single flight, executor I/O)."""
    wire = _wire(asyncio.get_running_loop(), slot.owner)  # type: ignore[attr-defined]
    if wire is not None:
        future = wire.fetch(slot.key)  # type: ignore[attr-defined]
        if future is not None:
            found, value = await future
            if found:
                slot.tally(True)
                return value
    return await cached_call(slot, func, args, kwargs)
