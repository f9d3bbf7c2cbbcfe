"""Engine names: ours, and the names of the libraries the original twat-cache wrapped,
kept as aliases so that code written for it runs unchanged.

>>> canonical_engine("cachetools"), canonical_engine("diskcache"), canonical_engine("joblib")
('memory', 'disk', 'file')
>>> canonical_engine("aiocache")
'async'
"""

from __future__ import annotations

from .exceptions import ConfigurationError, EngineNotAvailableError

__all__ = ["ALIASES", "ENGINES", "canonical_engine", "check_engine", "require_available"]

# Our engines, and what each is.
ENGINES: dict[str, str] = {
    "memory": "in-process memory (mcache): LRU/LFU/FIFO/RR/TinyLFU, TTL",
    "async": "in-process memory for async functions (acache)",
    "disk": "a folder with an SQLite index, shared by processes (bcache)",
    "file": "a folder of raw files for large values, compression, mmap (fcache)",
    "redis": "a Redis or Valkey server (or cluster) shared by machines (rcache)",
}

# The original library's engine names (and our decorators' names) -> our engine.
ALIASES: dict[str, str] = {
    "functools": "memory",
    "cachetools": "memory",
    "cachebox": "memory",
    "mcache": "memory",
    "aiocache": "async",
    "acache": "async",
    "diskcache": "disk",
    "klepto": "disk",
    "bcache": "disk",
    "joblib": "file",
    "fcache": "file",
    "rcache": "redis",
    "valkey": "redis",
}

_VALID = ", ".join(map(repr, [*ENGINES, *ALIASES]))


def canonical_engine(name: str) -> str:
    """Our name for an engine name or alias (case-insensitive); ``ConfigurationError``
    listing the valid names if it is neither."""
    return check_engine("engine", "engine_name", name)


def check_engine(where: str, param: str, name: object) -> str:
    """``canonical_engine`` for the option ``param`` of ``where`` (for the error message)."""
    if isinstance(name, str):
        lowered = name.strip().lower()
        if lowered in ENGINES:
            return lowered
        if lowered in ALIASES:
            return ALIASES[lowered]
    raise ConfigurationError(f"{where}: invalid {param}={name!r}: expected one of {_VALID}")


def require_available(where: str, engine: str) -> None:
    """Raises ``EngineNotAvailableError`` for an engine that is reserved but not built
    (none is, today: every name above has its engine)."""
    if engine not in ENGINES:
        raise EngineNotAvailableError(f"{where}: the {engine!r} engine is not available")
