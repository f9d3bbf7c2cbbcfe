"""What the command line writes to a terminal: tables, colour, a progress line, and
the ``[y/N]`` question. Colour and progress only go to a terminal, and never when
``NO_COLOR`` is set; everything else is plain text that pipes well.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

SCHEMA_VERSION = 1


def colour_on(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def bold(text: str, stream: TextIO = sys.stdout) -> str:
    return f"\033[1m{text}\033[0m" if colour_on(stream) else text


def red(text: str, stream: TextIO = sys.stdout) -> str:
    return f"\033[31m{text}\033[0m" if colour_on(stream) else text


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int] | None = None) -> str:
    """Columns padded to their widest cell; numbers (columns in ``right``) flush right.

    >>> print(table(["NAME", "SIZE"], [["a", "1.0K"], ["bb", "12B"]], right={1}))
    NAME  SIZE
    a     1.0K
    bb     12B
    """
    right = right or set()
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([bold(line(header)), *(line(r) for r in rows)])


def emit_json(command: str, body: dict[str, Any]) -> None:
    """One JSON document on stdout: ``schema_version``, ``command`` and the body."""
    doc = {"schema_version": SCHEMA_VERSION, "command": command, **body}
    json.dump(doc, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


class Progress:
    """A progress line on stderr (count, bytes, rate), redrawn at most ten times a
    second, on a terminal only; cleared when the work is done."""

    def __init__(self, what: str, total: int | None = None) -> None:
        self.what, self.total = what, total
        self.count = self.bytes = 0
        self.on = colour_on(sys.stderr)
        self.started = self.drawn = time.monotonic()

    def add(self, count: int, nbytes: int) -> None:
        from ._units import human_size

        self.count += count
        self.bytes += nbytes
        now = time.monotonic()
        if not self.on or now - self.drawn < 0.1:
            return
        self.drawn = now
        rate = self.bytes / max(now - self.started, 1e-6)
        of = f"/{self.total:,}" if self.total is not None else ""
        sys.stderr.write(
            f"\r{self.what}: {self.count:,}{of} entries, {human_size(self.bytes)}, {human_size(int(rate))}/s "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.on:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def confirm(question: str, yes: bool) -> bool:
    """``-y`` answers yes; on a terminal the user is asked (default no). Without a
    terminal and without ``-y`` nothing is deleted: the caller refuses."""
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("y", "yes")
