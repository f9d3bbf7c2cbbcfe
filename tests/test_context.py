"""``CacheContext`` and ``engine_context``: engines used directly as key-value stores
(python/twat_cache/context.py, crates/twat-cache-python/src/handle.rs)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
import pytest
from conftest import run_python
from twat_cache import (
    CacheContext,
    ConfigurationError,
    TwatCacheError,
    create_cache_config,
    engine_context,
    get_stats,
)

ENGINES = ["memory", "disk", "file"]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_handle_behaves_like_a_mapping(cache_dir, engine):
    with CacheContext(engine_name=engine, folder_name=f"ctx_{engine}") as cache:
        assert cache.engine == engine
        assert cache.get("k") is None and cache.get("k", default=0) == 0
        assert "k" not in cache and len(cache) == 0
        cache.set("k", {"v": 1})
        cache["other"] = [1, 2]
        assert cache.get("k") == {"v": 1} and cache["other"] == [1, 2]
        assert "k" in cache and len(cache) == 2
        del cache["other"]
        with pytest.raises(KeyError):
            cache["other"]
        with pytest.raises(KeyError):
            del cache["other"]
        assert cache.delete("k") is True and cache.delete("k") is False
        cache.set("a", 1)
        cache.set("b", 2)
        stats = cache.stats()
        assert (stats["hits"], stats["misses"], stats["entries"]) == (2, 3, 2)
        cache.clear()  # entries and counters, like cache_clear()
        assert len(cache) == 0 and cache.stats()["hits"] == 0
        assert cache.get("a") is None


@pytest.mark.parametrize("engine", ENGINES)
def test_keys_are_any_value_the_key_encoder_accepts(cache_dir, engine):
    with engine_context(engine, folder_name=f"keys_{engine}") as cache:
        cache.set({"b": 2, "a": 1}, "dict")
        cache.set([1, (2, 3)], "list")
        cache.set(np.arange(4), "array")
        cache.set(1, "one")
        assert cache.get({"a": 1, "b": 2}) == "dict"  # insertion order does not matter
        assert cache.get([1, (2, 3)]) == "list"
        assert cache.get(np.arange(4)) == "array" and cache.get(np.arange(5)) is None
        assert cache.get(1.0) == "one"  # 1 == 1.0 (typed=False)
    with engine_context(engine, folder_name=f"typed_{engine}", typed=True) as cache:
        cache.set(1, "int")
        assert cache.get(1.0) is None


@pytest.mark.parametrize("engine", ENGINES)
def test_a_ttl_per_entry_overrides_the_context_ttl(cache_dir, engine):
    with CacheContext(engine_name=engine, folder_name=f"ttl_{engine}", ttl=60) as cache:
        cache.set("short", 1, ttl=0.05)
        cache.set("long", 2)
        time.sleep(0.1)
        assert cache.get("short") is None and "short" not in cache
        assert cache.get("long") == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_closed_on_exit_also_when_the_block_raises(cache_dir, engine):
    context = CacheContext(engine_name=engine, folder_name=f"closing_{engine}")
    with pytest.raises(RuntimeError, match="boom"), context as cache:
        cache.set("k", 1)
        raise RuntimeError("boom")
    assert cache.closed
    with pytest.raises(TwatCacheError, match="closed"):
        cache.get("k")
    cache.close()  # twice is fine


def test_disk_entries_outlive_the_context_and_reach_another_process(cache_dir):
    with CacheContext(engine_name="diskcache", folder_name="session_cache", ttl=600) as cache:
        cache.set("token", {"user": "ada"})
    with CacheContext(engine_name="disk", folder_name="session_cache") as cache:
        assert cache["token"] == {"user": "ada"}
    out = run_python(
        """
from twat_cache import CacheContext
with CacheContext(engine_name="klepto", folder_name="session_cache") as cache:
    print(cache.get("token"), len(cache))
