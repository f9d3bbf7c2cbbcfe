"""``bcache``: persistence, keys, limits, TTL and failure handling in one process
(python/twat_cache/disk.py, crates/twat-cache/src/disk.rs)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import logging
import os
import pathlib
import stat
import threading
import time

import pytest
from twat_cache import ConfigurationError, bcache, clear_cache, get_cache_path, get_stats


def test_results_are_cached_on_disk_and_bound_like_memory_keys(cache_dir, calls):
    @bcache
    def area(w, h=2):
        calls(w, h)
        return {"area": w * h, "unit": "m2"}

    assert area(3) == {"area": 6, "unit": "m2"}
    assert area(3, 2) == area(w=3) == area(h=2, w=3) == area(3)
    assert calls.count == 1
    info = area.cache_info()
    assert (info.hits, info.misses, info.currsize) == (4, 1, 1)
    folder = get_cache_path(area.cache_parameters()["folder"])
    assert folder.parent == cache_dir
    assert (folder / "index.sqlite").exists()


def test_a_new_decorator_on_the_same_folder_sees_the_old_entries(cache_dir, calls):
    def make():
        @bcache(folder_name="shared", name="tests.shared_fn")
        def double(x):
            calls(x)
            return [x, x]

        return double

    assert make()(21) == [21, 21]
    assert make()(21) == [21, 21]
    assert calls.count == 1


def test_folders_are_private_and_absolute_names_are_used_as_given(cache_dir, tmp_path):
    target = tmp_path / "elsewhere" / "mine"

    @bcache(folder_name=str(target))
    def f(x):
        return x

    f(1)
    assert (target / "index.sqlite").exists()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
    assert not cache_dir.exists() or "mine" not in os.listdir(cache_dir)


def test_none_is_cached_and_exceptions_are_not(cache_dir, calls):
    @bcache
    def maybe(x):
        calls(x)
        if x < 0:
            raise ValueError(x)
        return None

    assert maybe(1) is None
    assert maybe(1) is None
    with pytest.raises(ValueError):
        maybe(-1)
    with pytest.raises(ValueError):
        maybe(-1)
    assert calls.per_args() == {(1,): 1, (-1,): 2}


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (True, 1),
        (decimal.Decimal("2"), 2),
        ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}),
        ({1, 2, 3}, frozenset({3, 2, 1})),
        (bytearray(b"xy"), b"xy"),
        (pathlib.PurePosixPath("/a/b"), pathlib.Path("/a/b")),
    ],
)
def test_equal_arguments_share_an_entry(cache_dir, calls, a, b):
    @bcache
    def f(x):
        calls(x)
        return "ok"

    f(a)
    f(b)
    assert calls.count == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1, 2), [1, 2]),
        ("1", 1),
        (1.5, 1),
        (Color.RED, 1),
        (Point(1, 2), Point(2, 1)),
        (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2)),
        (decimal.Decimal("1.5"), decimal.Decimal("1.25")),
        ({"a": 1}, {"a": 2}),
        (10**30, 10**30 + 1),
        (-(10**30), 10**30),
    ],
)
def test_different_arguments_get_different_entries(cache_dir, calls, a, b):
    @bcache
    def f(x):
        calls(x)
        return "ok"

    f(a)
    f(b)
    f(a)
    assert calls.count == 2


def test_typed_keeps_equal_values_of_other_types_apart(cache_dir, calls):
    @bcache(typed=True)
    def f(x):
        calls(x)
        return x

    assert f(1) == 1
    assert f(1.0) == 1.0
    assert isinstance(f(1.0), float)
    assert calls.count == 2


def test_an_argument_without_a_stable_encoding_is_a_clear_type_error(cache_dir):
    @bcache
    def f(x, handle):
        return x

    with pytest.raises(TypeError, match=r"argument handle of type object .*ignore=\('handle',\)"):
        f(1, object())
    with pytest.raises(TypeError, match="lambda"):
        f(1, lambda: 0)


def test_ignored_and_keyed_arguments(cache_dir, calls):
    @bcache(ignore=("log",))
    def f(x, log):
        calls(x)
        return x * 2

    assert f(2, object()) == f(2, object()) == 4
    assert calls.count == 1

    @bcache(key=lambda user, session: user["id"])
    def g(user, session):
        calls(user["id"])
        return user["name"]

    assert g({"id": 7, "name": "ann"}, object()) == "ann"
    assert g({"id": 7, "name": "changed"}, object()) == "ann"
    assert calls.count == 2


def test_methods_key_self_by_value(cache_dir, calls):
    class Scaler:
        def __init__(self, k):
            self.k = k

        @bcache
        def scale(self, x):
            calls(self.k, x)
            return self.k * x

    assert Scaler(2).scale(5) == 10
    assert Scaler(2).scale(5) == 10  # another instance, equal by value
    assert Scaler(3).scale(5) == 15
    assert calls.count == 2


def test_ttl_expires_entries(cache_dir, calls):
    @bcache(ttl=0.3)
    def now(x):
        calls(x)
        return time.time()

    first = now(1)
    assert now(1) == first
    time.sleep(0.45)
    assert now(1) != first
    assert calls.count == 2


def test_the_size_limit_holds_after_every_insert(cache_dir):
    @bcache(maxsize=20_000)
    def blob(i):
        return bytes([i % 256]) * 3000

    for i in range(30):
        assert blob(i) == bytes([i]) * 3000
        assert blob.cache_stats()["bytes"] <= 20_000
    assert 0 < blob.cache_info().currsize < 30
    assert blob(29) == bytes([29]) * 3000


def test_an_entry_larger_than_the_limit_is_returned_with_a_warning(cache_dir, calls, caplog):
    @bcache(maxsize=10_000)
    def big(n):
        calls(n)
        return b"x" * n

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert big(50_000) == b"x" * 50_000
        assert big(50_000) == b"x" * 50_000
    assert calls.count == 2
    assert big.cache_stats()["store_errors"] == 2
    assert sum("larger than the whole cache limit" in r.message for r in caplog.records) == 1


def test_an_unpicklable_result_is_returned_with_one_warning(cache_dir, caplog):
    @bcache
    def make_lock(x):
        return threading.Lock()

    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        a = make_lock(1)
        b = make_lock(1)
    assert a is not b
    assert make_lock.cache_stats()["store_errors"] == 2
    assert sum("cannot be pickled" in r.message for r in caplog.records) == 1


def test_a_corrupted_entry_is_a_miss_and_is_replaced(cache_dir, calls, caplog):
    @bcache(folder_name="corrupt")
    def payload(n):
        calls(n)
        return bytearray(b"z" * n)

    assert payload(200_000) == b"z" * 200_000  # large: stored in a file of its own
    files = list((get_cache_path("corrupt") / "data").rglob("*.twc"))
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    files[0].write_bytes(raw)
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert payload(200_000) == b"z" * 200_000
    assert calls.count == 2
    assert any("checksum mismatch" in r.message for r in caplog.records)
    assert payload(200_000) == b"z" * 200_000
    assert calls.count == 2, "the recomputed value was stored again"


def test_a_truncated_entry_is_a_miss(cache_dir, calls):
    @bcache(folder_name="truncated")
    def payload(n):
        calls(n)
        return bytearray(b"q" * n)

    payload(100_000)
    (file,) = (get_cache_path("truncated") / "data").rglob("*.twc")
    file.write_bytes(file.read_bytes()[:5000])
    assert payload(100_000) == b"q" * 100_000
    assert calls.count == 2


def test_signed_entries_are_never_unpickled_with_the_wrong_secret(cache_dir, calls, caplog):
    def make(secret):
        @bcache(folder_name="signed", name="tests.signed", secret=secret)
        def f(x):
            calls(x)
            return {"x": x}

        return f

    assert make("one")(1) == {"x": 1}
    assert make("one")(1) == {"x": 1}
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert make("two")(1) == {"x": 1}
    assert calls.count == 2
    assert any("signature mismatch" in r.message for r in caplog.records)


def test_clear_cache_removes_this_cache_only(cache_dir, calls):
    @bcache(folder_name="together", name="tests.first")
    def first(x):
        calls("first", x)
        return x

    @bcache(folder_name="together", name="tests.second")
    def second(x):
        calls("second", x)
        return x

    outside = cache_dir / "keep.txt"
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text("not ours")
    first(1), second(1)
    clear_cache("tests.first")
    first(1), second(1)
    assert calls.per_args() == {("first", 1): 2, ("second", 1): 1}
    assert outside.read_text() == "not ours"
    assert get_stats("tests.second")["entries"] == 1


def test_concurrent_threads_compute_a_missing_key_once(cache_dir, calls):
    @bcache
    def slow(x):
        calls(x)
        time.sleep(0.2)
        return x * 3

    barrier = threading.Barrier(8)
    results = []

    def worker():
        barrier.wait()
        results.append(slow(5))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [15] * 8
    assert calls.count == 1


def test_cache_set_delete_and_key(cache_dir, calls):
    @bcache
    def f(x):
        calls(x)
        return -x

    assert f.cache_set(100, 1) is True
    assert f(1) == 100
    assert f.cache_delete(1) is True
    assert f(1) == -1
    assert calls.count == 1
    assert f.cache_key(1) == f.cache_key(x=1)
    assert len(f.cache_key(1)) == 32


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy": "tinylfu"}, "policy='tinylfu'.*'lru', 'lfu', 'fifo'"),
        ({"maxsize": 0}, "maxsize=0.*positive number of bytes"),
        ({"compress": "gzip"}, "compress='gzip'.*'zstd' or 'lz4'"),
        ({"ttl": -1}, "ttl=-1"),
        ({"folder_name": "../escape"}, "folder_name='../escape'"),
        ({"secret": 5}, "secret=.*str or bytes"),
    ],
)
def test_bad_options_fail_at_decoration_time(cache_dir, options, message):
    with pytest.raises(ConfigurationError, match=message):
        bcache(**options)


def test_generators_and_async_generators_are_refused(cache_dir):
    with pytest.raises(TypeError, match="generator"):

        @bcache
        def gen():
            yield 1

    with pytest.raises(TypeError, match="generator"):

        @bcache
        async def agen():
            yield 1


def test_a_full_disk_returns_the_value_with_a_warning(cache_dir):
    # A real write failure: the process may not write files past 1 MB (EFBIG, as a
    # full disk gives ENOSPC); the store must give up cleanly and leave nothing behind.
    code = """
