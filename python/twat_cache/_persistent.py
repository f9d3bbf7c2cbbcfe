"""What ``bcache`` and ``fcache`` share: option checks, the folder, the version, and
building the native ``PersistentFunction``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _decorate, _options
from ._core import PersistentFunction
from ._fingerprint import code_version
from ._paths import folder_for_name, get_cache_path
from ._serializers import native_serializer
from ._signature import param_specs

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
    "key": None,
    "ignore": (),
    "typed": False,
    "name": None,
    "version": None,
    "secure": True,
}
FCACHE_DEFAULTS: dict[str, Any] = {**BCACHE_DEFAULTS, "mmap": False}


def persistent_decorator(kind: str, func: Any, options: dict[str, Any]) -> Any:
    """Checks every option now (decoration time), then caches ``func`` (or returns the
    decorator when used with arguments)."""
    o = {**FCACHE_DEFAULTS, **options}
    store = _options.check_store_options(kind, o)
    jitter = _options.check_jitter(kind, o["jitter"], store["ttl"])
    key = _options.check_key(kind, o["key"])
    ignored = _options.check_ignore(kind, o["ignore"])
    typed = _options.check_flag(kind, "typed", o["typed"])
    secure = _options.check_flag(kind, "secure", o["secure"])
    version = _options.check_version(kind, o["version"])
    name = _options.check_name(kind, o["name"])
    folder = store["folder_name"]

    def make(fn: Callable[..., Any]) -> Any:
        _decorate.refuse_generators(kind, fn)
        cache_name = name or _decorate.default_name(fn)
        path = get_cache_path(folder if folder is not None else folder_for_name(cache_name))
        return PersistentFunction(
            fn,
            param_specs(fn, ignored, kind),
            kind=kind,
            folder=path,
            name=cache_name,
            version=str(version) if version is not None else code_version(fn),
            maxsize=store["maxsize"],
            ttl=store["ttl"],
            jitter=jitter,
            policy=store["policy"],
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
        )

    def decorate(fn: Any) -> Any:
        return _decorate.apply(fn, make, name, "file" if kind == "fcache" else "disk")

    if func is None:
        return decorate
    return decorate(func)
