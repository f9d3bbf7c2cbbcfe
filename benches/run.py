"""Side-by-side benchmark of our engines against the anchor libraries, in one run.

Every row runs ours and the anchor on the same workload in the same run and prints
ratios (ours / theirs: lower is better for times, higher is better for hit ratios and
throughput). With --write PATH it also writes the table as Markdown. Targets are those
of the project's issues (docs/benchmarks.md lists them beside the numbers).

    make bench            # or: python benches/run.py --write docs/benchmarks.md
    python benches/run.py --only disk    # one group: memory, async, disk, files, redis, tiers or rust

The Rust rows (benches/rust: the memory engine against quick_cache, moka and cached,
and #[mcache] against #[cached]) are a release build of their own, run after the rest.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import aiocache
import async_lru
import bench_async
import bench_disk
import bench_memory
import bench_redis
import bench_tiers
import cachebox
import cachetools
import diskcache
import joblib
import numpy as np
import redis
from common import Row, table

GROUPS = {
    "memory": bench_memory.STEPS,
    "async": bench_async.STEPS,
    "disk": bench_disk.DISK_STEPS,
    "files": bench_disk.FILE_STEPS,
    "redis": bench_redis.STEPS,
    "tiers": bench_tiers.STEPS,
}


RUST_BENCH = Path(__file__).resolve().parent / "rust"


def rust_tables() -> str:
    """The Rust benchmark's Markdown tables (it builds in release mode the first time)."""
    print("running the Rust benchmark (cargo run --release in benches/rust) ...", file=sys.stderr, flush=True)
    done = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--manifest-path", str(RUST_BENCH / "Cargo.toml")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PATH", help="also write the table to this Markdown file")
    parser.add_argument("--only", choices=[*sorted(GROUPS), "rust"], help="run one group of rows")
    args = parser.parse_args()

    rows: list[Row] = []
    steps = GROUPS.get(args.only, []) if args.only else [s for group in GROUPS.values() for s in group]
    if args.only == "disk":
        steps = [*steps, bench_disk.cleanup]
    for step in steps:
        print(f"running {step.__name__} ...", file=sys.stderr, flush=True)
        step(rows)
    out = table(rows) if rows else ""
    if args.only in (None, "rust"):
        out = f"{out}\n\n{rust_tables()}" if out else rust_tables()
    print(out)
    if args.write:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        header = (
            "# Benchmarks\n\n"
            "Written by `make bench` (benches/run.py): every row was measured in one run, ours and the\n"
            "anchor side by side on the same workload. Ratio = ours / anchor (for times lower is better; for hit\n"
            "ratios and throughput higher is better). Best of several repeats; the miss row subtracts the loop's\n"
            "own cost.\n\n"
            f"- when: {when}\n"
            f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}\n"
            f"- Python {platform.python_version()}; cachetools {cachetools.__version__}, "
            f"cachebox {cachebox.__version__}, async-lru {async_lru.__version__}, aiocache {aiocache.__version__}, "
            f"diskcache {diskcache.__version__}, joblib {joblib.__version__}, "
            f"numpy {np.__version__}, redis-py {redis.__version__}, cashews {version('cashews')}, "
            f"dogpile.cache {version('dogpile.cache')}; Redis rows on {bench_redis.SERVER_SEEN}\n\n"
        )
        with open(args.write, "w") as f:
            f.write(header + out + "\n")
        print(f"\nwritten to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
