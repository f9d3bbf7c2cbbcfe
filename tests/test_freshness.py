"""Freshness in every engine: ``stale_ttl`` serves the stale value while exactly one
refresh runs (threads, tasks and processes), ``stale_if_error`` answers a computation
that raises, ``ttl=`` may be a callable of the result and ``cache_if`` decides what is
stored. Every test counts the real executions of the cached function."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Calls, _binaries, _binary_id, until
from twat_cache import ConfigurationError, acache, bcache, fcache, mcache, rcache, ucache

# Every Redis test runs on each server binary found (Valkey always; Redis in CI).
_REDIS = [pytest.param(("rcache", b), id=f"rcache-{_binary_id(b)}") for b in _binaries()]
SYNC_ENGINES = ["mcache", "ucache", "bcache", "fcache", *_REDIS]
ASYNC_ENGINES = ["acache", "bcache", *_REDIS]


@pytest.fixture
def cached(request: pytest.FixtureRequest, tmp_path: Any, server_of: Any) -> Callable[..., Any]:
    """The decorator of the engine under test, with its place set (a fresh folder, or a
    namespace of its own on a real Redis)."""
    engine = request.param
    if isinstance(engine, tuple):
        url = server_of(engine[1]).url
        namespace = f"fresh-{uuid.uuid4().hex}"
        return lambda **o: rcache(url=url, namespace=namespace, secret=False, **o)
    folder = str(tmp_path / "cache")
    return {
        "mcache": mcache,
        "acache": acache,
        "ucache": ucache,
        "bcache": lambda **o: bcache(folder_name=folder, **o),
        "fcache": lambda **o: fcache(folder_name=folder, **o),
    }[engine]


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_a_stale_value_is_served_to_16_threads_while_one_refresh_runs(cached: Any, calls: Calls) -> None:
    gate = threading.Event()
    version = [1]

    @cached(ttl=1.0, stale_ttl=60)
    def rates(x: int) -> tuple[int, int]:
        calls(x)
        if calls.count > 1:
            assert gate.wait(60), "the test never opened the gate"
        return (x, version[0])

    assert rates(1) == (1, 1)
    version[0] = 2
    time.sleep(1.2)  # past the TTL: the entry is stale
    results: list[tuple[int, int]] = []
    threads = [threading.Thread(target=lambda: results.append(rates(1))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Every caller got the stale value at once, though the refresh is still running.
    assert results == [(1, 1)] * 16
    until(lambda: calls.count == 2, "the refresh to start")
    gate.set()
    until(lambda: rates(1) == (1, 2), "the refreshed value")
    assert calls.count == 2, "exactly one refresh"
    assert rates.cache_stats()["stale_hits"] >= 16


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_a_failed_refresh_keeps_the_stale_value(cached: Any, calls: Calls, caplog: pytest.LogCaptureFixture) -> None:
    failing = [False]

    @cached(ttl=0.5, stale_ttl=60)
    def quote(x: int) -> str:
        calls(x)
        if failing[0]:
            raise ConnectionError("backend down")
        return f"quote {x}"

    assert quote(1) == "quote 1"
    failing[0] = True
    time.sleep(0.7)
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert quote(1) == "quote 1"
        until(lambda: "the stale value stays" in caplog.text, "the refresh's warning")
    assert calls.count == 2
    # Still stale, still served; the next stale hit tries again.
    assert quote(1) == "quote 1"
    until(lambda: calls.count == 3, "a second refresh")


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_stale_if_error_answers_a_computation_that_raises(
    cached: Any, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    failing = [False]

    @cached(ttl=0.3, stale_if_error=0.8)
    def price(x: int) -> dict[str, int]:
        calls(x)
        if failing[0]:
            raise TimeoutError("upstream timed out")
        return {"price": x * 10}

    assert price(2) == {"price": 20}
    failing[0] = True
    time.sleep(0.5)  # stale, within stale_if_error
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert price(2) == {"price": 20}
    assert "serving the stale one" in caplog.text
    assert calls.count == 2, "the function was called, and raised"
    time.sleep(0.8)  # past stale_if_error: gone
    with pytest.raises(TimeoutError):
        price(2)
    assert calls.count == 3
    # A key never computed has nothing to fall back on.
    with pytest.raises(TimeoutError):
        price(3)


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_stale_if_error_true_keeps_the_value_as_long_as_it_is_stored(cached: Any, calls: Calls) -> None:
    failing = [False]

    @cached(ttl=0.2, stale_if_error=True)
    def config(x: int) -> str:
        calls(x)
        if failing[0]:
            raise OSError("config service unreachable")
        return "v1"

    assert config(0) == "v1"
    failing[0] = True
    time.sleep(0.5)
    assert [config(0) for _ in range(3)] == ["v1"] * 3
    assert calls.count == 4  # each call tried, and fell back
    # Interrupts are not errors to hide.
    failing[0] = False

    @cached(ttl=0.2, stale_if_error=True)
    def interrupted(x: int) -> str:
        calls(x)
        if calls.count > 5:
            raise KeyboardInterrupt
        return "ok"

    assert interrupted(1) == "ok"
    time.sleep(0.4)
    with pytest.raises(KeyboardInterrupt):
        interrupted(1)


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_ttl_may_be_a_callable_of_the_result_and_cache_if_decides_what_is_stored(cached: Any, calls: Calls) -> None:
    results = {0: None, 1: [], 2: ["ann", "bob"]}

    @cached(ttl=lambda users: 0.3 if not users else None, cache_if=lambda r: r is not None)
    def users(team: int) -> list[str] | None:
        calls(team)
        return results[team]

    for team in (0, 0, 1, 1, 2, 2):
        assert users(team) == results[team]
    assert calls.per_args() == {(0,): 2, (1,): 1, (2,): 1}
    time.sleep(0.5)  # the empty list's 0.3 s are over; the full one never expires
    assert users(1) == [] and users(2) == ["ann", "bob"]
    assert calls.per_args() == {(0,): 2, (1,): 2, (2,): 1}
    # cache_set stores what it is given, cache_if or not.
    users.cache_set(None, 0)
    assert users(0) is None
    assert calls.per_args()[(0,)] == 2
    params = users.cache_parameters()
    assert callable(params["ttl"]) and callable(params["cache_if"])


@pytest.mark.parametrize("cached", SYNC_ENGINES, indirect=True)
def test_a_failing_callable_option_leaves_the_result_uncached_with_one_warning(
    cached: Any, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    @cached(ttl=lambda r: "soon")
    def f(x: int) -> int:
        calls(x)
        return x

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert [f(1), f(1), f(1)] == [1, 1, 1]
    assert calls.count == 3
    warnings = [r for r in caplog.records if "ttl= callable failed" in r.getMessage()]
    assert len(warnings) == 1

    def judge(r: int) -> bool:
        raise RuntimeError("judge broke")

    @cached(cache_if=judge)
    def g(x: int) -> int:
        calls(x)
        return x

    assert [g(5), g(5)] == [5, 5]
    assert calls.count == 5


@pytest.mark.parametrize("cached", ASYNC_ENGINES, indirect=True)
def test_async_a_stale_value_is_served_to_16_tasks_while_one_refresh_runs(cached: Any, calls: Calls) -> None:
    version = [1]

    async def main() -> None:
        gate = asyncio.Event()

        @cached(ttl=1.0, stale_ttl=60)
        async def rates(x: int) -> tuple[int, int]:
            calls(x)
            if calls.count > 1:
                await asyncio.wait_for(gate.wait(), 60)
            return (x, version[0])

        assert await rates(1) == (1, 1)
        version[0] = 2
        await asyncio.sleep(1.2)
        got = await asyncio.wait_for(asyncio.gather(*(rates(1) for _ in range(16))), 30)
        assert got == [(1, 1)] * 16
        deadline = time.monotonic() + 20
        while calls.count < 2:
            assert time.monotonic() < deadline, "the refresh never started"
            await asyncio.sleep(0.01)
        gate.set()
        while await rates(1) != (1, 2):
            assert time.monotonic() < deadline, "the refreshed value never came"
            await asyncio.sleep(0.01)
        assert calls.count == 2, "exactly one refresh"

    asyncio.run(main())


@pytest.mark.parametrize("cached", ASYNC_ENGINES, indirect=True)
def test_async_stale_if_error_and_cache_if(cached: Any, calls: Calls) -> None:
    failing = [False]

    @cached(ttl=0.3, stale_if_error=True, cache_if=lambda r: r != "skip")
    async def fetch(x: str) -> str:
        calls(x)
        if failing[0]:
            raise ConnectionError("down")
        return x

    async def main() -> None:
        assert await fetch("a") == "a"
        assert [await fetch("skip"), await fetch("skip")] == ["skip", "skip"]
        failing[0] = True
        await asyncio.sleep(0.5)
        assert await fetch("a") == "a"
        with pytest.raises(ConnectionError):
            await fetch("b")

    asyncio.run(main())
    assert calls.per_args() == {("a",): 2, ("skip",): 2, ("b",): 1}


_PROCESS_CODE = """
import os, sys, time
from twat_cache import {decorator}
@{decorator}({place}, name="stale-procs", version=1, ttl=2.0, stale_ttl=60)
def f(x):
    with open({log!r}, "a") as fh:
        fh.write(f"{{os.getpid()}}\\n")
    time.sleep(1.5)  # long enough for the other process to find the refresh under way
    return "new"
