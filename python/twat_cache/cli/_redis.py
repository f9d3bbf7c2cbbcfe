"""The caches of a Redis or Valkey server, for ``--redis URL``: the namespaces that
have totals there (every cache does once one of its processes has run a few
seconds), with their entries, bytes and totals."""

from __future__ import annotations

import fnmatch
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import _core
from ._find import Refused


def shown_url(url: str) -> str:
    """The URL without its password.

    >>> shown_url("redis://user:hunter2@127.0.0.1:6379/0")
    'redis://user:***@127.0.0.1:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisCaches:
    def __init__(self, url: str) -> None:
        self.shown = shown_url(url)
        self.server = _core.Server(url)

    def caches(self) -> list[dict[str, Any]]:
        found = []
        for ns in self.server.namespaces():
            entries, nbytes = self.server.usage(ns)
            found.append(
                {"name": ns, "entries": entries, "bytes": nbytes, "stats": self.server.counts(ns), "engine": "rcache"}
            )
        return found

    def select(self, patterns: list[str]) -> list[dict[str, Any]]:
        found = self.caches()
        chosen = [c for c in found if not patterns or any(fnmatch.fnmatchcase(c["name"], p) for p in patterns)]
        for p in patterns:
            if not any(fnmatch.fnmatchcase(c["name"], p) for c in chosen):
                raise Refused(f"no cache is named {p!r} on {self.shown} (`twat-cache ls --redis URL` lists them)")
        return chosen
