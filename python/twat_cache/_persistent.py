"""What ``bcache`` and ``fcache`` share: option checks, the folder, the version, and
building the native ``PersistentFunction``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import _decorate, _options
from ._core import PersistentFunction
from ._fingerprint import code_version
from ._paths import folder_for_name, get_cache_path
from ._signature import param_specs
from .exceptions import ConfigurationError


def persistent_decorator(
    kind: str,
    func: Any,
    *,
    folder_name: object,
    maxsize: object,
    ttl: object,
    policy: object,
    compress: object,
    mmap: object,
    durable: object,
    secret: object,
    key: Callable[..., Any] | None,
    ignore: Iterable[str],
    typed: bool,
    name: str | None,
    version: str | int | None,
    secure: bool,
) -> Any:
    """Checks every option now (decoration time), then caches ``func`` (or returns the
    decorator when used with arguments)."""
    folder = _options.check_folder(kind, folder_name)
    max_bytes = _options.check_bytes(kind, maxsize)
    ttl_seconds = _options.check_ttl(kind, ttl)
    policy_name = _options.check_disk_policy(kind, policy)
    codec = _options.check_compress(kind, compress)
    use_mmap = _options.check_flag(kind, "mmap", mmap)
    sync_first = _options.check_flag(kind, "durable", durable)
    if use_mmap and codec != "none":
        raise ConfigurationError(
            f"{kind}: invalid mmap=True with compress={compress!r}: expected compress=False, "
            "since only a raw entry can be memory-mapped"
        )
    signing_key = _options.check_secret(kind, secret)
    key = _options.check_key(kind, key)
    ignored = _options.check_ignore(kind, ignore)
    typed = _options.check_flag(kind, "typed", typed)
    secure = _options.check_flag(kind, "secure", secure)
    version = _options.check_version(kind, version)
    name = _options.check_name(kind, name)
    if folder is not None:
        get_cache_path(folder)  # a bad folder_name fails now, not at the first call

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
            maxsize=max_bytes,
            ttl=ttl_seconds,
            policy=policy_name,
            compress=codec,
            mmap=use_mmap,
            secret=signing_key,
            typed=typed,
            key=key,
            secure=secure,
            disabled=_decorate.disabled_by_env(),
            durable=sync_first,
            is_async=_decorate.is_async(fn),
        )

    def decorate(fn: Any) -> Any:
        return _decorate.apply(fn, make, name)

    if func is None:
        return decorate
    return decorate(func)
