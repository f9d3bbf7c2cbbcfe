"""The commands that only look: ``ls``, ``info`` and ``stats`` (``stats --zero`` resets
the totals, after asking)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._core import Selection
from ._common import age, cache_json, found_places, go_ahead, now_us, ratio, redis_of, show_count
from ._filters import Filter
from ._find import Place, root_of, select
from ._term import bold, emit_json, table
from ._units import ago, human_duration, human_size, iso


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
    found = found_places(args)
    server = redis_of(args)
    redis_caches = server.caches() if server else []
    filt = Filter(args.filter or [])
    sort = args.sort

    def keep(c: dict[str, Any]) -> bool:
        return filt.accepts(c, now_us())

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
                "caches": [cache_json(p.name, c) for c in cs],
            }
        )
        rows.append([f"{p.name}/", "", show_count(entries), human_size(nbytes), human_size(limit), fill, *([""] * 7)])
        for c in cs:
            stats = c.get("stats")
            rows.append(
                [
                    f"  {c['name']}",
                    c.get("engine") or "-",
                    show_count(c["entries"]),
                    human_size(c["bytes"]),
                    "",
                    "",
                    ago(age(c.get("oldest_us"))),
                    ago(age(c.get("newest_us"))),
                    ago(age(c.get("accessed_us"))),
                    show_count(stats["hits"]) if stats else "-",
                    show_count(stats["misses"]) if stats else "-",
                    ratio(stats),
                    (c.get("version") or "-")[:8],
                ]
            )
    if server:
        rows.append(
            [f"{server.shown}", "", show_count(sum(c["entries"] for c in redis_shown)), "", "", "", *([""] * 7)]
        )
        for c in redis_shown:
            stats = c.get("stats")
            rows.append(
                [
                    f"  {c['name']}",
                    "rcache",
                    show_count(c["entries"]),
                    human_size(c["bytes"]),
                    *([""] * 5),
                    show_count(stats["hits"]) if stats else "-",
                    show_count(stats["misses"]) if stats else "-",
                    ratio(stats),
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
            body["redis"] = {"url": server.shown, "caches": [cache_json("", c) for c in redis_shown]}
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
    server = redis_of(args)
    chosen = select(found_places(args), args.names) if not server else []
    redis_chosen = server.select(args.names) if server else []
    out = []
    for p, c in chosen:
        largest = p.folder.largest(Selection(ns=c["name"]), args.largest)
        out.append((p, c, largest))
    if args.json:
        caches = []
        for p, c, largest in out:
            d = cache_json(p.name, c)
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
        caches += [cache_json(server.shown, c) for c in redis_chosen] if server else []
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
            ("oldest", ago(age(c.get("oldest_us")))),
            ("newest", ago(age(c.get("newest_us")))),
            ("accessed", ago(age(c.get("accessed_us")))),
        ]
        print(bold(c["name"]))
        _print_pairs(lines + _stats_pairs(c.get("stats")))
        if largest:
            print("largest entries:")
            rows = [
                [e["key"], human_size(e["bytes"]), ago(age(e["stored_us"])), ago(age(e["used_us"]))] for e in largest
            ]
            print(table(["  KEY", "SIZE", "STORED", "ACCESSED"], [["  " + r[0], *r[1:]] for r in rows], right={1}))
        print()
    for c in redis_chosen:
        print(bold(c["name"]))
        pairs = [("server", server.shown if server else "-"), ("entries", show_count(c["entries"]))]
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
        ("hits", f"{stats['hits']:,} ({ratio(stats)})"),
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
    server = redis_of(args)
    chosen = select(found_places(args), args.names) if not server else []
    redis_chosen = server.select(args.names) if server else []
    if args.zero:
        n = len(chosen) + len(redis_chosen)
        names = ", ".join(c["name"] for _, c in chosen) or ", ".join(c["name"] for c in redis_chosen)
        if not go_ahead(args, f"Would set the counters of {n} cache{'s' if n != 1 else ''} to zero: {names}."):
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
        rows.append([c["name"], *cells[:2], ratio(s), *cells[2:], ago(age(c.get("since_us")))])
    cells = [human_size(totals[k]) if k.startswith("bytes") else f"{totals[k]:,}" for k, _ in STAT_COLUMNS]
    rows.append(["total", *cells[:2], ratio(totals), *cells[2:], ""])
    header = ["NAME", "HITS", "MISSES", "RATIO", *(h for _, h in STAT_COLUMNS[2:]), "SINCE"]
    print(table(header, rows, right=set(range(1, 11))))
    print("summed over every process that used each cache (each folds its counts every few seconds and at exit)")
    return 0
