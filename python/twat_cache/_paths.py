"""Where persistent caches live (docs/reference.md, "Environment variables").

``$TWAT_CACHE_DIR/<folder_name>`` when that variable is set, else
``<platform cache dir>/twat_cache/<folder_name>``; an absolute ``folder_name`` is used as
given. The Rust store creates missing folders with owner-only permissions.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from .exceptions import ConfigurationError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def platform_cache_dir() -> Path:
    """The user's cache directory: ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux,
    ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def base_dir() -> Path:
    """The folder that relative folder names are placed in."""
    configured = os.environ.get("TWAT_CACHE_DIR")
    return Path(configured).expanduser() if configured else platform_cache_dir() / "twat_cache"


def folder_for_name(name: str) -> str:
    """A folder name derived from a cache's registry name (``module.qualname``).

    >>> folder_for_name("pkg.mod.Loader.<locals>.load")
    'pkg.mod.Loader._locals_.load'
    """
    return _UNSAFE.sub("_", name).strip(".") or "default"


def get_cache_path(folder_name: str | os.PathLike[str] | None = None) -> Path:
    """Where a persistent cache with this ``folder_name`` keeps its files.

    >>> import os
    >>> os.environ["TWAT_CACHE_DIR"] = "/tmp/twat-doc"
    >>> get_cache_path("user_data_cache")
    PosixPath('/tmp/twat-doc/user_data_cache')
    >>> get_cache_path("/srv/cache/arrays")
    PosixPath('/srv/cache/arrays')
    >>> del os.environ["TWAT_CACHE_DIR"]
    """
    if folder_name is None:
        return base_dir()
    path = Path(folder_name).expanduser()
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise ConfigurationError(
            f"invalid folder_name={str(folder_name)!r}: expected a name inside the cache directory "
            "(no '..') or an absolute path"
        )
    return base_dir() / path
