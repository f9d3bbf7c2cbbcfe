"""``twat-cache``: see, check, prune and clear the caches on this machine (and on a
Redis server). Run ``twat-cache --help``, or read docs/cli.md.

>>> main(["--version"]) == 0  # doctest: +ELLIPSIS
twat-cache ...
True
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import _core
from ..exceptions import ConfigurationError, TwatCacheError
from . import _common, _remove, _show, _verify
from ._filters import condition
from ._find import Refused
from ._units import parse_duration, parse_size

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, never a traceback."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _typed(parse: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """``parse`` as an argparse type: its ``ValueError`` becomes argparse's one-line error."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = what
    return convert


def _older_than(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--older-than",
        type=_typed(parse_duration, "duration"),
        metavar="AGE",
        help="only entries not read nor written for AGE (30d, 12h, 90s)",
    )


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--dir",
        metavar="PATH",
        help="a cache folder, or a folder of them (default: $TWAT_CACHE_DIR or the platform cache folder)",
    )
    common.add_argument("--redis", metavar="URL", help="a Redis or Valkey server whose caches to show or clear")
    common.add_argument(
        "--json", action="store_true", help="print one JSON document (schema_version 1) instead of text"
    )
    destructive = _Parser(add_help=False)
    destructive.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    destructive.add_argument("--dry-run", action="store_true", help="only show what would be done")

    top = _Parser(
        prog="twat-cache",
        description="See, check, prune and clear twat-cache caches: folders of bcache/fcache and Redis namespaces.",
        epilog="Exit status: 0 done, 1 damage found (verify) or a failure, 2 bad arguments or refused, "
        "130 interrupted.",
    )
    top.add_argument("--version", action="version", version=f"twat-cache {_core.__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    ls = sub.add_parser("ls", parents=[common], help="list caches: entries, sizes, ages, hit ratios")
    ls.add_argument(
        "--sort",
        choices=["name", "size", "accessed"],
        default="name",
        help="name; size: largest first; accessed: least recently used first",
    )
    ls.add_argument(
        "--filter",
        action="append",
        type=_typed(condition, "filter"),
        metavar="COND",
        help="FIELD OP VALUE, like 'size>1GB' or 'accessed>30d' (fields: size, entries, hits, misses, ratio, "
        "accessed, newest, oldest); repeat for AND",
    )
    ls.add_argument("-q", "--quiet", action="store_true", help="print cache names only, one per line")
    ls.set_defaults(run=_show.cmd_ls)

    info = sub.add_parser(
        "info", parents=[common], help="one cache in detail: folder, policy, TTL, limit, largest entries, stats"
    )
    info.add_argument("names", nargs="+", metavar="NAME", help="a cache's name or folder (shell patterns allowed)")
    info.add_argument(
        "--largest", type=int, default=10, metavar="N", help="how many of the largest entries to show (default 10)"
    )
    info.set_defaults(run=_show.cmd_info)

    stats = sub.add_parser(
        "stats", parents=[common, destructive], help="hits, misses, evictions... summed over every process"
    )
    stats.add_argument("names", nargs="*", metavar="NAME", help="caches to show (default: all)")
    stats.add_argument("--zero", action="store_true", help="set the counters to zero")
    stats.set_defaults(run=_show.cmd_stats)

    rm = sub.add_parser("rm", parents=[common, destructive], help="remove a cache's entries, or its old ones")
    rm.add_argument("names", nargs="+", metavar="NAME", help="a cache's name or folder (shell patterns allowed)")
    _older_than(rm)
    rm.add_argument(
        "--key-prefix",
        metavar="HEX",
        help="only entries whose key begins with these hex digits (keys: `twat-cache info`)",
    )
    rm.set_defaults(run=_remove.cmd_rm)

    prune = sub.add_parser(
        "prune",
        parents=[common, destructive],
        help="drop expired or old entries, evict down to a size, clear leftovers",
    )
    prune.add_argument("names", nargs="*", metavar="NAME", help="caches to prune (default: all)")
    prune.add_argument(
        "--expired", action="store_true", help="expired entries (the default when no other option is given)"
    )
    _older_than(prune)
    prune.add_argument(
        "--max-size",
        type=_typed(parse_size, "size"),
        metavar="SIZE",
        help="evict by the folder's policy down to SIZE (2G, 500M)",
    )
    prune.set_defaults(run=_remove.cmd_prune)

    verify = sub.add_parser(
        "verify", parents=[common, destructive], help="read every entry and check its checksum and signature"
    )
    verify.add_argument("names", nargs="*", metavar="NAME", help="caches to check (default: all)")
    verify.add_argument("--repair", action="store_true", help="remove the damaged entries")
    verify.add_argument(
        "--secret", metavar="SECRET", help="the HMAC secret of signed caches (default: $TWAT_CACHE_SECRET)"
    )
    verify.set_defaults(run=_verify.cmd_verify)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; gives back the exit status."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    for flag in ("dry_run", "yes"):
        if not hasattr(args, flag):
            setattr(args, flag, False)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        raise
    except (Refused, ConfigurationError) as e:
        sys.stderr.write(f"twat-cache {args.command}: {e}\n")
        return EXIT_USAGE
    except (TwatCacheError, OSError) as e:
        sys.stderr.write(f"twat-cache {args.command}: failed: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("twat-cache: interrupted\n")
        return _common.INTERRUPTED


def run() -> None:
    """The console script's entry point."""
    try:
        code = main()
    except BrokenPipeError:
        # `twat-cache ls | head`: the reader left; nothing more to say (and nothing more
        # to flush at exit either).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
