"""The memory rows of the benchmark: `mcache` against functools.lru_cache, cachetools
and cachebox on the same workloads (run by benches/run.py)."""

from __future__ import annotations

import functools
import threading
import time
import timeit
from collections.abc import Callable
from typing import Any

import cachebox
import cachetools
import numpy as np
from common import Row, per_call_ns
from twat_cache import mcache


def make_hit_functions(maxsize: int) -> dict[str, Callable[..., Any]]:
    def body(x: Any, y: Any = None, z: Any = None) -> Any:
        return x

    return {
        "mcache": mcache(maxsize=maxsize)(body),
        "functools.lru_cache": functools.lru_cache(maxsize=maxsize)(body),
        "cachetools.cached(LRUCache)": cachetools.cached(cachetools.LRUCache(maxsize))(body),
        "cachebox.cached(LRUCache)": cachebox.cached(cachebox.LRUCache(maxsize))(body),
    }


def bench_hits(rows: list[Row]) -> None:
    fns = make_hit_functions(128)
    simple = {}
    mixed = {}
    for name, fn in fns.items():
        fn(1)
        fn(1, "abc", z=2.5)
        simple[name] = per_call_ns("f(1)", fn, 1_000_000 if "tools" not in name else 200_000)
        mixed[name] = per_call_ns("f(1, 'abc', z=2.5)", fn, 500_000 if "tools" not in name else 100_000)
    ours = simple["mcache"]
    for anchor, target in [
        ("functools.lru_cache", 1.1),  # issue 14: "as fast as lru_cache"
        ("cachebox.cached(LRUCache)", 0.25),
        ("cachetools.cached(LRUCache)", 0.15),
    ]:
        rows.append(
            Row(
                "memory hit, f(1)",
                "mcache",
                anchor,
                ours,
                simple[anchor],
                "ns",
                f"<= {target} x",
                ours / simple[anchor] <= target,
            )
        )
    ours = mixed["mcache"]
    rows.append(
        Row(
            "memory hit, f(1, 'abc', z=2.5)",
            "mcache",
            "functools.lru_cache",
            ours,
            mixed["functools.lru_cache"],
            "ns",
            "<= 1.5 x",
            ours / mixed["functools.lru_cache"] <= 1.5,
        )
    )
    for anchor in ("cachebox.cached(LRUCache)", "cachetools.cached(LRUCache)"):
        rows.append(Row("memory hit, f(1, 'abc', z=2.5)", "mcache", anchor, ours, mixed[anchor], "ns", "-", True))


def bench_miss(rows: list[Row]) -> None:
    n = 200_000
    keys = list(range(10_000_000, 10_000_000 + n))
    results = {}
    for name in ("mcache", "functools.lru_cache", "cachebox.cached(LRUCache)"):
        best = float("inf")
        for _ in range(5):
            fn = make_hit_functions(128)[name]
            start = time.perf_counter()
            for k in keys:
                fn(k)
            best = min(best, time.perf_counter() - start)
        results[name] = best / n * 1e9
    # The loop itself, so that the figure is the call's cost.
    loop = min(timeit.repeat("for k in keys: f(k)", globals={"keys": keys, "f": lambda k: k}, number=1, repeat=5))
    loop_ns = loop / n * 1e9
    ours = results["mcache"] - loop_ns
    for anchor, target in [("functools.lru_cache", 2.0), ("cachebox.cached(LRUCache)", None)]:
        theirs = results[anchor] - loop_ns
        rows.append(
            Row(
                "memory miss + store (evicting, maxsize=128)",
                "mcache",
                anchor,
                ours,
                theirs,
                "ns",
                f"<= {target} x" if target else "-",
                target is None or ours / theirs <= target,
            )
        )


def zipf_stream(n_keys: int, length: int, seed: int = 20261125) -> list[int]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_keys + 1)
    return rng.choice(n_keys, size=length, p=weights / weights.sum()).tolist()


def run_stream(fn: Callable[[int], int], stream: list[int]) -> float:
    start = time.perf_counter()
    for k in stream:
        fn(k)
    return (time.perf_counter() - start) / len(stream) * 1e9


def bench_zipf(rows: list[Row]) -> None:
    stream = zipf_stream(100_000, 1_000_000)
    executions = {"n": 0}

    def body(k: int) -> int:
        executions["n"] += 1
        return k

    contenders: dict[str, Callable[[int], int]] = {
        "mcache(policy='tinylfu')": mcache(maxsize=1000, policy="tinylfu")(body),
        "mcache(policy='lfu')": mcache(maxsize=1000, policy="lfu")(body),
        "mcache(policy='lru')": mcache(maxsize=1000, policy="lru")(body),
        "functools.lru_cache": functools.lru_cache(maxsize=1000)(body),
        "cachetools.cached(LFUCache)": cachetools.cached(cachetools.LFUCache(1000))(body),
        "cachebox.cached(LFUCache)": cachebox.cached(cachebox.LFUCache(1000))(body),
    }
    ratio = {}
    ns = {}
    for name, fn in contenders.items():
        executions["n"] = 0
        ns[name] = run_stream(fn, stream)
        ratio[name] = 1 - executions["n"] / len(stream)
    ours = "mcache(policy='tinylfu')"
    for anchor in ("cachetools.cached(LFUCache)", "functools.lru_cache", "cachebox.cached(LFUCache)"):
        rows.append(
            Row(
                "hit ratio, Zipf(1.0), 100k keys, 1,000 entries",
                ours,
                anchor,
                ratio[ours],
                ratio[anchor],
                "ratio",
                ">= 0.59 absolute",
                ratio[ours] >= 0.59,
            )
        )
    for name in ("mcache(policy='lfu')", "mcache(policy='lru')"):
        rows.append(
            Row(
                "hit ratio, Zipf(1.0)",
                name,
                "functools.lru_cache",
                ratio[name],
                ratio["functools.lru_cache"],
                "ratio",
                "-",
                True,
            )
        )
    rows.append(
        Row(
            "ns/call on that Zipf stream",
            ours,
            "functools.lru_cache",
            ns[ours],
            ns["functools.lru_cache"],
            "ns",
            "<= 3 x",
            ns[ours] / ns["functools.lru_cache"] <= 3,
        )
    )
    rows.append(
        Row(
            "ns/call on that Zipf stream",
            ours,
            "cachetools.cached(LFUCache)",
            ns[ours],
            ns["cachetools.cached(LFUCache)"],
            "ns",
            "-",
            True,
        )
    )


def threaded_throughput(fn: Callable[[int], int], threads: int = 2, calls: int = 300_000) -> float:
    fn(1)
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(calls):
            fn(1)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return threads * calls / (time.perf_counter() - start)


def bench_threads(rows: list[Row]) -> None:
    fns = make_hit_functions(128)
    best = {name: max(threaded_throughput(fns[name]) for _ in range(3)) for name in ("mcache", "functools.lru_cache")}
    rows.append(
        Row(
            "2 threads hammering hits (calls/s, higher is better)",
            "mcache",
            "functools.lru_cache",
            best["mcache"],
            best["functools.lru_cache"],
            "calls/s",
            ">= 0.5 x",
            best["mcache"] / best["functools.lru_cache"] >= 0.5,
        )
    )


STEPS = (bench_hits, bench_miss, bench_zipf, bench_threads)
