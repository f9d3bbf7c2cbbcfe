"""The async rows of the benchmark: `acache` against async-lru, cachebox and aiocache on
`await g(1)` hits, and how many times each runs 8 concurrent misses of one key (run by
benches/run.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiocache
import async_lru
import cachebox
from common import REPEAT, Row, compare
from twat_cache import acache


def make_functions(counter: list[int]) -> dict[str, Callable[..., Any]]:
    async def body(x: Any) -> Any:
        counter.append(x)
        await asyncio.sleep(0.001)
        return x

    return {
        "acache": acache(maxsize=128)(body),
        "async_lru.alru_cache": async_lru.alru_cache(maxsize=128)(body),
        "cachebox.cached(LRUCache)": cachebox.cached(cachebox.LRUCache(128))(body),
        "aiocache.cached": aiocache.cached()(body),
    }


async def hit_ns(fn: Callable[..., Any], number: int) -> float:
    await fn(1)
    best = float("inf")
    for _ in range(REPEAT):
        start = time.perf_counter()
        for _ in range(number):
            await fn(1)
        best = min(best, time.perf_counter() - start)
    return best / number * 1e9


async def executions_of_eight_concurrent_misses(fn: Callable[..., Any], counter: list[int]) -> int:
    before = len(counter)
    await asyncio.gather(*(fn(2) for _ in range(8)))
    return len(counter) - before


def bench_async(rows: list[Row]) -> None:
    counter: list[int] = []
    fns = make_functions(counter)
    hits = {}
    runs = {}

    async def measure() -> None:
        # One loop for every library: async-lru clears itself when the loop changes.
        for name, fn in fns.items():
            number = 20_000 if name == "aiocache.cached" else 200_000
            hits[name] = await hit_ns(fn, number)
            runs[name] = await executions_of_eight_concurrent_misses(fn, counter)

    asyncio.run(measure())
    for anchor, target in [
        ("async_lru.alru_cache", 0.6),
        ("cachebox.cached(LRUCache)", None),
        ("aiocache.cached", None),
    ]:
        compare(rows, "async hit, await g(1)", "acache", anchor, hits["acache"], hits[anchor], "ns", target)
    print(
        "executions of 8 concurrent misses of one key: " + ", ".join(f"{name} {count}" for name, count in runs.items()),
        flush=True,
    )
    rows.append(
        Row(
            "8 concurrent misses of one key: executions",
            "acache",
            "aiocache.cached",
            runs["acache"],
            runs["aiocache.cached"],
            "runs",
            "1 run",
            runs["acache"] == 1,
        )
    )


STEPS = [bench_async]
