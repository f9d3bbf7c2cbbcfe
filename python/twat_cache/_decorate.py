"""What every decorator does around its engine: bare or called use, methods,
classmethods and staticmethods, refusing generators, keeping the function's metadata,
and registering the cache."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from . import _registry
from ._async import closer


def disabled_by_env() -> bool:
    """``TWAT_CACHE_DISABLE=1`` (or true/yes/on): every decorator calls straight through."""
    return os.environ.get("TWAT_CACHE_DISABLE", "").strip().lower() in {"1", "true", "yes", "on"}


def refuse_generators(decorator: str, func: Callable[..., Any]) -> None:
    """A generator's result is an iterator that can only be consumed once: never cached."""
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"{decorator} cannot cache generator function {func.__qualname__!r}: "
            "its result can be consumed only once; cache a function returning a list instead"
        )


def is_async(func: Callable[..., Any]) -> bool:
    """An ``async def`` function, a partial of one, or an object whose ``__call__`` is
    ``async def``: its calls return awaitables, and the cache stores what they return
    when awaited, never the coroutine."""
    if inspect.iscoroutinefunction(func) or _marked_async(func):
        return True
    if inspect.isfunction(func) or inspect.isclass(func):
        return False
    # A callable object: look at its class's __call__ (what a call runs).
    return inspect.iscoroutinefunction(inspect.getattr_static(type(func), "__call__", None))


# asyncio's marker for objects that are not functions but are called like coroutine
# functions (Python 3.11; 3.12 adds inspect.markcoroutinefunction).
_ASYNCIO_MARK = getattr(asyncio.coroutines, "_is_coroutine", None)


def _marked_async(func: Any) -> bool:
    return _ASYNCIO_MARK is not None and getattr(func, "_is_coroutine", None) is _ASYNCIO_MARK


def mark_async(cached: Any) -> None:
    """Marks a cached async function so that ``asyncio.iscoroutinefunction`` (and, on
    3.12+, ``inspect.iscoroutinefunction``) says so: frameworks that decide whether to
    await a callable, and another of our decorators stacked on top, look at that."""
    if _ASYNCIO_MARK is not None:
        cached._is_coroutine = _ASYNCIO_MARK
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        mark(cached)


def default_name(func: Callable[..., Any]) -> str:
    """``module.qualname``, the registry name used when ``name=None``."""
    module = getattr(func, "__module__", None) or "<unknown>"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return f"{module}.{qualname}"


def apply(
    func: Any,
    make: Callable[[Callable[..., Any]], Any],
    name: str | None,
    engine: str,
) -> Any:
    """Caches ``func`` with ``make`` (which builds the engine-specific cached callable),
    then copies the metadata of ``func`` onto it, names its ``engine`` in
    ``cache_engine`` and registers it. A ``classmethod`` or ``staticmethod`` is
    unwrapped, cached, and wrapped again (the wrapper gets ``cache_engine`` too)."""
    if isinstance(func, (classmethod, staticmethod)):
        wrapped = type(func)(apply(func.__func__, make, name, engine))
        wrapped.cache_engine = engine  # type: ignore[union-attr]
        return wrapped
    if not callable(func):
        raise TypeError(f"expected a function to cache, got {func!r}")
    cached = make(func)
    functools.update_wrapper(cached, func)
    cached.cache_engine = engine
    if is_async(func):
        mark_async(cached)
        cached.cache_close = closer(cached)
    _registry.register(name or default_name(func), cached)
    return cached
