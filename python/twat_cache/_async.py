"""The miss path of async cached functions: single flight across tasks, threads and
event loops.

A hit never comes here: the native call returns an awaitable that is already done. A
miss returns ``cached_call(...)``, a coroutine given a *slot* (one engine, one key; see
``crates/twat-cache-python/src/async_slot.rs``). The rules:

- The first caller of a missing key starts the computation as a task of its own (the
  *flight*) on its loop; every caller of that key, the first included, waits for that
  task through ``asyncio.shield``. So a cancelled caller leaves the computation running
  for the others, and when the last waiter leaves, the computation is cancelled and the
  flight ends (the next call starts afresh).
- A caller on another loop (another thread, or a loop that is not the one running the
  flight) waits on a future of its own loop, settled thread-safely when the task ends.
  A flight whose loop is closed or not running is not joined: the caller starts anew.
- Values are stored in the engine, which knows nothing of loops: a value computed under
  one ``asyncio.run`` is a hit under the next.
- A computation that calls its own function with the same key computes directly
  (waiting for itself would never end); the flight keys a computation is serving are
  carried in a context variable, which its tasks inherit.
- Persistent slots (``slot.blocking``) do their I/O in the loop's default executor, so
  the event loop never waits for the disk. Their lookup is the flight's first step, so
  concurrent callers of one key share one lookup as well as one computation.
- Freshness (``stale_ttl``): a stale value that is served starts one *refresh* of its
  key (``refresh``), a flight of its own that nobody waits for; callers that miss
  while it runs join it. With ``stale_if_error``, a computation that raises is
  answered by the value still kept (``slot.fallback``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any, Protocol

__all__ = ["cached_call", "refresh"]

_log = logging.getLogger("twat_cache")

# Refresh tasks, held until they end (the loop keeps only weak references to tasks).
_REFRESHING: set[asyncio.Task[Any]] = set()


class Slot(Protocol):
    """One engine and one key (``MemorySlot`` or ``DiskSlot`` in ``_core``)."""

    @property
    def flight_key(self) -> Hashable: ...
    @property
    def blocking(self) -> bool: ...
    @property
    def leases(self) -> bool: ...
    def peek(self) -> tuple[bool, Any, bool]: ...
    def store(self, value: Any) -> bool: ...
    def tally(self, hit: bool) -> None: ...
    def claim(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...
    def fallback(self, exc: BaseException) -> tuple[bool, Any]: ...
    def claim_refresh(self) -> bool: ...


_COMPUTING: contextvars.ContextVar[frozenset[Hashable]] = contextvars.ContextVar(
    "twat_cache_computing", default=frozenset()
)


class _Flight:
    """One computation in progress and the callers waiting for it."""

    __slots__ = ("closed", "foreign", "key", "loop", "task", "waiters")

    def __init__(self, key: Hashable, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.loop = loop
        self.task: asyncio.Task[Any] | None = None
        self.waiters = 0
        # Cancelled by cache_close: its waiters get the cancellation, and do not retry.
        self.closed = False
        # Futures of callers on other loops, settled when the task ends.
        self.foreign: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []


class _Flights:
    """Every flight of the process, by (engine, key); one lock, held only for dict
    updates (never across an await)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[Hashable, _Flight] = {}

    def join(self, key: Hashable, loop: asyncio.AbstractEventLoop) -> tuple[_Flight, bool, asyncio.Future[Any] | None]:
        """The flight for ``key`` and whether the caller leads it; a caller on another
        loop also gets the future it waits on."""
        with self.lock:
            flight = self.by_key.get(key)
            if flight is not None and flight.loop is not loop and not flight.loop.is_running():
                flight = None  # its loop is closed or stopped: it may never end
            if flight is None:
                flight = self.by_key[key] = _Flight(key, loop)
                flight.waiters = 1
                return flight, True, None
            flight.waiters += 1
            if flight.loop is loop:
                return flight, False, None
            future = loop.create_future()
            flight.foreign.append((loop, future))
            return flight, False, future

    def leave(self, flight: _Flight) -> None:
        """A waiter was cancelled; the last one out cancels the computation."""
        with self.lock:
            flight.waiters -= 1
            if flight.waiters > 0 or flight.task is None or flight.task.done():
                return
            self._retire(flight)
        task = flight.task
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is flight.loop:
            task.cancel()
        else:
            # A closed loop raises RuntimeError: its task will never run again anyway.
            with contextlib.suppress(RuntimeError):
                flight.loop.call_soon_threadsafe(task.cancel)

    def finish(self, flight: _Flight, task: asyncio.Task[Any]) -> None:
        """The computation ended (run on its loop): end the flight and settle the
        futures of callers on other loops."""
        if not task.cancelled():
            task.exception()  # retrieved here, so asyncio never logs it as unretrieved
        with self.lock:
            self._retire(flight)
            foreign, flight.foreign = flight.foreign, []
        for loop, future in foreign:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, task)

    def _retire(self, flight: _Flight) -> None:
        if self.by_key.get(flight.key) is flight:
            del self.by_key[flight.key]