print("GOT", f(1))
"""


@pytest.mark.parametrize("engine", ["bcache", *_REDIS])
def test_two_processes_refresh_a_stale_entry_once(engine: Any, tmp_path: Any, server_of: Any) -> None:
    common: dict[str, Any] = {"name": "stale-procs", "version": 1, "ttl": 2.0, "stale_ttl": 60}
    decorator = "bcache" if engine == "bcache" else "rcache"
    if decorator == "rcache":
        url = server_of(engine[1]).url
        namespace = f"procs-{uuid.uuid4().hex}"
        place = f"url={url!r}, namespace={namespace!r}, secret=False"
        made = rcache(url=url, namespace=namespace, secret=False, **common)
    else:
        folder = str(tmp_path / "shared")
        place = f"folder_name={folder!r}"
        made = bcache(folder_name=folder, **common)
    log = tmp_path / "executions.log"

    @made
    def f(x: int) -> str:
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return "old"

    assert f(1) == "old"
    time.sleep(2.2)  # stale now
    code = _PROCESS_CODE.format(decorator=decorator, place=place, log=str(log))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # Both served the stale value at once ...
    assert [o.strip() for o in outs] == ["GOT old", "GOT old"]
    # ... and one of them refreshed it (the first line is this process's computation).
    lines = log.read_text().split()
    assert len(lines) == 2, lines
    assert lines[0] == str(os.getpid()) and lines[1] in {str(p.pid) for p in procs}
    assert f(1) == "new"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"stale_ttl": 30}, "stale_ttl"),
        ({"stale_if_error": True}, "stale_if_error"),
        ({"ttl": 5, "stale_ttl": -1}, "stale_ttl"),
        ({"ttl": 5, "stale_if_error": "always"}, "stale_if_error"),
        ({"ttl": 5, "cache_if": 3}, "cache_if"),
        ({"ttl": "soon"}, "ttl"),
    ],
)
@pytest.mark.parametrize("decorator", [mcache, acache, bcache, fcache, ucache])
def test_bad_freshness_options_fail_at_decoration_naming_the_parameter(
    decorator: Any, options: dict[str, Any], param: str, cache_dir: Any
) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match=rf"invalid {param}="):
        decorator(**options)(f)


def test_freshness_options_in_a_config(cache_dir: Any, calls: Calls) -> None:
    from twat_cache import CacheConfig

    failing = [False]
    config = CacheConfig(ttl=0.3, stale_if_error=True, cache_if=lambda r: r > 0)

    @mcache(config=config)
    def f(x: int) -> int:
        calls(x)
        if failing[0]:
            raise ValueError("no")
        return x

    assert [f(-1), f(-1)] == [-1, -1]  # cache_if: not stored
    assert [f(1), f(1)] == [1, 1]
    assert calls.count == 3
    failing[0] = True
    time.sleep(0.5)
    assert f(1) == 1  # stale_if_error
    assert calls.count == 4
    with pytest.raises(ConfigurationError, match="invalid stale_ttl="):
        CacheConfig(stale_ttl="x")
