"""serializer= on the persistent engines: pickle (the default), json, or an object of
the user's, on real folders and a real Redis."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import Calls
from twat_cache import CacheConfig, CacheContext, ConfigurationError, bcache, fcache, rcache


def test_json_round_trips_plain_values(cache_dir: Any, calls: Calls) -> None:
    @bcache(serializer="json")
    def f(x: int) -> Any:
        calls(x)
        return {"x": [x, 1.5, None, True, "é"], "nested": {"a": []}}

    assert f(1) == f(1) == {"x": [1, 1.5, None, True, "é"], "nested": {"a": []}}
    assert calls.count == 1


@pytest.mark.parametrize(
    "value",
    [(1, 2), {1: "int key"}, {"a": (1,)}, {1, 2}, b"bytes", 1j],
    ids=["tuple", "int-key", "nested-tuple", "set", "bytes", "complex"],
)
def test_json_refuses_what_it_cannot_carry_unchanged(
    cache_dir: Any, calls: Calls, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    @bcache(serializer="json")
    def f() -> Any:
        calls()
        return value

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert f() == value
        assert f() == value
    assert calls.count == 2  # returned, never stored
    assert f.cache_stats()["store_errors"] == 2
    assert any("cannot be serialized with json" in r.getMessage() for r in caplog.records)


def test_the_serializer_is_part_of_the_key(cache_dir: Any, calls: Calls) -> None:
    def make(serializer: str) -> Any:
        @bcache(serializer=serializer, name="same-name", version=1, folder_name="shared")
        def f(x: int) -> list[int]:
            calls(serializer)
            return [x]

        return f

    as_pickle, as_json = make("pickle"), make("json")
    assert as_pickle(1) == as_json(1) == [1]
    assert calls.per_args() == {("pickle",): 1, ("json",): 1}
    assert make("json")(1) == [1]
    assert calls.count == 2


class Reversed:
    """A serializer of the user's (text, stored reversed)."""

    name = "reversed-text"

    def dumps(self, value: str) -> bytes:
        return value[::-1].encode()

    def loads(self, data: bytes) -> str:
        return data.decode()[::-1]


def test_an_object_with_dumps_and_loads(cache_dir: Any, calls: Calls) -> None:
    @fcache(serializer=Reversed())
    def f(x: int) -> str:
        calls(x)
        return f"text {x}"

    assert f(3) == f(3) == "text 3"
    assert calls.count == 1
    data = b"".join(p.read_bytes() for p in (cache_dir).rglob("*.twc"))
    assert b"3 txet" in data


@pytest.mark.parametrize("bad", ["yaml", 5, object()])
def test_a_bad_serializer_fails_at_decoration(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="serializer"):
        bcache(serializer=bad)


def test_mmap_needs_pickle() -> None:
    with pytest.raises(ConfigurationError, match="mmap"):
        fcache(serializer="json", mmap=True)


def test_config_and_context_take_a_serializer(cache_dir: Any) -> None:
    config = CacheConfig(serializer="json")
    with CacheContext(engine_name="disk", folder_name="ctx-json", config=config) as cache:
        assert cache.set("k", {"a": 1})
        assert cache.get("k") == {"a": 1}
        assert cache.set("t", (1, 2)) is False
        assert "t" not in cache


def test_json_entries_in_redis_never_run_code(redis_url: str, redis_client: Any, tmp_path: Any, calls: Calls) -> None:
    @rcache(url=redis_url, namespace="json-redis", serializer="json", secret=False)
    def f(x: int) -> dict[str, int]:
        calls(x)
        return {"x": x}

    assert f(1) == f(1) == {"x": 1}
    assert calls.count == 1
    (key,) = [k for k in redis_client.scan_iter(match="twc:json-redis:*") if not k.endswith(b":g")]
    entry = redis_client.get(key)
    assert b'{"x":1}' in entry
    # Someone writes a pickle there: json reads it as garbage, never as code.
    import pickle

    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(str(marker)))
    redis_client.set(key, entry.replace(b'{"x":1}', evil[: len(b'{"x":1}')]))
    assert f(1) == {"x": 1}
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (open, (self.path, "w"))
