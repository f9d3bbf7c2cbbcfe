"""``ucache``: the engine rule, ``fn.cache_engine``, and the logged fallback
(python/twat_cache/universal.py)."""

from __future__ import annotations

import asyncio
import logging
import socket

import numpy as np
import pytest
from conftest import run_python
from twat_cache import ConfigurationError, create_cache_config, ucache


def test_a_plain_function_is_cached_in_memory(calls):
    @ucache(maxsize=2, policy="tinylfu")
    def double(x):
        calls(x)
        return 2 * x

    assert double(4) == double(4) == 8
    assert calls.count == 1
    assert double.cache_engine == "memory"
    assert double.cache_parameters()["policy"] == "tinylfu"
    assert double.cache_parameters()["maxsize"] == 2


def test_bare_use_picks_memory(calls):
    @ucache
    def ident(x):
        calls(x)
        return x

    assert ident(1) == ident(1) == 1
    assert calls.count == 1 and ident.cache_engine == "memory"


def test_folder_name_selects_the_disk_engine_which_persists(cache_dir):
    code = """
from twat_cache import ucache
ran = []
@ucache(folder_name="reports", ttl=60)
def report(year):
    ran.append(year)
    return {"year": year, "rows": list(range(5))}
print(report(2024)["rows"], report.cache_engine, len(ran))
"""
    env = {"TWAT_CACHE_DIR": str(cache_dir)}
    assert run_python(code, env=env).strip() == "[0, 1, 2, 3, 4] disk 1"
    assert run_python(code, env=env).strip() == "[0, 1, 2, 3, 4] disk 0"  # another process: a hit
    assert (cache_dir / "reports" / "index.sqlite").exists()


@pytest.mark.parametrize("options", [{"compress": True}, {"compress": "lz4"}, {"mmap": True}])
def test_compress_or_mmap_selects_the_file_engine(cache_dir, calls, options):
    @ucache(folder_name="arrays", **options)
    def ramp(n):
        calls(n)
        return np.arange(n, dtype=np.float64)

    first, again = ramp(10_000), ramp(10_000)
    assert np.array_equal(first, again) and calls.count == 1
    assert ramp.cache_engine == "file"
    assert ramp.cache_parameters()["engine"] == "file"
    assert not again.flags.writeable if options.get("mmap") else again.flags.writeable


def test_an_async_function_gets_the_async_memory_engine_even_with_a_folder(cache_dir, calls):
    @ucache(folder_name="ignored_for_async")
    async def fetch(x):
        calls(x)
        await asyncio.sleep(0)
        return x

    async def main():
        return await asyncio.gather(*(fetch(1) for _ in range(4)))

    assert asyncio.run(main()) == [1, 1, 1, 1]
    assert calls.count == 1
    assert fetch.cache_engine == "async"
    assert not (cache_dir / "ignored_for_async").exists()


@pytest.mark.parametrize(
    ("preferred", "engine"),
    [("diskcache", "disk"), ("klepto", "disk"), ("joblib", "file"), ("cachetools", "memory"), ("disk", "disk")],
)
def test_preferred_engine_wins_and_takes_aliases(cache_dir, calls, preferred, engine):
    @ucache(preferred_engine=preferred, compress=False)
    def square(x):
        calls(x)
        return x * x

    assert square(3) == square(3) == 9
    assert calls.count == 1
    assert square.cache_engine == engine


def test_preferred_disk_engine_for_an_async_function(cache_dir, calls):
    @ucache(preferred_engine="disk", folder_name="async_on_disk")
    async def fetch(x):
        calls(x)
        return [x]

    assert asyncio.run(fetch(2)) == asyncio.run(fetch(2)) == [2]
    assert calls.count == 1
    assert fetch.cache_engine == "disk"
    assert (cache_dir / "async_on_disk" / "index.sqlite").exists()


def test_redis_is_used_even_when_the_server_is_down(calls, free_url):
    # Unlike a folder that cannot be made, an unreachable server is an outage, not a
    # configuration: the engine stays, and calls run uncached until the server is back.
    @ucache(preferred_engine="redis", url=free_url, secret=False)
    def ident(x):
        calls(x)
        return x

    assert ident.cache_engine == "redis"
    assert ident(1) == ident(1) == 1 and calls.count == 2
    assert ident.cache_stats()["store_errors"] >= 2


def test_a_folder_that_cannot_be_created_falls_back_to_memory(tmp_path, calls, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="twat_cache"):

        @ucache(folder_name=str(blocker / "cache"), compress=True)
        def ident(x):
            calls(x)
            return x

    assert ident.cache_engine == "memory"
    assert ident(5) == ident(5) == 5 and calls.count == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("'file' cannot be used" in m for m in messages)
    assert any("'disk' cannot be used" in m for m in messages)


def test_bad_options_are_errors_not_fallbacks():
    with pytest.raises(ConfigurationError, match=r"preferred_engine='sqlite3'.*'memory', 'async', 'disk'"):
        ucache(preferred_engine="sqlite3")
    with pytest.raises(ConfigurationError, match="ttl"):
        ucache(ttl="soon")(lambda x: x)
    with pytest.raises(ConfigurationError, match="policy"):
        ucache(folder_name="x", policy="tinylfu")(lambda x: x)  # the disk engine has no tinylfu
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_size'"):
        ucache(max_size=3)


def test_config_and_methods(cache_dir, calls):
    config = create_cache_config(folder_name="from_config", ttl=30)

    class Repo:
        @ucache(config=config)
        @classmethod
        def count(cls, table):
            calls(table)
            return len(table)

    assert Repo.count("users") == Repo.count("users") == 5
    assert calls.count == 1
    assert Repo.__dict__["count"].cache_engine == "disk"
    assert (cache_dir / "from_config").is_dir()


def test_every_decorator_names_its_engine(cache_dir):
    from twat_cache import acache, bcache, fcache, mcache

    def f(x):
        return x

    async def g(x):
        return x

    engines = [mcache(f), mcache(g), acache(g), acache(f), bcache(f), bcache(g), fcache(f)]
    assert [c.cache_engine for c in engines] == ["memory", "memory", "async", "memory", "disk", "disk", "file"]


@pytest.fixture
def free_url():
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"
