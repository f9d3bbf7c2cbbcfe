"""The local tier (``local=``) of bcache, fcache and rcache: copies of values in this
process, served only while the shared store holds the same entry. Two real processes
share one folder or one real Redis server; each has a local tier, and every removal
or replacement made by one is seen by the next call of the other."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Calls, _binaries, _binary_id, until
from twat_cache import ConfigurationError, bcache, clear_cache, fcache, mcache, rcache

_REDIS = [pytest.param(("rcache", b), id=f"rcache-{_binary_id(b)}") for b in _binaries()]
ENGINES = ["bcache", "fcache", *_REDIS]


class Place:
    """Where an engine's entries live, as decorator options and as source code for
    another process."""

    def __init__(self, engine: Any, tmp_path: Any, server_of: Any) -> None:
        self.server = None
        if isinstance(engine, tuple):
            self.server = server_of(engine[1])
            self.decorator = "rcache"
            self.options: dict[str, Any] = {
                "url": self.server.url,
                "namespace": f"local-{uuid.uuid4().hex}",
                "secret": False,
            }
        else:
            self.decorator = engine
            self.options = {"folder_name": str(tmp_path / "shared")}

    def cached(self, **more: Any) -> Callable[..., Any]:
        made = {"bcache": bcache, "fcache": fcache, "rcache": rcache}[self.decorator]
        return made(**self.options, **more)

    def source(self, **more: Any) -> str:
        options = {**self.options, **more}
        return f"{self.decorator}(" + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")"


@pytest.fixture
def place(request: pytest.FixtureRequest, tmp_path: Any, server_of: Any) -> Place:
    return Place(request.param, tmp_path, server_of)


def _warm(f: Callable[..., Any], *args: Any) -> None:
    """Calls until a call is answered by the local tier (a Redis listener subscribes
    a moment after decoration; until then no copy is kept)."""
    start = f.cache_stats()["local_hits"]  # type: ignore[attr-defined]
    until(lambda: (f(*args), f.cache_stats()["local_hits"] > start)[1], "a local hit")  # type: ignore[attr-defined]


class Other:
    """Another Python process with the same cached function and a local tier of its
    own, driven line by line: each command is a call, and its answer a JSON line."""

    def __init__(self, place: Place, **options: Any) -> None:
        decorator = place.source(name="shared-local", version=1, local=True, **options)
        code = textwrap.dedent(
            f"""
            import json, os, sys, time
            from twat_cache import bcache, fcache, rcache
            runs = []
            @{decorator}
            def f(x):
                runs.append(x)
                return ["other", x, len(runs)]
            print("ready", flush=True)
            for line in sys.stdin:
                cmd, arg = line.split()
                if cmd == "call":
                    value = f(int(arg))
                elif cmd == "warm":
                    start = f.cache_stats()["local_hits"]
                    deadline = time.monotonic() + 20
                    while f.cache_stats()["local_hits"] == start and time.monotonic() < deadline:
                        value = f(int(arg))
                        time.sleep(0.01)
                    value = f(int(arg))
                elif cmd == "delete":
                    value = f.cache_delete(int(arg))
                else:
                    value = f.cache_stats()["local_hits"]
                print(json.dumps({{"value": value, "runs": len(runs)}}), flush=True)
            """
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def seen(self, place: Place, cmd: str, arg: int, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next call's answer, which must pass ``check``. On a folder that is the very
        next call; on Redis the change reaches the other process as the server's
        invalidation, which may take a moment longer than the writer's reply: calls
        are repeated until it has (a stale answer meanwhile is what Redis allows)."""
        got = self.ask(cmd, arg)
        if place.decorator != "rcache":
            assert check(got), got
            return got
        deadline = time.monotonic() + 5
        while not check(got):
            assert time.monotonic() < deadline, f"the other process kept serving {got}"
            time.sleep(0.005)
            got = self.ask(cmd, arg)
        return got

    def ask(self, cmd: str, arg: int = 0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{cmd} {arg}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the other process died"
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(60) == 0


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_changes_in_one_process_are_seen_by_the_next_call_in_the_other(place: Place, calls: Calls) -> None:
    @place.cached(name="shared-local", version=1, local=True)
    def f(x: int) -> list[Any]:
        calls(x)
        return ["here", x, calls.count]

    other = Other(place)
    try:
        assert f(1) == ["here", 1, 1]
        # The other process reads the entry and keeps a copy.
        got = other.ask("warm", 1)
        assert got["value"] == ["here", 1, 1] and got["runs"] == 0
        hits = other.ask("stats")["value"]
        assert other.ask("call", 1)["value"] == ["here", 1, 1]
        assert other.ask("stats")["value"] == hits + 1, "served from its local tier"

        # cache_set here: the other's copy is stale.
        f.cache_set(["set", 1], 1)
        other.seen(place, "call", 1, lambda got: got["value"] == ["set", 1])

        # cache_delete here: the other computes anew.
        other.ask("warm", 1)
        assert f.cache_delete(1) is True
        got = other.seen(place, "call", 1, lambda got: got["value"][0] == "other")
        assert got["value"] == ["other", 1, 1] and got["runs"] == 1

        # And the other way round: its delete is seen by our local tier (our own
        # writes are seen at once, whatever the store).
        _warm(f, 1)
        assert other.ask("delete", 1)["value"] is True
        if place.decorator == "rcache":
            until(lambda: f(1)[0] == "here" and calls.count == 2, "the other's delete")
        assert f(1) == ["here", 1, 2]

        # clear_cache here: every copy there is stale.
        other.ask("warm", 1)
        clear_cache("shared-local")
        got = other.seen(place, "call", 1, lambda got: got["runs"] == 2)
        assert got["value"][0] == "other"
    finally:
        other.close()


@pytest.mark.parametrize("place", ["bcache", "fcache"], indirect=True)
def test_an_eviction_by_another_process_makes_the_copy_stale(place: Place, calls: Calls) -> None:
    more = {"maxsize": 40_000}

    @place.cached(name="shared-local", version=1, local=True, **more)
    def f(x: int) -> Any:
        calls(x)
        return ["here", x, calls.count, "x" * 5_000]

    other = Other(place, **more)
    try:
        f(1)
        got = other.ask("warm", 1)
        assert got["value"][:3] == ["here", 1, 1]
        # Entries of other keys, written here, push key 1 out of the folder.
        for k in range(2, 20):
            f(k)
        got = other.ask("call", 1)
        assert got["runs"] == 1 and got["value"][0] == "other", "the evicted entry's copy was served"
    finally:
        other.close()


def test_a_redis_eviction_makes_the_copy_stale(calls: Calls) -> None:
    from twat_cache.testing import RedisServer

    binary = _binaries()[0]
    with RedisServer(binary, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru") as server:
        import redis

        @rcache(url=server.url, namespace="evict", secret=False, local=True)
        def f(x: int) -> Any:
            calls(x)
            return [x, calls.count]

        f(1)
        _warm(f, 1)
        client = redis.Redis.from_url(server.url)
        # Another client fills the server until it evicts key 1's entry.
        blob = b"y" * 100_000

        def entries() -> list[bytes]:
            return [k for k in client.keys("twc:evict:*:*") if b":l:" not in k]

        i = 0
        while entries():
            assert i < 5_000, "the server never evicted the entry"
            client.set(f"filler:{i}", blob)
            i += 1
        until(lambda: f(1) != [1, 1], "the evicted entry's copy to go")
        assert calls.count == 2


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_a_copy_read_while_the_entry_is_replaced_is_never_served_after(place: Place, tmp_path: Any) -> None:
    """The entry is replaced by another process while this one is reading it (forced:
    the serializer's loads runs that process and waits for it). The read may return the
    old value; no later call may."""
    state = {"armed": False}
    writer = textwrap.dedent(
        f"""
        from twat_cache import bcache, fcache, rcache
        @{place.source(name="raced", version=1, serializer="json")}
        def f(x):
            return "unused"
        assert f.cache_set("new", 1)
        """
    )

    class Slow:
        name = "json"  # the writer's serializer name: one key for both

        @staticmethod
        def dumps(value: Any) -> bytes:
            return json.dumps(value).encode()

        @staticmethod
        def loads(data: bytes) -> Any:
            if state["armed"]:
                state["armed"] = False
                subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)
            return json.loads(data)

    @place.cached(name="raced", version=1, local=True, serializer=Slow)
    def f(x: int) -> str:
        return "old"

    assert f(1) == "old"
    _warm(f, 2)  # copies are kept now (a Redis listener is subscribed)
    state["armed"] = True
    first = f(1)  # reads "old"; the entry is replaced during the read
    assert first == "old"
    assert state["armed"] is False, "the race was forced"
    until(lambda: f(1) == "new", "the replaced value")
    for _ in range(5):
        assert f(1) == "new"


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_local_copies_expire_with_their_entry(place: Place, calls: Calls) -> None:
    @place.cached(local=16, ttl=0.6)
    def f(x: int) -> int:
        calls(x)
        return calls.count

    assert f(1) == 1
    _warm(f, 1)
    assert f(1) == 1
    time.sleep(0.8)
    assert f(1) == 2, "a copy outlived its entry's TTL"


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_only_plain_arguments_use_the_tier_and_answers_match_the_store(place: Place, calls: Calls) -> None:
    def body(x: Any) -> str:
        calls(x)
        return f"{type(x).__name__}:{x!r}"

    typed = place.cached(local=True, typed=True, name="typed-local")(body)
    for _ in range(3):
        assert typed(1) == "int:1"
        assert typed(1.0) == "float:1.0"
        assert typed(True) == "bool:True"
        assert typed([1, 2]) == "list:[1, 2]"
    assert calls.count == 4
    assert typed.cache_stats()["local_entries"] <= 3, "a list argument has no copy"
    assert typed.cache_parameters()["local"] == 1024
    # Untyped, 1 and 1.0 share an entry in the store; the tier gives the same answers
    # as the store alone does.
    with_tier = place.cached(local=True, name="untyped")(body)
    without = place.cached(name="untyped")(body)
    for x in (1, 1.0, True, 2, 2.0):
        for _ in range(3):
            assert with_tier(x) == without(x)


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_async_calls_use_the_tier(place: Place, calls: Calls) -> None:
    @place.cached(local=True)
    async def f(x: int) -> int:
        calls(x)
        return x * 2

    async def main() -> None:
        assert await f(2) == 4
        deadline = time.monotonic() + 20
        while f.cache_stats()["local_hits"] == 0:
            assert time.monotonic() < deadline
            assert await f(2) == 4
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert calls.count == 1


@pytest.mark.parametrize("bad", [0, -3, "many", 2.5])
def test_bad_local_values_fail_at_decoration(bad: Any, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="invalid local="):
        bcache(folder_name=str(tmp_path), local=bad)(lambda x: x)
    with pytest.raises(TypeError, match="local"):
        mcache(local=True)  # type: ignore[call-overload]


@pytest.mark.parametrize("binary", _binaries(), ids=_binary_id)
def test_a_lost_invalidation_connection_flushes_the_tier(binary: str, calls: Calls) -> None:
    import redis
    from twat_cache.testing import RedisServer

    with RedisServer(binary) as server:

        @rcache(url=server.url, namespace="lost", secret=False, local=True)
        def f(x: int) -> Any:
            calls(x)
            return ["computed", calls.count]

        f(1)
        _warm(f, 1)
        client = redis.Redis.from_url(server.url)

        def listeners() -> list[str]:
            return [c["id"] for c in client.client_list() if c["name"] == "twat-cache-invalidations"]

        (old,) = listeners()
        client.client_kill_filter(_id=old)
        # Written while nobody listens: no invalidation will ever announce it.
        (key,) = [k for k in client.keys("twc:lost:*:*") if b":l:" not in k]
        client.delete(key)
        until(lambda: listeners() not in ([], [old]), "the listener to come back")
        assert f(1) == ["computed", 2], "a copy from before the lost connection was served"


def test_a_cluster_keeps_every_primarys_copies_coherent(redis_cluster: Any, calls: Calls) -> None:
    import redis

    namespace = f"cluster-local-{uuid.uuid4().hex[:8]}"

    @rcache(url=redis_cluster.url, namespace=namespace, secret=False, local=True)
    def f(x: int) -> list[int]:
        calls(x)
        return [x, calls.count]

    keys = range(12)
    first = {x: f(x) for x in keys}
    for x in keys:
        _warm(f, x)
    assert calls.count == 12
    # Another client removes every entry, on every primary.
    removed = 0
    for server in redis_cluster.servers:
        client = redis.Redis.from_url(server.url)
        for k in client.scan_iter(match=f"twc:{namespace}:*"):
            if not k.endswith(b":g") and b":l:" not in k:
                client.delete(k)
                removed += 1
        client.close()
    assert removed == 12
    for x in keys:
        until(lambda x=x: f(x) != first[x], f"key {x}'s copy to go")
    assert calls.count == 24


@pytest.mark.parametrize("place", ENGINES, indirect=True)
def test_a_context_handle_has_a_coherent_local_tier(place: Place) -> None:
    from twat_cache import CacheContext

    engine = {"bcache": "disk", "fcache": "file", "rcache": "redis"}[place.decorator]
    options = dict(place.options)
    with (
        CacheContext(engine_name=engine, name="handles", local=64, **options) as one,
        CacheContext(engine_name=engine, name="handles", **options) as other,
    ):
        one.set("k", [1])
        assert one.get("k") == [1]
        until(lambda: (one.get("k"), one.stats()["local_hits"] > 0)[1], "a local hit")
        other.set("k", [2])  # another handle replaces it
        until(lambda: one.get("k") == [2], "the replaced value")
        assert one.get("k") == [2]
        other.delete("k")
        until(lambda: one.get("k") is None, "the deleted value to go")
    with pytest.raises(ConfigurationError, match="invalid local="):
        CacheContext(engine_name="memory", local=8)
