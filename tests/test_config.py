"""``CacheConfig``, ``create_cache_config`` and ``config=`` on every decorator
(python/twat_cache/config.py)."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from twat_cache import (
    CacheConfig,
    ConfigurationError,
    acache,
    bcache,
    create_cache_config,
    fcache,
    get_cache_path,
    mcache,
    ucache,
)


def test_a_config_is_immutable_and_round_trips_through_a_dict():
    config = CacheConfig(maxsize=64, ttl=datetime.timedelta(minutes=1), policy="LFU", folder_name="data")
    assert config.to_dict() == {"maxsize": 64, "ttl": 60.0, "policy": "lfu", "folder_name": "data"}
    assert CacheConfig.from_dict(config.to_dict()) == config
    assert hash(CacheConfig.from_dict(config.to_dict())) == hash(config)
    assert config.compress is None  # not given: the decorator's default applies
    with pytest.raises(AttributeError, match="immutable"):
        config.maxsize = 3  # type: ignore[misc]
    changed = config.replace(maxsize=8)
    assert changed.maxsize == 8 and config.maxsize == 64
    assert create_cache_config(maxsize=64, ttl=60, policy="lfu", folder_name="data") == config
    assert repr(CacheConfig(secret="s3cret", ttl=5)) == "CacheConfig(ttl=5.0, secret=<hidden>)"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"maxsize": -1}, "maxsize"),
        ({"ttl": "soon"}, "ttl"),
        ({"policy": "mru"}, "policy"),
        ({"compress": "gzip"}, "compress"),
        ({"mmap": "yes"}, "mmap"),
        ({"typed": 1}, "typed"),
        ({"key": 42}, "key"),
        ({"preferred_engine": "memcached"}, "preferred_engine"),
        ({"folder_name": 3}, "folder_name"),
    ],
)
def test_bad_values_fail_when_the_config_is_made(options, param):
    with pytest.raises(ConfigurationError, match=f"CacheConfig: invalid {param}="):
        CacheConfig(**options)


def test_unknown_options_and_wrong_config_types_fail():
    with pytest.raises(ConfigurationError, match=r"unknown option.*'max_size'.*maxsize"):
        CacheConfig.from_dict({"max_size": 3})
    with pytest.raises(ConfigurationError, match="config="):
        mcache(config={"maxsize": 3})  # type: ignore[call-overload]


def test_every_decorator_takes_config_and_direct_options_win(cache_dir, calls):
    config = create_cache_config(maxsize=4096, ttl=30, compress=True, folder_name="shared_config")

    @mcache(config=config, maxsize=2)
    def m(x):
        calls("m", x)
        return x

    @acache(config=config)
    async def a(x):
        calls("a", x)
        return x

    @bcache(config=config)
    def b(x):
        calls("b", x)
        return x

    @fcache(config=config, compress=False)
    def f(x):
        calls("f", x)
        return x

    @ucache(config=config)
    def u(x):
        calls("u", x)
        return x

    for _ in range(2):
        assert (m(1), asyncio.run(a(1)), b(1), f(1), u(1)) == (1, 1, 1, 1, 1)
    assert calls.count == 5  # each ran once
    assert m.cache_parameters()["maxsize"] == 2 and m.cache_parameters()["ttl"] == 30.0
    assert a.cache_parameters()["maxsize"] == 4096
    assert b.cache_parameters()["maxsize"] == 4096 and b.cache_parameters()["ttl"] == 30.0
    assert get_cache_path(b.cache_parameters()["folder"]) == get_cache_path("shared_config")
    assert u.cache_engine == "file"  # compress=True from the config


def test_unknown_keywords_name_what_is_accepted():
    with pytest.raises(
        TypeError, match=r"bcache\(\) got an unexpected keyword argument 'folder'; accepted: folder_name"
    ):
        bcache(folder="x")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="mmap"):
        bcache(mmap=True)  # type: ignore[call-overload]


def test_get_cache_path_names_where_a_folder_lives(cache_dir):
    assert get_cache_path("user_data_cache") == cache_dir / "user_data_cache"

    @bcache(folder_name="user_data_cache")
    def load(x):
        return x

    load(1)
    assert (get_cache_path("user_data_cache") / "index.sqlite").exists()
