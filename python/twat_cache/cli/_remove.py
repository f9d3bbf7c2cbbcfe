"""The commands that remove entries: ``rm`` and ``prune``. What they would remove is
shown first; the removal runs in batches of entries, each one transaction of the same
kind the caches use, so ``Ctrl-C`` stops between two batches with nothing half-deleted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .._core import Selection
from ._common import BATCH, INTERRUPTED, found_places, go_ahead, redis_of, used_before_of
from ._find import Place, Refused, select
from ._term import Progress, emit_json
from ._units import human_duration, human_size


def _run_batches(progress: Progress, steps: Iterable[Callable[[], tuple[int, int, bool]]]) -> tuple[int, int, bool]:
    """Runs each step's batches until it says it is done; ``Ctrl-C`` stops between two
    batches. Gives back the entries and bytes removed, and whether it was interrupted."""
    removed = nbytes = 0
    try:
        for step in steps:
            while True:
                n, b, done = step()
                removed += n
                nbytes += b
                progress.add(n, b)
                if done:
                    break
    except KeyboardInterrupt:
        progress.done()
        return removed, nbytes, True
    progress.done()
    return removed, nbytes, False


def _remover(place: Place, sel: Selection) -> Callable[[], tuple[int, int, bool]]:
    after: list[int | None] = [None]

    def step() -> tuple[int, int, bool]:
        n, b, nxt = place.folder.remove_batch(sel, after=after[0], limit=BATCH)
        after[0] = nxt
        return n, b, nxt is None or n < BATCH

    return step


def _finish(command: str, args: argparse.Namespace, removed: int, nbytes: int, interrupted: bool, **more: Any) -> int:
    if args.json:
        emit_json(command, {"removed": removed, "bytes": nbytes, "interrupted": interrupted, **more})
    else:
        what = f"removed {removed:,} entries ({human_size(nbytes)})"
        if interrupted:
            print(f"interrupted: {what}; each batch was removed whole, the rest is untouched", file=sys.stderr)
        else:
            print(what)
    return INTERRUPTED if interrupted else 0


def cmd_rm(args: argparse.Namespace) -> int:
    server = redis_of(args)
    if server:
        if args.older_than is not None or args.key_prefix:
            raise Refused("--older-than and --key-prefix work on folders; on Redis, rm removes whole caches")
        chosen_r = server.select(args.names)
        plan = "\n".join(f"  {c['name']}: {c['entries']:,} entries ({human_size(c['bytes'])})" for c in chosen_r)
        if not go_ahead(args, f"Would remove every entry of these caches on {server.shown}:\n{plan}"):
            return 0 if args.dry_run else 2
        for c in chosen_r:
            server.server.clear(c["name"])
        return _finish("rm", args, sum(c["entries"] for c in chosen_r), sum(c["bytes"] for c in chosen_r), False)
    chosen = select(found_places(args), args.names)
    used_before = used_before_of(args)
    plans = []
    for p, c in chosen:
        sel = Selection(ns=c["name"], used_before=used_before, key_prefix=args.key_prefix)
        n, b = p.folder.measure(sel)
        plans.append((p, c, sel, n, b))
    total_n, total_b = sum(x[3] for x in plans), sum(x[4] for x in plans)
    lines = [f"  {p.name}/{c['name']}: {n:,} entries ({human_size(b)})" for p, c, _, n, b in plans]
    which = " not used for " + human_duration(args.older_than) if args.older_than is not None else ""
    head = f"Would remove {total_n:,} entries{which} ({human_size(total_b)}):"
    if args.json and args.dry_run:
        emit_json("rm", {"dry_run": True, "would_remove": total_n, "bytes": total_b, "caches": _plan_json(plans)})
        return 0
    if total_n == 0:
        return _finish("rm", args, 0, 0, False)
    if not go_ahead(args, "\n".join([head, *lines])):
        return 0 if args.dry_run else 2
    progress = Progress("rm", total_n)
    removed, nbytes, interrupted = _run_batches(progress, [_remover(p, sel) for p, _, sel, _, _ in plans])
    return _finish("rm", args, removed, nbytes, interrupted)


def _plan_json(plans: list[Any]) -> list[dict[str, Any]]:
    return [{"folder": p.name, "name": c["name"], "entries": n, "bytes": b} for p, c, _, n, b in plans]


# ---------------------------------------------------------------- prune


def cmd_prune(args: argparse.Namespace) -> int:
    if args.redis:
        raise Refused(
            "prune works on folders: Redis removes expired entries itself, and evicts by its maxmemory-policy"
        )
    if args.max_size is not None and args.names:
        raise Refused("--max-size applies to whole folders (eviction follows the folder's policy); leave out NAME")
    found = found_places(args)
    expired = args.expired or (args.older_than is None and args.max_size is None)
    used_before = used_before_of(args)
    chosen = select(found, args.names) if args.names else [(p, c) for p in found for c in p.caches]
    folders = list({id(p): p for p, _ in chosen}.values()) if args.names else found
    steps: list[Callable[[], tuple[int, int, bool]]] = []
    lines, plan_json = [], []
    total_n = total_b = 0
    for p in folders:
        for c in (c for q, c in chosen if q is p):
            wanted: list[tuple[str, Selection]] = []
            if expired:
                wanted.append(("expired", Selection(ns=c["name"], expired=True)))
            if used_before is not None:
                unused = Selection(ns=c["name"], used_before=used_before)
                wanted.append((f"not used for {human_duration(args.older_than)}", unused))
            for label, sel in wanted:
                n, b = p.folder.measure(sel)
                if n:
                    lines.append(f"  {p.name}/{c['name']}: {n:,} entries, {label} ({human_size(b)})")
                    plan_json.append({"folder": p.name, "name": c["name"], "reason": label, "entries": n, "bytes": b})
                    steps.append(_remover(p, sel))
                    total_n, total_b = total_n + n, total_b + b
        if args.max_size is not None:
            n, b = p.folder.eviction_plan(args.max_size)
            if n:
                lines.append(
                    f"  {p.name}/: {n:,} entries by {p.folder.policy} ({human_size(b)}), "
                    f"down to {human_size(args.max_size)}"
                )
                plan_json.append({"folder": p.name, "name": None, "reason": "max_size", "entries": n, "bytes": b})
                steps.append(_evictor(p, args.max_size))
                total_n, total_b = total_n + n, total_b + b
        left_n, left_b = p.folder.leftovers(False)
        if left_n:
            lines.append(f"  {p.name}/: {left_n:,} files left by killed writers ({human_size(left_b)})")
            plan_json.append({"folder": p.name, "name": None, "reason": "leftovers", "files": left_n, "bytes": left_b})
    if args.json and args.dry_run:
        emit_json("prune", {"dry_run": True, "would_remove": total_n, "bytes": total_b, "plan": plan_json})
        return 0
    if not lines:
        if args.json:
            emit_json("prune", {"removed": 0, "bytes": 0, "files": 0, "interrupted": False})
        else:
            print("nothing to prune")
        return 0
    if not go_ahead(args, "\n".join(["Would remove:", *lines])):
        return 0 if args.dry_run else 2
    progress = Progress("prune")
    removed, nbytes, interrupted = _run_batches(progress, steps)
    files = 0
    if not interrupted:
        for p in folders:
            files += p.folder.leftovers(True)[0]
        if not args.json and files:
            print(f"removed {files:,} files left by killed writers")
    return _finish("prune", args, removed, nbytes, interrupted, files=files)


def _evictor(place: Place, max_bytes: int) -> Callable[[], tuple[int, int, bool]]:
    def step() -> tuple[int, int, bool]:
        n, b = place.folder.evict_batch(max_bytes, BATCH)
        return n, b, n == 0

    return step
