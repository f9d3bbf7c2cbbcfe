"""The exceptions of twat_cache.

Each subclasses the builtin a Python user would already catch, so ``except ValueError``
around a decorator still works. The Rust binding raises these by name (one mapping
function: ``crates/twat-cache-python/src/errors.rs``).
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EngineNotAvailableError",
    "SerializationError",
    "TwatCacheError",
]


class TwatCacheError(Exception):
    """Base class of every error twat_cache raises on purpose."""


class ConfigurationError(TwatCacheError, ValueError):
    """An option has a value outside what it accepts (raised at decoration time).

    >>> from twat_cache import mcache
    >>> try:
    ...     mcache(maxsize=-1)
    ... except ValueError as e:
    ...     print(e)
    mcache: invalid maxsize=-1: expected a non-negative int, or None for no bound
    """


class SerializationError(TwatCacheError, TypeError):
    """A value or key cannot be encoded for a persistent engine."""


class EngineNotAvailableError(TwatCacheError, RuntimeError):
    """The requested engine cannot be used here (e.g. its server is not reachable)."""
