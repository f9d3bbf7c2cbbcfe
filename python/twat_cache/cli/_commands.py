"""The commands: ``ls``, ``info``, ``stats``, ``rm``, ``prune`` and ``verify``.

Each takes the parsed arguments and returns the exit status. What a destructive
command would do is shown first; it then asks (on a terminal), takes ``-y``, or stops
there with ``--dry-run``. Changes are made in batches of entries, each one transaction
of the same kind the caches use, so ``Ctrl-C`` stops between two batches with nothing
half-deleted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._filters import Filter
from ._find import Place, Refused, places, require_cache_root, root_of, select
from ._redis import RedisCaches
from ._term import Progress, bold, confirm, emit_json, red, table
from ._units import ago, human_duration, human_size, iso


def _batch() -> int:
    """Entries per transaction of a removal or check (``$TWAT_CACHE_CLI_BATCH``, default
    256): smaller batches hold the index's write lock for less time each."""
    try:
        return max(1, int(os.environ.get("TWAT_CACHE_CLI_BATCH", "256")))
    except ValueError:
        return 256


BATCH = _batch()
INTERRUPTED = 130


def _now_us() -> int:
    return int(time.time() * 1e6)


def _age(us: int | None) -> float | None:
    return None if us is None else max(0.0, (_now_us() - us) / 1e6)


def _found(args: argparse.Namespace) -> list[Place]:
    root = root_of(args.dir)
    require_cache_root(root, explicit=args.dir is not None)
    return places(root)


def _redis(args: argparse.Namespace) -> RedisCaches | None:
    return RedisCaches(args.redis) if args.redis else None


def _ratio(stats: dict[str, Any] | None) -> str:
    if not stats or stats["hits"] + stats["misses"] == 0:
        return "-"
    return f"{stats['hit_ratio']:.0%}"


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _cache_json(place_name: str, c: dict[str, Any]) -> dict[str, Any]:
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


def _limit(place: Place) -> int | None:
    limits = [c["max_bytes"] for c in place.caches if c.get("max_bytes")]
    return max(limits) if limits else None


