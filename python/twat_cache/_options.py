"""Validation of decorator options, shared by every decorator.

Bad configuration fails at decoration time with the parameter, the value and what is
accepted (docs/reference.md, "Decorators"). Each check returns the normalized value.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

from ._core import DEFAULT_LOCAL, POLICIES
from ._paths import get_cache_path
from .exceptions import ConfigurationError

# The options that shape keys, and their defaults: common to every decorator.
KEY_DEFAULTS: dict[str, Any] = {
    "key": None,
    "ignore": (),
    "typed": False,
    "name": None,
    "version": None,
    "secure": True,
}


def _fail(decorator: str, param: str, value: object, accepted: str) -> ConfigurationError:
    return ConfigurationError(f"{decorator}: invalid {param}={value!r}: expected {accepted}")


def check_maxsize(decorator: str, maxsize: object) -> int | None:
    """``None`` (no bound) or an int >= 0."""
    if maxsize is None:
        return None
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
        raise _fail(decorator, "maxsize", maxsize, "a non-negative int, or None for no bound")
    return maxsize


def _seconds(value: object) -> float:
    """A number of seconds or a ``timedelta`` as a float; NaN for anything else."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def check_ttl(decorator: str, ttl: object) -> float | None:
    """``None`` (no expiry), a positive number of seconds, or a positive ``timedelta``."""
    if ttl is None:
        return None
    seconds = _seconds(ttl)
    if not (math.isfinite(seconds) and seconds > 0):
        raise _fail(decorator, "ttl", ttl, "a positive number of seconds or timedelta, or None for no expiry")
    return seconds


def check_jitter(decorator: str, jitter: object, ttl: float | None) -> float | None:
    """``None``, or a number of seconds (or ``timedelta``) >= 0 added at random to each
    entry's ``ttl``; it needs a ``ttl`` to spread."""
    if jitter is None:
        return None
    seconds = _seconds(jitter)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _fail(decorator, "jitter", jitter, "a number of seconds >= 0 or timedelta, or None")
    if ttl is None and seconds > 0:
        raise _fail(decorator, "jitter", jitter, "None unless ttl= is given too (jitter spreads the ttl)")
    return seconds


def check_local(decorator: str, local: object) -> int | None:
    """``local=``: ``None``/``False`` (no local tier), ``True`` (the default size) or a
    positive number of entries."""
    if local is None or local is False:
        return None
    if local is True:
        return int(DEFAULT_LOCAL)
    if isinstance(local, int) and local > 0:
        return local
    raise _fail(decorator, "local", local, "True, a positive number of entries, or None/False")


def check_policy(decorator: str, policy: object) -> str:
    """One of the names in ``twat_cache._core.POLICIES``."""
    if not isinstance(policy, str) or policy.lower() not in POLICIES:
        raise _fail(decorator, "policy", policy, "one of " + ", ".join(map(repr, POLICIES)))
    return policy.lower()


def check_key(decorator: str, key: object) -> Callable[..., Any] | None:
    """``None`` or a callable taking the call's arguments."""
    if key is not None and not callable(key):
        raise _fail(decorator, "key", key, "a callable taking the function's arguments, or None")
    return key


def check_ignore(decorator: str, ignore: object) -> tuple[str, ...]:
    """A parameter name or an iterable of them."""
    if isinstance(ignore, str):
        return (ignore,)
    if isinstance(ignore, Iterable):
        names = tuple(ignore)
        if all(isinstance(n, str) for n in names):
            return names
    raise _fail(decorator, "ignore", ignore, "a parameter name or a tuple of parameter names")