""",
        env={"TWAT_CACHE_DIR": str(cache_dir)},
    )
    assert out.strip() == "{'user': 'ada'} 1"


def test_a_memory_context_starts_empty_and_drops_its_entries_on_close():
    with CacheContext() as cache:
        cache.set("k", 1)
        assert cache.engine == "memory" and len(cache) == 1
    with CacheContext() as again:
        assert again.get("k") is None


def test_contexts_nest(cache_dir):
    outer_context = CacheContext(engine_name="disk", folder_name="nested")
    with outer_context as outer:
        outer.set("shared", 1)
        with CacheContext(engine_name="disk", folder_name="nested") as inner:
            assert inner.get("shared") == 1  # same folder and name: same entries
            inner.set("from_inner", 2)
            with outer_context as again:  # the same context entered again: a handle of its own
                assert again.get("from_inner") == 2
            assert again.closed and not outer.closed
            with CacheContext(engine_name="memory") as memory:
                memory.set("shared", "memory")
                assert memory.get("shared") == "memory" and inner.get("shared") == 1
        assert inner.closed and not outer.closed
        assert outer.get("from_inner") == 2
    assert outer.closed


def test_names_keep_entries_apart_in_one_folder(cache_dir):
    with CacheContext(folder_name="multi", name="alpha") as a, CacheContext(folder_name="multi", name="beta") as b:
        a.set("k", "alpha")
        b.set("k", "beta")
        assert (a.get("k"), b.get("k")) == ("alpha", "beta")
        a.clear()
        assert a.get("k") is None and b.get("k") == "beta"


def test_async_with_and_async_methods(cache_dir):
    loop_threads: set[int] = set()

    async def main():
        loop_threads.add(threading.get_ident())
        async with CacheContext(engine_name="aiocache", ttl=10) as memory:
            assert memory.engine == "async"
            await memory.aset("a", 1)
            assert await memory.aget("a") == 1
            assert await memory.adelete("a") is True
        async with engine_context("joblib", folder_name="async_ctx") as files:
            await files.aset("arr", np.arange(1000))
            got = await files.aget("arr")
            assert await files.aget("missing", default="none") == "none"
        return memory, files, got

    memory, files, got = asyncio.run(main())
    assert np.array_equal(got, np.arange(1000))
    assert memory.closed and files.closed


def test_engine_names(cache_dir):
    for name, engine in {
        "memory": "memory",
        "functools": "memory",
        "cachetools": "memory",
        "CacheBox": "memory",
        "diskcache": "disk",
        "klepto": "disk",
        "joblib": "file",
        "aiocache": "async",
    }.items():
        with CacheContext(engine_name=name, folder_name="names") as cache:
            assert cache.engine == engine, name
    with pytest.raises(ConfigurationError, match=r"engine_name='memcached'.*'memory', 'async', 'disk', 'file'"):
        CacheContext(engine_name="memcached")
    with pytest.raises(ConfigurationError, match=r"url='http://u:\*\*\*@host'"):
        CacheContext(engine_name="redis", url="http://u:pw@host")
    with pytest.raises(ConfigurationError, match="policy"):
        CacheContext(engine_name="disk", policy="rr")
    with pytest.raises(ConfigurationError, match="mmap=True with compress"):
        CacheContext(engine_name="file", mmap=True, compress=True)  # as fcache refuses it
    with pytest.raises(TypeError, match="unexpected keyword argument 'folder'"):
        CacheContext(engine_name="disk", folder="x")


def test_an_unpicklable_value_is_not_stored_and_counted(cache_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="twat_cache"), engine_context("disk", folder_name="bad") as cache:
        assert cache.set("lock", threading.Lock()) is False
        assert cache.get("lock") is None
        assert cache.stats()["store_errors"] == 1
    assert any("cannot be pickled" in r.getMessage() for r in caplog.records)


def test_config_and_registry(cache_dir):
    config = create_cache_config(folder_name="configured", ttl=30, name="ctx.configured")
    with CacheContext(engine_name="disk", config=config) as cache:
        cache.set("k", 1)
        cache.get("k")
        assert get_stats("ctx.configured")["hits"] == 1
    assert (cache_dir / "configured" / "index.sqlite").exists()


def test_a_closed_context_leaves_the_registry_and_memory_ttl_is_swept():
    from twat_cache import list_caches

    with CacheContext(engine_name="memory", ttl=0.02, name="ctx.swept") as cache:
        assert "ctx.swept" in list_caches()
        assert cache.cache_parameters() == {"engine": "memory", "ttl": 0.02}
        cache.set("a", 1)
        cache.set("b", 2)
        time.sleep(0.05)
        # What the registry's sweeper thread calls every second: it may have run in the
        # sleep above and reclaimed them first, so count what both did together.
        purged_now = cache.purge_expired()
        assert len(cache) == 0
        assert cache.cache_stats()["expirations"] == 2 and purged_now <= 2
    assert "ctx.swept" not in list_caches()
