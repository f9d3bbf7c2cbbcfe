"""What the commands share: where they look, how they show counts and times, and how a
change is confirmed before it is made (``--dry-run``, ``-y``, or the ``[y/N]`` question
on a terminal)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ._find import Place, places, require_cache_root, root_of
from ._redis import RedisCaches
from ._term import confirm
from ._units import iso


def _batch() -> int:
    """Entries per transaction of a removal or check (``$TWAT_CACHE_CLI_BATCH``, default
    256): smaller batches hold the index's write lock for less time each."""
    try:
        return max(1, int(os.environ.get("TWAT_CACHE_CLI_BATCH", "256")))
    except ValueError:
        return 256


BATCH = _batch()
INTERRUPTED = 130


def now_us() -> int:
    return int(time.time() * 1e6)


def age(us: int | None) -> float | None:
    return None if us is None else max(0.0, (now_us() - us) / 1e6)


def found_places(args: argparse.Namespace) -> list[Place]:
    root = root_of(args.dir)
    require_cache_root(root, explicit=args.dir is not None)
    return places(root)


def redis_of(args: argparse.Namespace) -> RedisCaches | None:
    return RedisCaches(args.redis) if args.redis else None


def ratio(stats: dict[str, Any] | None) -> str:
    if not stats or stats["hits"] + stats["misses"] == 0:
        return "-"
    return f"{stats['hit_ratio']:.0%}"


def show_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def cache_json(place_name: str, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "folder": place_name,
        "name": c["name"],
        "engine": c.get("engine"),
        "policy": c.get("policy"),
        "ttl": c.get("ttl"),
        "max_bytes": c.get("max_bytes"),
        "version": c.get("version"),
        "entries": c["entries"],
        "bytes": c["bytes"],
        "expired": c.get("expired"),
        "oldest": iso(c.get("oldest_us")),
        "newest": iso(c.get("newest_us")),
        "accessed": iso(c.get("accessed_us")),
        "stats": c.get("stats"),
        "stats_since": iso(c.get("since_us")),
    }


def go_ahead(args: argparse.Namespace, plan: str) -> bool:
    """Shows the plan; whether to carry it out (``--dry-run``: no; ``-y``: yes; a
    terminal: the answer; otherwise no, with a message)."""
    if not args.json:
        print(plan)
    if args.dry_run:
        if not args.json:
            print("dry run: nothing was changed")
        return False
    if confirm("Go ahead?", args.yes):
        return True
    if not sys.stdin.isatty() or args.json:
        print("twat-cache: not confirmed; pass -y to go ahead without a terminal", file=sys.stderr)
    return False


def used_before_of(args: argparse.Namespace) -> int | None:
    if args.older_than is None:
        return None
    return now_us() - int(args.older_than * 1e6)
