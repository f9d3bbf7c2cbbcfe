"""What ``bcache``, ``fcache`` and ``rcache`` share: option checks, where the entries
go (a folder, or a Redis server), the version, and building the native
``PersistentFunction``."""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from . import _decorate, _options
from ._core import PersistentFunction, fold_stats
from ._fingerprint import code_version
from ._freshness import FRESH_DEFAULTS, check_freshness
from ._freshness import spread_ttl as _spread_ttl
from ._paths import folder_for_name, get_cache_path
from ._serializers import native_serializer
from ._signature import param_specs

# What this process counted reaches the stores' totals of all processes (cache_stats()
# 'all_processes', `twat-cache stats`) at exit too, not only every few seconds.
atexit.register(fold_stats)


# The options that shape keys and freshness, common to the persistent decorators.
_KEY_DEFAULTS: dict[str, Any] = {**_options.KEY_DEFAULTS, **FRESH_DEFAULTS}

# The options of the persistent decorators and their defaults.
BCACHE_DEFAULTS: dict[str, Any] = {
    "folder_name": None,
    "maxsize": None,
    "ttl": None,
    "jitter": None,
    "policy": "lru",
    "compress": False,
    "secret": None,
    "durable": False,
    "serializer": "pickle",
    "local": None,
    **_KEY_DEFAULTS,
}
FCACHE_DEFAULTS: dict[str, Any] = {**BCACHE_DEFAULTS, "mmap": False}
RCACHE_DEFAULTS: dict[str, Any] = {
    "url": None,
    "namespace": None,
    "timeout": 0.25,
    "ttl": None,
    "jitter": None,
    "compress": False,
    "secret": None,
    "serializer": "pickle",
    "lock": True,
    "lock_wait": 10.0,
    "local": None,
    **_KEY_DEFAULTS,
}
_DEFAULTS = {"bcache": BCACHE_DEFAULTS, "fcache": FCACHE_DEFAULTS, "rcache": RCACHE_DEFAULTS}
_ENGINES = {"bcache": "disk", "fcache": "file", "rcache": "redis"}

_UNSIGNED_WARNED = threading.Event()


def warn_unsigned(where: str, shown_url: str) -> None:
    """Once per process: entries in a shared Redis without a secret are unsigned pickle,
    which lets anyone who can write to that Redis run code in every client."""
    if _UNSIGNED_WARNED.is_set():
        return
    _UNSIGNED_WARNED.set()
    logging.getLogger("twat_cache").warning(
        "twat_cache: %s on %s without a secret: its entries are unsigned pickle, so anyone "
        "who can write to that server can run code in this process. Set secret= (or "
        "$TWAT_CACHE_SECRET) to sign them, or secret=False to state that the server is trusted.",
        where,
        shown_url,
    )


def _place(kind: str, o: dict[str, Any]) -> tuple[dict[str, Any], Callable[[str], dict[str, Any]]]:
    """The store's own options, checked, and what places a cache of a given name: a
    folder (``bcache``, ``fcache``) or a Redis server and namespace (``rcache``)."""
    if kind != "rcache":
        store = _options.check_store_options(kind, o)
        folder = store["folder_name"]

        def in_folder(cache_name: str) -> dict[str, Any]:
            where = folder if folder is not None else folder_for_name(cache_name)
            return {"folder": get_cache_path(where), "maxsize": store["maxsize"], "policy": store["policy"]}

        return store, in_folder
    store = {
        **_options.check_redis_options(kind, o),
        "mmap": False,
        "durable": False,
        "lock": _options.check_flag(kind, "lock", o["lock"]),
        "lock_wait": _options.check_seconds(kind, "lock_wait", o["lock_wait"]),
    }

    def on_server(cache_name: str) -> dict[str, Any]:
        if store["secret"] is None and not store["unsigned_chosen"]:
            warn_unsigned(f"rcache {cache_name!r}", _options.shown_url(store["url"]))
        return {
            "url": store["url"],
            "namespace": store["namespace"],
            "timeout": store["timeout"],
            "lock_wait": store["lock_wait"] if store["lock"] else None,
            "maxsize": None,
            "policy": "lru",
        }

    return store, on_server


def persistent_decorator(kind: str, func: Any, options: dict[str, Any]) -> Any:
    """Checks every option now (decoration time), then caches ``func`` (or returns the
    decorator when used with arguments): ``bcache``, ``fcache`` or ``rcache``."""
    o = {**_DEFAULTS[kind], **options}
    fresh, ttl = check_freshness(kind, o)
    store, place = _place(kind, {**o, "ttl": ttl})
    jitter = _options.check_jitter(kind, o["jitter"], _spread_ttl(ttl, fresh))
    key = _options.check_key(kind, o["key"])
    ignored = _options.check_ignore(kind, o["ignore"])
    typed = _options.check_flag(kind, "typed", o["typed"])
    secure = _options.check_flag(kind, "secure", o["secure"])
    version = _options.check_version(kind, o["version"])
    name = _options.check_name(kind, o["name"])
    local = _options.check_local(kind, o["local"])

    def make(fn: Callable[..., Any]) -> Any:
        _decorate.refuse_generators(kind, fn)
        cache_name = name or _decorate.default_name(fn)
        return PersistentFunction(
            fn,
            param_specs(fn, ignored, kind),
            kind=kind,
            **place(cache_name),
            name=cache_name,
            version=str(version) if version is not None else code_version(fn),
            ttl=store["ttl"],
            jitter=jitter,
            compress=store["compress"],
            mmap=store["mmap"],
            secret=store["secret"],
            typed=typed,
            key=key,
            secure=secure,
            disabled=_decorate.disabled_by_env(),
            durable=store["durable"],
            is_async=_decorate.is_async(fn),
            serializer=native_serializer(store["serializer"]),
            **fresh,
            local=local,
        )

    def decorate(fn: Any) -> Any:
        return _decorate.apply(fn, make, name, _ENGINES[kind])

    if func is None:
        return decorate
    return decorate(func)