def _disk_bytes(path: os.PathLike[str] | str) -> int:
    """Bytes of the files under a folder (links not followed), as ``du`` counts them."""
    total = 0
    stack = [os.fspath(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


# ---------------------------------------------------------------- ls


def cmd_ls(args: argparse.Namespace) -> int:
    found = _found(args)
    server = _redis(args)
    redis_caches = server.caches() if server else []
    filt = Filter(args.filter or [])
    sort = args.sort

    def keep(c: dict[str, Any]) -> bool:
        return filt.accepts(c, _now_us())

    def order(caches: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if sort == "size":
            return sorted(caches, key=lambda c: -c["bytes"])
        if sort == "accessed":
            return sorted(caches, key=lambda c: c.get("accessed_us") or 0)
        return sorted(caches, key=lambda c: c["name"])

    shown = [(p, order([c for c in p.caches if keep(c)])) for p in found]
    shown = [(p, cs) for p, cs in shown if cs or not args.filter]
    if sort == "size":
        shown.sort(key=lambda pc: -sum(c["bytes"] for c in pc[1]))
    redis_shown = order([c for c in redis_caches if keep(c)])

    if args.quiet:
        names = dict.fromkeys([c["name"] for _, cs in shown for c in cs] + [c["name"] for c in redis_shown])
        for name in names:
            print(name)
        return 0

    folders_json = []
    rows: list[list[str]] = []
    total_entries = total_bytes = total_disk = 0
    for p, cs in shown:
        entries = sum(c["entries"] for c in cs)
        nbytes = p.folder.folder_bytes()
        disk = _disk_bytes(p.path)
        limit = _limit(p)
        total_entries += entries
        total_bytes += nbytes
        total_disk += disk
        fill = f"{nbytes / limit:.0%}" if limit else "-"
        folders_json.append(
            {
                "path": str(p.path),
                "name": p.name,
                "entries": entries,
                "bytes": nbytes,
                "disk_bytes": disk,
                "max_bytes": limit,
                "fill": (nbytes / limit) if limit else None,
                "policy": p.folder.policy,
                "caches": [_cache_json(p.name, c) for c in cs],
            }
        )
        rows.append([f"{p.name}/", "", _n(entries), human_size(nbytes), human_size(limit), fill, *([""] * 7)])
        for c in cs:
            stats = c.get("stats")
            rows.append(
                [
                    f"  {c['name']}",
                    c.get("engine") or "-",
                    _n(c["entries"]),
                    human_size(c["bytes"]),
                    "",
                    "",
                    ago(_age(c.get("oldest_us"))),
                    ago(_age(c.get("newest_us"))),
                    ago(_age(c.get("accessed_us"))),
                    _n(stats["hits"]) if stats else "-",
                    _n(stats["misses"]) if stats else "-",
                    _ratio(stats),
                    (c.get("version") or "-")[:8],
                ]
            )
    if server:
        rows.append([f"{server.shown}", "", _n(sum(c["entries"] for c in redis_shown)), "", "", "", *([""] * 7)])
        for c in redis_shown:
            stats = c.get("stats")
            rows.append(
                [
                    f"  {c['name']}",
                    "rcache",
                    _n(c["entries"]),
                    human_size(c["bytes"]),
                    *([""] * 5),
                    _n(stats["hits"]) if stats else "-",
                    _n(stats["misses"]) if stats else "-",
                    _ratio(stats),
                    "",
                ]
            )
    n_caches = sum(len(cs) for _, cs in shown) + len(redis_shown)
    summary = {
        "folders": len(shown),
        "caches": n_caches,
        "entries": total_entries + sum(c["entries"] for c in redis_shown),
        "bytes": total_bytes,
        "disk_bytes": total_disk,
    }
    if args.json:
        body: dict[str, Any] = {"root": str(root_of(args.dir)), "folders": folders_json, "summary": summary}
        if server:
            body["redis"] = {"url": server.shown, "caches": [_cache_json("", c) for c in redis_shown]}
        emit_json("ls", body)
        return 0
    header = ["NAME", "ENGINE", "ENTRIES", "SIZE", "LIMIT", "FILL", "OLDEST", "NEWEST", "ACCESSED"]
    header += ["HITS", "MISSES", "RATIO", "VERSION"]
    if rows:
        print(table(header, rows, right={2, 3, 4, 5, 9, 10, 11}))
    print(
        f"{summary['folders']} folder{'s' if summary['folders'] != 1 else ''}, {n_caches} "
        f"cache{'s' if n_caches != 1 else ''}, {summary['entries']:,} entries, {human_size(total_bytes)} in "
        f"entries, {human_size(total_disk)} on disk under {root_of(args.dir)}"
    )
    return 0


# ---------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    server = _redis(args)
    chosen = select(_found(args), args.names) if not server else []
    redis_chosen = server.select(args.names) if server else []
    out = []
    for p, c in chosen:
        largest = p.folder.largest(args.largest, ns=c["name"])
        out.append((p, c, largest))
    if args.json:
        caches = []
        for p, c, largest in out:
            d = _cache_json(p.name, c)
            d["path"] = str(p.path)
            d["largest"] = [
                {
                    **e,
                    "stored": iso(e.pop("stored_us")),
                    "used": iso(e.pop("used_us")),
                    "expires": iso(e.pop("expires_us")),
                }
                for e in largest
            ]
            caches.append(d)
        caches += [_cache_json(server.shown, c) for c in redis_chosen] if server else []
        emit_json("info", {"caches": caches})
        return 0
    for p, c, largest in out:
        ttl = c.get("ttl")
        lines = [
            ("folder", str(p.path)),
            ("engine", c.get("engine") or "-"),
            ("policy", c.get("policy") or p.folder.policy),
            ("ttl", human_duration(ttl) if ttl else "none"),
            ("limit", human_size(c.get("max_bytes")) + " (the folder's, shared by its caches)"),
            ("version", c.get("version") or "-"),
            ("entries", f"{c['entries']:,} ({c['expired']:,} expired, removed by later writes or `prune`)"),
            ("size", human_size(c["bytes"])),
            ("oldest", ago(_age(c.get("oldest_us")))),
            ("newest", ago(_age(c.get("newest_us")))),
            ("accessed", ago(_age(c.get("accessed_us")))),
        ]
        print(bold(c["name"]))
        _print_pairs(lines + _stats_pairs(c.get("stats")))
        if largest:
            print("largest entries:")
            rows = [
                [e["key"], human_size(e["bytes"]), ago(_age(e["stored_us"])), ago(_age(e["used_us"]))] for e in largest
            ]
            print(table(["  KEY", "SIZE", "STORED", "ACCESSED"], [["  " + r[0], *r[1:]] for r in rows], right={1}))
        print()
    for c in redis_chosen:
        print(bold(c["name"]))
        pairs = [("server", server.shown if server else "-"), ("entries", _n(c["entries"]))]
        _print_pairs([*pairs, ("size", human_size(c["bytes"])), *_stats_pairs(c.get("stats"))])
        print()
    return 0


def _print_pairs(pairs: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        print(f"  {k.ljust(width)}  {v}")


def _stats_pairs(stats: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not stats:
        return [("stats", "none yet (a process folds its counts every few seconds and at exit)")]
    return [
        ("hits", f"{stats['hits']:,} ({_ratio(stats)})"),
        ("misses", f"{stats['misses']:,}"),
        ("stale hits", f"{stats['stale_hits']:,}"),
        ("evictions", f"{stats['evictions']:,}"),
        ("expirations", f"{stats['expirations']:,}"),
        ("store errors", f"{stats['store_errors']:,}"),
        ("written", human_size(stats["bytes_written"])),
        ("read", human_size(stats["bytes_read"])),
    ]


# ---------------------------------------------------------------- stats

STAT_COLUMNS = [
    ("hits", "HITS"),
    ("misses", "MISSES"),
    ("stale_hits", "STALE"),
    ("evictions", "EVICTED"),
    ("expirations", "EXPIRED"),
    ("store_errors", "ERRORS"),
    ("bytes_written", "WRITTEN"),
    ("bytes_read", "READ"),
]


def cmd_stats(args: argparse.Namespace) -> int:
    server = _redis(args)
    chosen = select(_found(args), args.names) if not server else []
    redis_chosen = server.select(args.names) if server else []
    if args.zero:
        n = len(chosen) + len(redis_chosen)
        names = ", ".join(c["name"] for _, c in chosen) or ", ".join(c["name"] for c in redis_chosen)
        if not _go_ahead(args, f"Would set the counters of {n} cache{'s' if n != 1 else ''} to zero: {names}."):
            return 0 if args.dry_run else 2
        for p, c in chosen:
            p.folder.reset_counts(c["name"])
        for c in redis_chosen:
            assert server is not None
            server.server.reset_counts(c["name"])
        if args.json:
            emit_json("stats", {"zeroed": [c["name"] for _, c in chosen] + [c["name"] for c in redis_chosen]})
        else:
            print(f"zeroed the counters of {n} cache{'s' if n != 1 else ''}")
        return 0
    items = [(p.name, c) for p, c in chosen] + [(server.shown if server else "", c) for c in redis_chosen]
    totals = {k: sum((c.get("stats") or {}).get(k, 0) for _, c in items) for k, _ in STAT_COLUMNS}
    hm = totals["hits"] + totals["misses"]
    totals["hit_ratio"] = totals["hits"] / hm if hm else 0.0
    if args.json:
        emit_json(
            "stats",
            {
                "caches": [
                    {"folder": f, "name": c["name"], "stats": c.get("stats"), "since": iso(c.get("since_us"))}
                    for f, c in items
                ],
                "total": totals,
            },
        )
        return 0
    rows = []
    for _, c in items:
        s = c.get("stats")
        cells = [(human_size(s[k]) if k.startswith("bytes") else f"{s[k]:,}") if s else "-" for k, _ in STAT_COLUMNS]
        rows.append([c["name"], *cells[:2], _ratio(s), *cells[2:], ago(_age(c.get("since_us")))])
    cells = [human_size(totals[k]) if k.startswith("bytes") else f"{totals[k]:,}" for k, _ in STAT_COLUMNS]
    rows.append(["total", *cells[:2], _ratio(totals), *cells[2:], ""])
    header = ["NAME", "HITS", "MISSES", "RATIO", *(h for _, h in STAT_COLUMNS[2:]), "SINCE"]
    print(table(header, rows, right=set(range(1, 11))))
    print("summed over every process that used each cache (each folds its counts every few seconds and at exit)")
    return 0


# ---------------------------------------------------------------- rm


def _go_ahead(args: argparse.Namespace, plan: str) -> bool:
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


def _remover(place: Place, **sel: Any) -> Callable[[], tuple[int, int, bool]]:
    after: list[int | None] = [None]

    def step() -> tuple[int, int, bool]:
        n, b, nxt = place.folder.remove_batch(after=after[0], limit=BATCH, **sel)
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


def _used_before(args: argparse.Namespace) -> int | None:
    if args.older_than is None:
        return None
    return _now_us() - int(args.older_than * 1e6)


def cmd_rm(args: argparse.Namespace) -> int:
    server = _redis(args)
    if server:
        if args.older_than is not None or args.key_prefix:
            raise Refused("--older-than and --key-prefix work on folders; on Redis, rm removes whole caches")
        chosen_r = server.select(args.names)
        plan = "\n".join(f"  {c['name']}: {c['entries']:,} entries ({human_size(c['bytes'])})" for c in chosen_r)
        if not _go_ahead(args, f"Would remove every entry of these caches on {server.shown}:\n{plan}"):
            return 0 if args.dry_run else 2
        for c in chosen_r:
            server.server.clear(c["name"])
        return _finish("rm", args, sum(c["entries"] for c in chosen_r), sum(c["bytes"] for c in chosen_r), False)
    chosen = select(_found(args), args.names)
    used_before = _used_before(args)
    plans = []
    for p, c in chosen:
        sel = {"ns": c["name"], "used_before": used_before, "key_prefix": args.key_prefix}
        n, b = p.folder.measure(**sel)
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
    if not _go_ahead(args, "\n".join([head, *lines])):
        return 0 if args.dry_run else 2
    progress = Progress("rm", total_n)
    removed, nbytes, interrupted = _run_batches(progress, [_remover(p, **sel) for p, _, sel, _, _ in plans])
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
    found = _found(args)
    expired = args.expired or (args.older_than is None and args.max_size is None)
    used_before = _used_before(args)
    chosen = select(found, args.names) if args.names else [(p, c) for p in found for c in p.caches]
    folders = list({id(p): p for p, _ in chosen}.values()) if args.names else found
    steps: list[Callable[[], tuple[int, int, bool]]] = []
    lines, plan_json = [], []
    total_n = total_b = 0
    for p in folders:
        for c in (c for q, c in chosen if q is p):
            wanted: list[tuple[str, dict[str, Any]]] = []
            if expired:
                wanted.append(("expired", {"ns": c["name"], "expired": True}))
            if used_before is not None:
                wanted.append(
                    (f"not used for {human_duration(args.older_than)}", {"ns": c["name"], "used_before": used_before})
                )
            for label, sel in wanted:
                n, b = p.folder.measure(**sel)
                if n:
                    lines.append(f"  {p.name}/{c['name']}: {n:,} entries, {label} ({human_size(b)})")
                    plan_json.append({"folder": p.name, "name": c["name"], "reason": label, "entries": n, "bytes": b})
                    steps.append(_remover(p, **sel))
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
    if not _go_ahead(args, "\n".join(["Would remove:", *lines])):
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


# ---------------------------------------------------------------- verify


def _secret(args: argparse.Namespace) -> bytes | None:
    secret = args.secret if args.secret is not None else os.environ.get("TWAT_CACHE_SECRET")
    return secret.encode() if secret else None


def cmd_verify(args: argparse.Namespace) -> int:
    if args.redis:
        raise Refused("verify works on folders: a Redis cache checks every entry as it reads it")
    chosen = select(_found(args), args.names)
    secret = _secret(args)
    total = sum(c["entries"] for _, c in chosen)
    progress = Progress("verify", total)
    damaged: list[tuple[Place, dict[str, Any], str]] = []
    checked = unverified = 0
    interrupted = False
    try:
        for p, c in chosen:
            after = None
            while True:
                entries, after = p.folder.entries(ns=c["name"], after=after, limit=BATCH)
                for e in entries:
                    status, why = p.folder.verify(e["key"], secret)
                    if status == "damaged":
                        damaged.append((p, e, why))
                    elif status == "ok":
                        checked += 1
                        unverified += why == "signed, not verified"
                    progress.add(1, e["bytes"])
                if len(entries) < BATCH:
                    break
    except KeyboardInterrupt:
        interrupted = True
    progress.done()
    repaired = 0
    if damaged and args.repair and not interrupted:
        if not args.json:
            for p, e, why in damaged:
                print(f"{red('damaged')} {p.name}/{e['name']} {e['key']}: {why}")
        if _go_ahead(args, f"Would remove {len(damaged)} damaged entr{'ies' if len(damaged) != 1 else 'y'}."):
            repaired = sum(p.folder.remove_damaged(e["key"], secret) for p, e, _ in damaged)
        printed = True
    else:
        printed = False
    if args.json:
        emit_json(
            "verify",
            {
                "checked": checked + len(damaged),
                "sound": checked,
                "signature_not_checked": unverified,
                "damaged": [
                    {"folder": p.name, "name": e["name"], "key": e["key"], "why": why} for p, e, why in damaged
                ],
                "repaired": repaired,
                "interrupted": interrupted,
            },
        )
    else:
        if not printed:
            for p, e, why in damaged:
                print(f"{red('damaged')} {p.name}/{e['name']} {e['key']}: {why}")
        note = f" ({unverified:,} signed entries not checked against a secret: pass --secret)" if unverified else ""
        print(f"checked {checked + len(damaged):,} entries: {checked:,} sound, {len(damaged):,} damaged{note}")
        if repaired:
            print(f"removed {repaired:,} damaged entries")
        elif damaged and not args.repair:
            print("run `twat-cache verify --repair` to remove them (a cache also drops one when it reads it)")
    if interrupted:
        return INTERRUPTED
    return 1 if damaged else 0
