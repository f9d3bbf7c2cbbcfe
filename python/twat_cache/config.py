"""``CacheConfig``: a set of cache options, checked once, reusable by every decorator
and ``CacheContext`` through ``config=``.

A config holds only the options it was given; the others keep each decorator's own
default. Options a decorator does not have are ignored by it (``compress`` means nothing
to ``mcache``), so one config can serve several decorators. Options passed to a
decorator directly win over the config's.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # typing.Unpack is 3.11+; annotations are never evaluated at run time
    from typing import Unpack

from . import _options
from ._freshness import check_freshness
from .engines import check_engine
from .exceptions import ConfigurationError

__all__ = ["CacheConfig", "Options", "create_cache_config"]


class Options(TypedDict, total=False):
    """Every option a config may hold."""

    maxsize: int | None
    ttl: float | datetime.timedelta | Callable[[Any], float | None] | None
    stale_ttl: float | datetime.timedelta | None
    stale_if_error: bool | float | datetime.timedelta | None
    cache_if: Callable[[Any], object] | None
    policy: str
    folder_name: str | os.PathLike[str] | None
    compress: bool | str
    mmap: bool
    durable: bool
    secret: str | bytes | bool | None
    serializer: Any
    url: str | None
    namespace: str | None
    timeout: float | datetime.timedelta
    lock: bool
    lock_wait: float | datetime.timedelta
    local: bool | int | None
    key: Callable[..., Any] | None
    ignore: Iterable[str]
    typed: bool
    secure: bool
    name: str | None
    version: str | int | None
    preferred_engine: str | None


def _kept(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """Checks a value but keeps it as given (``compress=True`` stays ``True``)."""

    def run(where: str, value: Any) -> Any:
        check(where, value)
        return value

    return run


def _flag(param: str) -> Callable[[str, Any], bool]:
    return lambda where, value: _options.check_flag(where, param, value)


def _secret(where: str, value: Any) -> Any:
    return value if value is None else _kept(_options.check_secret)(where, value)


def _ttl(where: str, value: Any) -> Any:
    """Seconds (kept as a float), or a callable of the result (kept as it is)."""
    return value if callable(value) else _options.check_ttl(where, value)


def _fresh_option(where: str, param: str, value: Any) -> Any:
    """A freshness option checked on its own (whether it has the ``ttl`` it needs is
    checked by the decorator that uses it)."""
    check_freshness(where, {"ttl": 1.0, param: value})
    return value


def _engine(where: str, value: Any) -> str | None:
    return None if value is None else check_engine(where, "preferred_engine", value)


# Each option's check (run with "CacheConfig" as the place); it returns the value kept.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "maxsize": _options.check_maxsize,
    "ttl": _ttl,
    "stale_ttl": lambda where, value: _fresh_option(where, "stale_ttl", value),
    "stale_if_error": lambda where, value: _fresh_option(where, "stale_if_error", value),
    "cache_if": lambda where, value: _fresh_option(where, "cache_if", value),
    "policy": _options.check_policy,
    "folder_name": _options.check_folder,
    "compress": _kept(_options.check_compress),
    "mmap": _flag("mmap"),
    "durable": _flag("durable"),
    "secret": _secret,
    "serializer": _kept(_options.check_serializer),
    "url": lambda where, value: None if value is None else _options.check_url(where, value),
    "namespace": _options.check_namespace,
    "timeout": lambda where, value: _options.check_seconds(where, "timeout", value),
    "lock": _flag("lock"),
    "lock_wait": lambda where, value: _options.check_seconds(where, "lock_wait", value),
    "local": _kept(_options.check_local),
    "key": _options.check_key,
    "ignore": _options.check_ignore,
    "typed": _flag("typed"),
    "secure": _flag("secure"),
    "name": _options.check_name,
    "version": _options.check_version,
    "preferred_engine": _engine,
}
OPTION_NAMES = tuple(_CHECKS)


class CacheConfig:
    """Cache options, checked when the config is made; immutable.

    >>> config = CacheConfig(maxsize=512, ttl=60)
    >>> config
    CacheConfig(maxsize=512, ttl=60.0)
    >>> config.maxsize, config.policy   # policy was not given: None (the decorator's default)
    (512, None)
    >>> CacheConfig.from_dict(config.to_dict()) == config
    True
    >>> config.replace(ttl=None).to_dict()
    {'maxsize': 512, 'ttl': None}
    >>> CacheConfig(maxsize=-1)
    Traceback (most recent call last):
    ...
    twat_cache.exceptions.ConfigurationError: CacheConfig: invalid maxsize=-1: expected a non-negative int, ...
    """

    __slots__ = ("_values",)
    _values: dict[str, Any]

    def __init__(self, **options: Unpack[Options]) -> None:
        unknown = sorted(set(options) - set(_CHECKS))
        if unknown:
            raise ConfigurationError(
                f"CacheConfig: unknown option(s) {', '.join(map(repr, unknown))}; options: {', '.join(OPTION_NAMES)}"
            )
        values = {k: _CHECKS[k]("CacheConfig", options[k]) for k in OPTION_NAMES if k in options}  # type: ignore[literal-required]
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> Any:
        if name in _CHECKS:
            return self._values.get(name)
        raise AttributeError(f"CacheConfig has no option {name!r}; options: {', '.join(OPTION_NAMES)}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CacheConfig is immutable: use config.replace(...) for a changed copy")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CacheConfig is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CacheConfig) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={'<hidden>' if k == 'secret' else repr(v)}" for k, v in self._values.items())
        return f"CacheConfig({shown})"

    def to_dict(self) -> dict[str, Any]:
        """The options that were given, by name (in the order of ``OPTION_NAMES``)."""
        return {k: self._values[k] for k in OPTION_NAMES if k in self._values}

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> CacheConfig:
        """A config from a mapping such as ``to_dict()`` returns; unknown names fail."""
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"CacheConfig.from_dict: expected a mapping of options, got {options!r}")
        return cls(**options)

    def replace(self, **changes: Any) -> CacheConfig:
        """A copy with some options changed."""
        return CacheConfig.from_dict({**self._values, **changes})


def create_cache_config(**options: Unpack[Options]) -> CacheConfig:
    """``CacheConfig(**options)``, the function form.

    >>> create_cache_config(ttl=30, policy="LFU").to_dict()
    {'ttl': 30.0, 'policy': 'lfu'}
    """
    return CacheConfig.from_dict(options)


def settle(decorator: str, config: object, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The options a decorator (or context) uses: its ``defaults``, then the config's
    values for those options, then the options given directly. An option that is not
    one of ``defaults`` is a ``TypeError`` naming what is accepted."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(
            f"{decorator}() got an unexpected keyword argument {unknown[0]!r}; accepted: {', '.join(defaults)}, config"
        )
    if config is not None and not isinstance(config, CacheConfig):
        raise ConfigurationError(f"{decorator}: invalid config={config!r}: expected a CacheConfig or None")
    settled = dict(defaults)
    if config is not None:
        settled.update({k: v for k, v in config.to_dict().items() if k in defaults})
    settled.update(given)
    return settled
