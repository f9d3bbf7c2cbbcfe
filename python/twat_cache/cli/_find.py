"""Which cache folders the command line works on, and which caches a NAME means.

The root is ``--dir PATH`` or, without it, ``$TWAT_CACHE_DIR`` or the platform cache
folder. A root that is itself a cache folder is the only folder; otherwise every cache
folder inside it, two levels down at most. A folder is a cache folder when it holds the
``index.sqlite`` a cache made (the native ``Folder`` checks its tables and refuses
anything else); symbolic links inside the root are not followed, so nothing outside it
is ever listed, let alone changed. The root itself is resolved once, so ``--dir`` may be
a link to a cache folder.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from .._paths import base_dir
from ..exceptions import ConfigurationError

DEPTH = 2


class Refused(Exception):
    """A request the command line will not carry out (exit status 2)."""


@dataclass
class Place:
    """One cache folder, opened, with its caches as the index describes them."""

    path: Path
    name: str
    folder: Any  # _core.Folder
    caches: list[dict[str, Any]] = field(default_factory=list)

    def cache(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.caches if c["name"] == name), None)


def root_of(dir_arg: str | None) -> Path:
    """The folder to work in, resolved (a link given on purpose is followed once)."""
    root = Path(dir_arg).expanduser() if dir_arg else base_dir()
    return Path(os.path.realpath(root))


def _looks_like_cache(path: Path) -> bool:
    index = path / "index.sqlite"
    return index.is_file() and not index.is_symlink()


def _candidates(root: Path, depth: int) -> Iterator[Path]:
    if depth == 0:
        return
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        # Links are never followed: a link to /etc inside the root is not a folder here.
        if not e.is_dir(follow_symlinks=False) or e.name in ("data", "tmp"):
            continue
        path = Path(e.path)
        if _looks_like_cache(path):
            yield path
        else:
            yield from _candidates(path, depth - 1)


def open_folder(path: Path, root: Path) -> Place:
    try:
        folder = _core.Folder(str(path))
    except ConfigurationError as e:
        raise Refused(f"{path} is not a twat-cache folder ({e})") from None
    name = "." if path == root else str(path.relative_to(root))
    return Place(path=path, name=name, folder=folder, caches=folder.caches())


def places(root: Path) -> list[Place]:
    """Every cache folder under ``root`` (or ``root`` itself), opened."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise Refused(f"{root} is not a folder")
    if _looks_like_cache(root):
        return [open_folder(root, root)]
    found = []
    for path in _candidates(root, DEPTH):
        try:
            found.append(open_folder(path, root))
        except Refused:
            continue  # an index.sqlite that is not ours: not listed
    return found


def require_cache_root(root: Path, explicit: bool) -> None:
    """``--dir`` pointing at a folder with no cache in it is an error, not an empty list."""
    if explicit and root.is_dir() and not _looks_like_cache(root) and not any(_candidates(root, DEPTH)):
        raise Refused(f"{root} is not a twat-cache folder and holds none (no index.sqlite made by a cache)")
    if explicit and not root.exists():
        raise Refused(f"{root} does not exist")


def matches(place: Place, cache: dict[str, Any], patterns: list[str]) -> bool:
    """Whether a cache is named by one of the patterns: its name or its folder's name,
    exactly or as a shell pattern (``'myapp.*'``)."""
    if not patterns:
        return True
    names = (cache["name"], place.name)
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


def select(found: list[Place], patterns: list[str]) -> list[tuple[Place, dict[str, Any]]]:
    """The caches the patterns name; a pattern that names none is an error."""
    chosen = [(p, c) for p in found for c in p.caches if matches(p, c, patterns)]
    for pattern in patterns:
        if not any(matches(p, c, [pattern]) for p, c in chosen):
            raise Refused(f"no cache is named {pattern!r} (`twat-cache ls` lists them)")
    return chosen
