"""``acache``: caching async functions in memory, shared by every task, thread and event
loop of the process."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, overload

from ._types import CachedFunction, P, R, Ttl
from .config import CacheConfig, settle
from .memory import MEMORY_DEFAULTS, memory_decorator

__all__ = ["acache"]


@overload
def acache(func: Callable[P, Coroutine[Any, Any, R]], /) -> CachedFunction[P, Coroutine[Any, Any, R]]: ...
@overload
def acache(
    *,
    maxsize: int | None = 128,
    ttl: Ttl = None,
    stale_ttl: float | None = None,
    stale_if_error: bool | float | None = None,
    cache_if: Callable[[Any], object] | None = None,
    jitter: float | None = None,
    policy: str = "lru",
    key: Callable[..., Any] | None = None,
    ignore: Iterable[str] = (),
    typed: bool = False,
    name: str | None = None,
    version: str | int | None = None,
    secure: bool = True,
    config: CacheConfig | None = None,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], CachedFunction[P, Coroutine[Any, Any, R]]]: ...


def acache(func: Any = None, /, *, config: CacheConfig | None = None, **options: Any) -> Any:
    """Cache an ``async def`` function's results in memory.

    The awaited result is cached, never the coroutine. A hit returns an awaitable that is
    already done (no coroutine is created). On a miss, concurrent callers of one key run
    the function once and share its value or exception (which is not cached). If the
    first caller is cancelled while others wait, they still get the value; if every
    caller is cancelled, the computation is cancelled too. Values are shared across
    event loops and threads (nothing bound to a loop is stored) and TTL needs no timers.

    A hit returns an awaitable that is not a coroutine object, but asyncio takes it
    wherever it takes one (``asyncio.run``, ``create_task``, ``gather``), so the typing
    says ``Coroutine``. Options are those of ``mcache`` (``maxsize``, ``ttl``, ``policy``, ``key``,
    ``ignore``, ``typed``, ``name``, ``config``). A plain (sync) function is cached as ``mcache``
    would cache it, so ``acache`` can stand in for it.

    >>> import asyncio
    >>> calls = []
    >>> @acache(ttl=300)
    ... async def fetch(user_id):
    ...     calls.append(user_id)
    ...     await asyncio.sleep(0)
    ...     return {"id": user_id}
    >>> async def main():
    ...     return await asyncio.gather(*(fetch(7) for _ in range(8)))
    >>> results = asyncio.run(main())
    >>> results[0], len(calls)
    ({'id': 7}, 1)
    >>> asyncio.run(fetch(7)), len(calls)  # another event loop: still a hit
    ({'id': 7}, 1)
    """
    return memory_decorator("acache", func, settle("acache", config, MEMORY_DEFAULTS, options))