import logging, resource, signal
logging.basicConfig()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from twat_cache import fcache

@fcache(folder_name="full")
def big(n):
    return b"x" * n

resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
assert big(5_000_000) == b"x" * 5_000_000
assert big(5_000_000) == b"x" * 5_000_000
stats = big.cache_stats()
assert stats["store_errors"] == 2 and stats["entries"] == 0, stats
print("ok")
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert done.stderr.count("could not store a result") == 1, done.stderr
    assert not list((cache_dir / "full" / "tmp").iterdir()), "no temporary file is left behind"


def test_the_secret_can_come_from_the_environment(cache_dir, calls, monkeypatch, caplog):
    def make():
        @bcache(folder_name="env-signed", name="tests.env_signed")
        def f(x):
            calls(x)
            return [x]

        return f

    monkeypatch.setenv("TWAT_CACHE_SECRET", "from-env")
    assert make()(1) == [1]
    assert make()(1) == [1]
    assert calls.count == 1
    monkeypatch.setenv("TWAT_CACHE_SECRET", "rotated")
    with caplog.at_level(logging.WARNING, logger="twat_cache"):
        assert make()(1) == [1]
    assert calls.count == 2, "an entry signed with another secret is not trusted"
    assert any("signature mismatch" in r.message for r in caplog.records)


def test_twat_cache_disable_calls_straight_through(cache_dir, calls, monkeypatch):
    monkeypatch.setenv("TWAT_CACHE_DISABLE", "1")

    @bcache
    def f(x):
        calls(x)
        return x

    f(1), f(1)
    assert calls.count == 2
    assert f.cache_info().currsize == 0


def test_cache_set_takes_the_value_first_and_passes_every_keyword_on(cache_dir, calls):
    @bcache
    def scale(value, factor=2):
        calls(value)
        return value * factor

    assert scale.cache_set(100, 3, factor=2) is True
    assert scale.cache_set(7, value=4) is True  # "value" here is scale's own parameter
    assert scale(3) == 100 and scale(value=4) == 7
    assert calls.count == 0