_FLIGHTS = _Flights()


def closer(cached: Any) -> Callable[..., Any]:
    """``cache_close`` of an async cached function (async-lru's name): cancels its
    computations in flight, or with ``wait=True`` waits for them; either way no flight
    of it is left running when it returns. Flights on another event loop are cancelled
    there."""

    async def cache_close(*, wait: bool = False) -> None:
        owners = set(cached._flight_owners())
        with _FLIGHTS.lock:
            flights = [f for k, f in _FLIGHTS.by_key.items() if isinstance(k, tuple) and k[0] in owners]
        here = asyncio.get_running_loop()
        ours: list[asyncio.Task[Any]] = []
        for flight in flights:
            task = flight.task
            if task is None or task.done():
                continue
            flight.closed = not wait
            if flight.loop is here:
                ours.append(task)
                if not wait:
                    task.cancel()
            elif not wait:
                with contextlib.suppress(RuntimeError):  # a closed loop runs nothing
                    flight.loop.call_soon_threadsafe(task.cancel)
        if ours:
            await asyncio.gather(*ours, return_exceptions=True)

    return cache_close


def after_fork_in_child() -> None:
    """In a child made by ``fork()``: the parent's flights run on loops and threads that
    are not here (and their lock may have been held by one of them)."""
    _FLIGHTS.__init__()  # type: ignore[misc]


