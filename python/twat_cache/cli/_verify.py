"""``verify``: every entry read whole and checked (checksum, and the signature of signed
entries when the secret is known); ``--repair`` removes the damaged ones, after asking.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._core import Selection
from ._common import BATCH, INTERRUPTED, found_places, go_ahead
from ._find import Place, Refused, select
from ._term import Progress, emit_json, red


def _secret(args: argparse.Namespace) -> bytes | None:
    secret = args.secret if args.secret is not None else os.environ.get("TWAT_CACHE_SECRET")
    return secret.encode() if secret else None


def cmd_verify(args: argparse.Namespace) -> int:
    if args.redis:
        raise Refused("verify works on folders: a Redis cache checks every entry as it reads it")
    chosen = select(found_places(args), args.names)
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
                entries, after = p.folder.entries(Selection(ns=c["name"]), after=after, limit=BATCH)
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
        if go_ahead(args, f"Would remove {len(damaged)} damaged entr{'ies' if len(damaged) != 1 else 'y'}."):
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
