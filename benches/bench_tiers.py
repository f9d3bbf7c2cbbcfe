"""The local tier and freshness rows (run by benches/run.py): warm hits of
`bcache(local=...)` and `rcache(local=...)` against an `mcache` hit (the target: at
most twice), against `bcache` without the tier and `diskcache.Cache.memoize`; and a
stale hit served while its refresh is running."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from typing import Any

import bench_redis
import diskcache
from common import Row, compare, per_call_ns
from twat_cache import bcache, mcache, rcache

SMALL = {f"field_{i:02d}": f"value {i} " * 2 for i in range(40)}  # ~1 KB pickled


def _warm(fn: Any) -> None:
    """Calls until the local tier answers (a Redis listener subscribes just after
    decoration; copies are kept from then on)."""
    deadline = time.monotonic() + 10
    start = fn.cache_stats()["local_hits"]
    while fn.cache_stats()["local_hits"] == start and time.monotonic() < deadline:
        fn(1)
        time.sleep(0.01)


def bench_local(rows: list[Row]) -> None:
    root = tempfile.mkdtemp(prefix="twat-bench-tiers-")
    try:

        def body(x: Any) -> Any:
            return SMALL

        memory = mcache(body)
        local = bcache(folder_name=f"{root}/local", local=True)(body)
        plain = bcache(folder_name=f"{root}/plain")(body)
        dc = diskcache.Cache(f"{root}/diskcache").memoize()(body)
        url = bench_redis.server().url
        remote = rcache(url=url, namespace="bench-local", secret=False, local=True)(body)
        for fn in (memory, local, plain, dc, remote):
            fn(1)
        for fn in (local, remote):
            _warm(fn)
        mc = per_call_ns("f(1)", memory, 200_000)
        lo = per_call_ns("f(1)", local, 200_000)
        re = per_call_ns("f(1)", remote, 200_000)
        bc = per_call_ns("f(1)", plain, 20_000)
        dk = per_call_ns("f(1)", dc, 20_000)
        compare(
            rows, "local tier: warm hit (coherence check included)", "bcache(local=True)", "mcache", lo, mc, "ns", 2.0
        )
        compare(
            rows, "local tier: warm hit (coherence check included)", "rcache(local=True)", "mcache", re, mc, "ns", 2.0
        )
        compare(
            rows,
            "local tier: warm hit, ~1 KB dict",
            "bcache(local=True)",
            "diskcache.Cache.memoize",
            lo,
            dk,
            "ns",
            0.02,
        )
        compare(rows, "local tier: warm hit, ~1 KB dict", "bcache(local=True)", "bcache", lo, bc, "ns", None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_stale(rows: list[Row]) -> None:
    """A call that finds its entry stale returns it at once while the refresh (held
    back here by a gate) runs on a worker thread: as fast as a fresh hit, give or take
    the staleness check."""
    root = tempfile.mkdtemp(prefix="twat-bench-stale-")
    gate = threading.Event()
    try:

        def body(x: Any) -> Any:
            if x == 2:
                gate.wait(60)
            return SMALL

        for name, make in (("mcache", mcache), ("bcache", lambda **o: bcache(folder_name=root, **o))):
            fresh = make(ttl=3600)(body)
            stale = make(ttl=0.05, stale_ttl=3600)(body)
            fresh(1)
            gate.set()
            stale(2)  # stored
            gate.clear()
            time.sleep(0.1)  # stale now
            stale(2)  # starts the refresh, which waits at the gate
            n = 20_000 if name == "bcache" else 200_000
            s = per_call_ns("f(2)", stale, n)
            h = per_call_ns("f(1)", fresh, n)
            gate.set()
            compare(
                rows,
                "stale hit while its refresh runs",
                f"{name}(stale_ttl=...)",
                f"{name} fresh hit",
                s,
                h,
                "ns",
                None,
            )
    finally:
        gate.set()
        shutil.rmtree(root, ignore_errors=True)


STEPS = [bench_local, bench_stale, bench_redis.stop]