def _settle(future: asyncio.Future[Any], task: asyncio.Task[Any]) -> None:
    """Copies the task's outcome to a future of another loop."""
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (exc := task.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(task.result())


async def _run(slot: Slot, method: Callable[..., Any], *args: Any) -> Any:
    """Runs a slot method on the loop, or in its executor when it does I/O."""
    if slot.blocking:
        return await asyncio.get_running_loop().run_in_executor(None, method, *args)
    return method(*args)


async def _compute(slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    value = await func(*args, **kwargs)
    await _run(slot, slot.store, value)
    return value


async def _lead(
    slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """The flight's task: ``(True, value)`` when the store has it (a persistent store is
    looked up here, once for every caller of the flight; a memory engine is checked again
    because a flight may have stored it since the native lookup), else ``(False, value)``
    with the function's value, stored before the waiters get it. A stale value served
    from a persistent store starts its refresh; a computation that raises may be
    answered by a stale value (``stale_if_error``)."""
    found, value, stale = await _run(slot, slot.peek)
    if found:
        if stale:
            # After this flight's task is done, so the refresh is a flight of its own.
            asyncio.get_running_loop().call_soon(refresh, slot, func, args, kwargs, value)
        return True, value
    try:
        return await _fresh(slot, func, args, kwargs)
    except Exception as exc:
        found, value = await _run(slot, slot.fallback, exc)
        if not found:
            raise
        return True, value


async def _fresh(
    slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """A value computed here (``(False, value)``), or one another process stored while
    this one waited for the key's lease (``(True, value)``)."""
    if not slot.leases:
        return False, await _compute(slot, func, args, kwargs)
    found, value = await _claim(slot)
    if found:
        return True, value
    try:
        # A stored value gives the lease back with it (one round trip).
        return False, await _compute(slot, func, args, kwargs)
    except BaseException:
        # Raised or cancelled: the lease goes at once (processes waiting on it go on).
        await asyncio.shield(_run(slot, slot.release))
        raise


async def _claim(slot: Slot) -> tuple[bool, Any]:
    """Takes the key's cross-process lease, or waits in the executor for the process
    that holds it (``(True, value)`` when it stored the value). A task cancelled while
    the claim is under way gives back whatever lease the claim ends up taking."""
    loop = asyncio.get_running_loop()
    claiming = loop.run_in_executor(None, slot.claim)
    try:
        return await asyncio.shield(claiming)
    except asyncio.CancelledError:
        claiming.add_done_callback(lambda _done: slot.release())
        raise


def _being_cancelled(*, foreign: bool) -> bool:
    """Whether the current task itself was cancelled. Python 3.10 cannot tell
    (``Task.cancelling`` is 3.11+): there a waiter on another loop assumes the leading
    loop ended, and a waiter on the leading loop that it was cancelled."""
    me = asyncio.current_task()
    if me is None:
        return False
    cancelling = getattr(me, "cancelling", None)
    if cancelling is None:
        return not foreign
    return bool(cancelling() > 0)


async def _wait(flight: _Flight, future: asyncio.Future[Any] | None) -> tuple[bool, Any]:
    """Waits for the flight's outcome: ``(True, outcome)``, its exception, or
    ``(False, None)`` when the computation was cancelled under a caller that was not
    (its loop is shutting down): the caller tries again."""
    target: asyncio.Future[Any] = future if future is not None else flight.task  # type: ignore[assignment]
    try:
        return True, await asyncio.shield(target)
    except asyncio.CancelledError:
        if target.cancelled() and not flight.closed and not _being_cancelled(foreign=future is not None):
            return False, None
        _FLIGHTS.leave(flight)
        raise


def refresh(slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], stale: Any) -> None:
    """A stale value was served: starts one refresh of its key as a task of the
    running loop, unless a computation of the key is under way (in this process; a
    persistent store's lease also keeps other processes from refreshing it twice)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # not on a loop: the next call on one refreshes it
    key = slot.flight_key
    with _FLIGHTS.lock:
        current = _FLIGHTS.by_key.get(key)
        if current is not None and (current.task is None or not current.task.done()):
            return
        flight = _FLIGHTS.by_key[key] = _Flight(key, loop)
    context = contextvars.copy_context()
    context.run(_COMPUTING.set, _COMPUTING.get() | {key})
    task = context.run(loop.create_task, _refresh(slot, func, args, kwargs, stale))
    flight.task = task
    task.add_done_callback(functools.partial(_FLIGHTS.finish, flight))
    _REFRESHING.add(task)
    task.add_done_callback(_REFRESHING.discard)


async def _refresh(
    slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], stale: Any
) -> tuple[bool, Any]:
    """The refresh's task: computes and stores the value; callers that joined meanwhile
    get it. Another process refreshing the key leaves the stale value to them."""
    if not await _run(slot, slot.claim_refresh):
        return True, stale
    try:
        return False, await _compute(slot, func, args, kwargs)
    except BaseException as exc:
        await asyncio.shield(_run(slot, slot.release))
        if isinstance(exc, Exception):
            _log.warning("twat_cache: refreshing a stale entry raised %r; the stale value stays", exc)
        raise


async def cached_call(slot: Slot, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The value of ``func(*args, **kwargs)``: from the store, or computed once for every
    concurrent caller of the same key. Callers join the flight before anything else, so
    none of them can miss a computation that ends while it looks."""
    loop = asyncio.get_running_loop()
    key = slot.flight_key
    computing = _COMPUTING.get()
    if key in computing:
        slot.tally(False)
        return await _compute(slot, func, args, kwargs)
    while True:
        flight, lead, future = _FLIGHTS.join(key, loop)
        if lead:
            context = contextvars.copy_context()
            context.run(_COMPUTING.set, computing | {key})
            # A task made inside `context.run` runs in a copy of it (create_task's
            # context= is 3.11+).
            task = context.run(loop.create_task, _lead(slot, func, args, kwargs))
            flight.task = task
            task.add_done_callback(functools.partial(_FLIGHTS.finish, flight))
        try:
            settled, outcome = await _wait(flight, future)
        except Exception as exc:
            if lead:
                raise  # the flight's own task already fell back where it could
            # A refresh this caller joined raised: a kept value may answer.
            found, value = await _run(slot, slot.fallback, exc)
            if not found:
                raise
            slot.tally(True)
            return value
        if settled:
            found, value = outcome
            # A waiter did not run the function: a hit, as lru_cache and async-lru count it.
            slot.tally(found or not lead)
            return value
