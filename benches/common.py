"""What every benchmark module shares: a result row, timing helpers and the table."""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REPEAT = 7


@dataclass
class Row:
    workload: str
    ours: str
    anchor: str
    ours_value: float
    anchor_value: float
    unit: str
    target: str
    ok: bool

    @property
    def ratio(self) -> float:
        return self.ours_value / self.anchor_value


def per_call_ns(stmt: str, fn: Callable[..., Any], number: int) -> float:
    """Best-of-REPEAT nanoseconds per execution of ``stmt`` with ``f`` bound to ``fn``."""
    times = timeit.repeat(stmt, globals={"f": fn}, number=number, repeat=REPEAT)
    return min(times) / number * 1e9


def fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.3f}"
    if unit == "ms" and value < 1:
        return f"{value * 1000:.0f} us"
    if unit in ("us", "ms"):
        return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    if unit == "runs":
        return f"{value:.0f}"
    if unit == "calls/s":
        return f"{value / 1e6:.2f} M/s"
    return f"{value:,.0f} ns" if value >= 100 else f"{value:.1f} ns"


def table(rows: list[Row]) -> str:
    lines = [
        "| workload | ours | anchor | ours | anchor | ratio | target | met |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workload} | {r.ours} | {r.anchor} | {fmt(r.ours_value, r.unit)} | {fmt(r.anchor_value, r.unit)} "
            f"| {r.ratio:.{3 if r.ratio < 0.1 else 2}f} x | {r.target} | {'yes' if r.ok else '**no**'} |"
        )
    return "\n".join(lines)


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def compare(
    rows: list[Row], workload: str, ours: str, anchor: str, mine: float, theirs: float, unit: str, target: float | None
) -> None:
    """Adds a row whose target is ``ours / anchor <= target`` (no target: ``None``)."""
    rows.append(
        Row(
            workload,
            ours,
            anchor,
            mine,
            theirs,
            unit,
            f"<= {target} x" if target is not None else "-",
            target is None or mine / theirs <= target,
        )
    )