def check_flag(decorator: str, param: str, value: object) -> bool:
    """Exactly ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise _fail(decorator, param, value, "True or False")
    return value


def check_name(decorator: str, name: object) -> str | None:
    """``None`` (``module.qualname``) or a non-empty string."""
    if name is not None and (not isinstance(name, str) or not name):
        raise _fail(decorator, "name", name, "a non-empty str, or None for module.qualname")
    return name


def check_version(decorator: str, version: object) -> str | int | None:
    """``None`` (fingerprint of the code) or a str/int."""
    if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
        raise _fail(decorator, "version", version, "a str or int, or None for a fingerprint of the code")
    return version


DISK_POLICIES = ("lru", "lfu", "fifo")


def check_bytes(decorator: str, maxsize: object) -> int | None:
    """``None`` (the default limit, 1 GiB) or a positive number of bytes."""
    if maxsize is None:
        return None
    if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize <= 0:
        raise _fail(decorator, "maxsize", maxsize, "a positive number of bytes, or None for the default (1 GiB)")
    return maxsize


def check_disk_policy(decorator: str, policy: object) -> str:
    """One of the policies a persistent store supports."""
    if not isinstance(policy, str) or policy.lower() not in DISK_POLICIES:
        raise _fail(decorator, "policy", policy, "one of " + ", ".join(map(repr, DISK_POLICIES)))
    return policy.lower()


def check_compress(decorator: str, compress: object) -> str:
    """``False``/``None`` (raw), ``True`` or ``"zstd"``, or ``"lz4"``; returns the codec name."""
    if compress is None or compress is False:
        return "none"
    if compress is True:
        return "zstd"
    if isinstance(compress, str) and compress.lower() in ("zstd", "lz4"):
        return compress.lower()
    raise _fail(decorator, "compress", compress, "False, True (zstd), 'zstd' or 'lz4'")


def check_secret(decorator: str, secret: object) -> bytes | None:
    """The HMAC key: ``secret=`` (str or bytes), else ``$TWAT_CACHE_SECRET``, else none;
    ``False`` is an explicit none (unsigned entries, chosen)."""
    if secret is False:
        return None
    if secret is None:
        from_env = os.environ.get("TWAT_CACHE_SECRET")
        return from_env.encode() if from_env else None
    if isinstance(secret, str) and secret:
        return secret.encode()
    if isinstance(secret, (bytes, bytearray)) and secret:
        return bytes(secret)
    raise _fail(
        decorator, "secret", "<hidden>", "a non-empty str or bytes, None for $TWAT_CACHE_SECRET, or False for none"
    )


def check_folder(decorator: str, folder_name: object) -> str | os.PathLike[str] | None:
    """``None`` (a folder named after the function), a name, or an absolute path."""
    if folder_name is None or (isinstance(folder_name, (str, os.PathLike)) and str(folder_name)):
        return folder_name
    raise _fail(decorator, "folder_name", folder_name, "a folder name or absolute path, or None")


def check_memory_options(where: str, options: dict[str, Any]) -> dict[str, Any]:
    """The memory engine's own options (``maxsize`` in entries, ``ttl``, ``policy``),
    checked and normalized; shared by ``mcache``/``acache`` and memory contexts."""
    return {
        "maxsize": check_maxsize(where, options["maxsize"]),
        "ttl": check_ttl(where, options["ttl"]),
        "policy": check_policy(where, options["policy"]),
    }


def check_store_options(where: str, options: dict[str, Any]) -> dict[str, Any]:
    """The persistent store's own options (``folder_name``, ``maxsize`` in bytes,
    ``ttl``, ``policy``, ``compress``, ``mmap``, ``durable``, ``secret``), checked and
    normalized; shared by ``bcache``/``fcache`` and disk and file contexts. A bad
    ``folder_name`` fails here, not at the first use."""
    folder = check_folder(where, options["folder_name"])
    codec = check_compress(where, options["compress"])
    use_mmap = check_flag(where, "mmap", options.get("mmap", False))
    if use_mmap and codec != "none":
        raise ConfigurationError(
            f"{where}: invalid mmap=True with compress={options['compress']!r}: expected compress=False, "
            "since only a raw entry can be memory-mapped"
        )
    if folder is not None:
        get_cache_path(folder)
    return {
        "folder_name": folder,
        "maxsize": check_bytes(where, options["maxsize"]),
        "ttl": check_ttl(where, options["ttl"]),
        "policy": check_disk_policy(where, options["policy"]),
        "compress": codec,
        "mmap": use_mmap,
        "durable": check_flag(where, "durable", options["durable"]),
        "secret": check_secret(where, options["secret"]),
        "serializer": _checked_serializer(where, options, use_mmap),
    }


def _checked_serializer(where: str, options: dict[str, Any], use_mmap: bool) -> Any:
    serializer = check_serializer(where, options.get("serializer", "pickle"))
    if use_mmap and serializer is not None:
        raise ConfigurationError(
            f"{where}: invalid mmap=True with serializer={options['serializer']!r}: expected serializer='pickle', "
            "since only pickle's raw array buffers can be memory-mapped"
        )
    return serializer


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+unix://", "redis+cluster://", "rediss+cluster://")
_REDIS_URLS = "a redis://, rediss://, unix:// or redis+cluster://host:port,host:port URL"


def shown_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages).

    >>> shown_url("redis://app:hunter2@cache.internal:6379/0")
    'redis://app:***@cache.internal:6379/0'
    >>> shown_url("redis://cache.internal:6379/0")
    'redis://cache.internal:6379/0'
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not sep or not at:
        return url if sep else ("***@" + hosts if at else url)
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hosts}"


def check_url(decorator: str, url: object) -> str:
    """A Redis URL: ``url=``, else ``$TWAT_CACHE_REDIS_URL``, else the local default. The
    scheme is checked here; the rest when the engine is made (both at decoration time)."""
    if url is None:
        url = os.environ.get("TWAT_CACHE_REDIS_URL") or DEFAULT_REDIS_URL
    if not isinstance(url, str) or not url.startswith(_REDIS_SCHEMES):
        shown = shown_url(url) if isinstance(url, str) else url
        raise _fail(decorator, "url", shown, _REDIS_URLS)
    return url


def check_seconds(decorator: str, param: str, value: object) -> float:
    """A positive, finite number of seconds (or ``timedelta``)."""
    seconds = _seconds(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise _fail(decorator, param, value, "a positive number of seconds or timedelta")
    return seconds


def check_namespace(decorator: str, namespace: object) -> str | None:
    """``None`` (the cache's name) or a non-empty string."""
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise _fail(decorator, "namespace", namespace, "a non-empty str, or None for the cache's name")
    return namespace


def check_redis_options(where: str, options: dict[str, Any]) -> dict[str, Any]:
    """The Redis store's own options (``url``, ``namespace``, ``timeout``, ``ttl``,
    ``compress``, ``secret``), checked and normalized; shared by ``rcache`` and redis
    contexts."""
    return {
        "url": check_url(where, options["url"]),
        "namespace": check_namespace(where, options["namespace"]),
        "timeout": check_seconds(where, "timeout", options["timeout"]),
        "ttl": check_ttl(where, options["ttl"]),
        "compress": check_compress(where, options["compress"]),
        "secret": check_secret(where, options["secret"]),
        "serializer": check_serializer(where, options.get("serializer", "pickle")),
        "unsigned_chosen": options["secret"] is False,
    }


def check_serializer(decorator: str, serializer: object) -> Any:
    """``"pickle"`` (returns ``None``: the native default), ``"json"``, or an object with
    callable ``dumps`` and ``loads``; returns the serializer object."""
    from ._serializers import JSON

    if serializer is None or serializer == "pickle":
        return None
    if serializer == "json":
        return JSON
    has = [callable(getattr(serializer, m, None)) for m in ("dumps", "loads")]
    if not isinstance(serializer, str) and all(has):
        return serializer
    raise _fail(
        decorator,
        "serializer",
        serializer,
        "'pickle', 'json', or an object with dumps(value) -> bytes and loads(bytes)",
    )
