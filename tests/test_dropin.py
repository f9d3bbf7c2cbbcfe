"""What users switching from functools.lru_cache and async-lru rely on: a key whose
``__eq__`` calls the same cache, pickling and copying cached functions (process pools),
waiters counted as hits, an interruptible wait, and async-lru's method names."""

from __future__ import annotations

import concurrent.futures
import copy
import os
import pickle
import signal
import threading
import time
from typing import Any

import pytest
from twat_cache import bcache, fcache, mcache

HANG = 30.0


@mcache(maxsize=10)
def echo(x: Any) -> Any:
    return x


class DoubleEq:
    """functools' test_need_for_rlock: ``__eq__`` calls the cached function."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __hash__(self) -> int:
        return self.x

    def __eq__(self, other: object) -> bool:
        if self.x == 2:
            echo(DoubleEq(1))
        return isinstance(other, DoubleEq) and self.x == other.x


def test_a_key_whose_eq_calls_the_same_cache_does_not_hang() -> None:
    outcome: list[Any] = []

    def run() -> None:
        echo(DoubleEq(1))
        echo(DoubleEq(2))
        outcome.append(echo(DoubleEq(2)))  # a reentrant __eq__ during the lookup

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    assert not worker.is_alive(), "the lookup waited for its own lock"
    assert outcome == [DoubleEq(2)]


@mcache
def square(x: int) -> int:
    return x * x


@bcache(folder_name="dropin-cube")
def cube(x: int) -> int:
    return x**3


@fcache(folder_name="dropin-quad")
def quad(x: int) -> int:
    return x**4


@pytest.mark.parametrize("cached", [square, cube, quad], ids=["mcache", "bcache", "fcache"])
def test_cached_functions_pickle_and_copy_by_reference(cache_dir: Any, cached: Any) -> None:
    assert pickle.loads(pickle.dumps(cached)) is cached
    assert copy.copy(cached) is cached
    assert copy.deepcopy(cached) is cached


def test_a_process_pool_maps_a_cached_function(cache_dir: Any) -> None:
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        assert list(pool.map(square, range(6), timeout=HANG)) == [0, 1, 4, 9, 16, 25]


def slow_pair(engine: Any, started: threading.Event, release: threading.Event) -> Any:
    runs: list[int] = []

    def slow(x: int) -> int:
        runs.append(x)
        started.set()
        release.wait(HANG)
        return x + 1

    slow.__qualname__ = f"slow_{id(runs)}"
    return engine(slow), runs


@pytest.mark.parametrize("engine", [mcache, bcache], ids=["mcache", "bcache"])
def test_a_caller_that_waited_for_another_is_counted_as_a_hit(cache_dir: Any, engine: Any) -> None:
    started, release = threading.Event(), threading.Event()
    f, runs = slow_pair(engine, started, release)
    leader = threading.Thread(target=f, args=(1,))
    leader.start()
    assert started.wait(HANG)
    got: list[int] = []
    follower = threading.Thread(target=lambda: got.append(f(1)))
    follower.start()
    time.sleep(0.2)  # the follower is waiting on the flight now
    release.set()
    leader.join(HANG)
    follower.join(HANG)
    assert got == [2] and runs == [1]
    info = f.cache_info()
    assert (info.hits, info.misses) == (1, 1)


@pytest.mark.parametrize("engine", [mcache, bcache], ids=["mcache", "bcache"])
def test_ctrl_c_reaches_a_caller_waiting_for_another_threads_computation(cache_dir: Any, engine: Any) -> None:
    started, release = threading.Event(), threading.Event()
    f, runs = slow_pair(engine, started, release)
    leader = threading.Thread(target=f, args=(1,))
    leader.start()
    assert started.wait(HANG)
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        f(1)  # waits for the leader, which waits for `release`
    assert time.monotonic() - began < HANG / 2 and not release.is_set()
    release.set()
    leader.join(HANG)
    assert f(1) == 2 and runs == [1]  # the flight ended normally; now a hit


def test_async_lru_names(cache_dir: Any) -> None:
    @mcache
    def inc(x: int) -> int:
        return x + 1

    assert not inc.cache_contains(1)
    inc(1)
    assert inc.cache_contains(1) and inc.cache_contains(x=1)
    hits = inc.cache_info().hits
    assert inc.cache_info().hits == hits  # cache_contains counts nothing
    assert inc.cache_invalidate(1) is True
    assert not inc.cache_contains(1)

    @bcache
    def dec(x: int) -> int:
        return x - 1

    dec(5)
    assert dec.cache_contains(5) and not dec.cache_contains(6)
    assert dec.cache_invalidate(5) is True and not dec.cache_contains(5)


@pytest.mark.parametrize("engine", ["acache", "bcache"])
def test_async_waiters_are_counted_as_hits(cache_dir: Any, engine: str) -> None:
    import asyncio

    import twat_cache

    runs: list[int] = []

    async def slow(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.05)
        return x

    slow.__qualname__ = f"slow_async_{engine}"
    f = getattr(twat_cache, engine)(slow)

    async def main() -> list[int]:
        return list(await asyncio.gather(*[f(1) for _ in range(5)]))

    assert asyncio.run(main()) == [1] * 5 and runs == [1]
    info = f.cache_info()
    assert (info.hits, info.misses) == (4, 1)


@pytest.mark.parametrize("engine", ["mcache", "bcache"])
def test_jitter_spreads_the_expiry_of_entries_stored_together(cache_dir: Any, engine: str) -> None:
    import twat_cache

    deco = getattr(twat_cache, engine)

    @deco(ttl=0.2)
    def plain(x: int) -> int:
        return x

    @deco(ttl=0.2, jitter=30)
    def spread(x: int) -> int:
        return x

    assert spread.cache_parameters()["jitter"] == 30
    for x in range(50):
        plain(x)
        spread(x)
    time.sleep(0.5)  # past the ttl, far inside ttl + jitter for nearly every entry
    assert sum(plain.cache_contains(x) for x in range(50)) == 0
    # Each spread entry lives 0.2 s plus a uniform part of 30 s: at most a few are gone.
    assert sum(spread.cache_contains(x) for x in range(50)) >= 40


def test_jitter_needs_a_ttl_and_a_sane_value() -> None:
    from twat_cache import ConfigurationError

    with pytest.raises(ConfigurationError, match="jitter"):
        mcache(jitter=5)
    with pytest.raises(ConfigurationError, match="jitter"):
        bcache(ttl=10, jitter=-1)
    assert mcache(ttl=10, jitter=0)(lambda x: x)(3) == 3


@pytest.mark.parametrize("engine", ["acache", "bcache"])
def test_cache_close_cancels_or_waits_for_computations_in_flight(cache_dir: Any, engine: str) -> None:
    import asyncio

    import twat_cache

    finished: list[int] = []

    async def slow(x: int) -> int:
        await asyncio.sleep(0.2)
        finished.append(x)
        return x

    slow.__qualname__ = f"slow_close_{engine}"
    f = getattr(twat_cache, engine)(slow)

    async def cancel() -> None:
        pending = asyncio.ensure_future(f(1))
        await asyncio.sleep(0.05)  # the computation is in flight
        await f.cache_close()
        with pytest.raises(asyncio.CancelledError):
            await pending

    async def wait() -> None:
        pending = asyncio.ensure_future(f(2))
        await asyncio.sleep(0.05)
        await f.cache_close(wait=True)
        assert finished == [2]  # it ran to the end before cache_close returned
        assert await pending == 2

    asyncio.run(cancel())
    assert finished == []
    asyncio.run(wait())


def test_partialmethod_of_a_cached_method() -> None:
    import asyncio
    import functools

    runs: list[int] = []

    class Scaler:
        def __init__(self, k: int) -> None:
            self.k = k

        @mcache
        def scale(self, x: int) -> int:
            runs.append(x)
            return self.k * x

        double_of_3 = functools.partialmethod(scale, 3)

        @mcache
        async def ascale(self, x: int) -> int:
            runs.append(-x)
            return self.k * x

        async_of_4 = functools.partialmethod(ascale, 4)

    s = Scaler(2)
    assert s.double_of_3() == s.double_of_3() == 6
    assert asyncio.run(s.async_of_4()) == asyncio.run(s.async_of_4()) == 8
    assert runs == [3, -4]
