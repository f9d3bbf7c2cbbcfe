"""The twat-cache demo: each decorator that exists, cold vs cached, and its counters.

Run with `make demo`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twat_cache import get_stats, list_caches, mcache


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

    print("\nregistry:")
    for name in list_caches():
        if name.startswith("__main__"):
            s = get_stats(name)
            print(f"  {name}: hits={s['hits']} misses={s['misses']} entries={s['entries']}")
    print("\nbcache, fcache, acache and ucache are not built yet (see the open issues).")


if __name__ == "__main__":
    main()
