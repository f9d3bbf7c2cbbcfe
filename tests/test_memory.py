"""mcache: keys, values, options and the cache_* controls (python/twat_cache/memory.py)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
from twat_cache import CacheInfo, mcache


def test_bare_and_called_forms_cache(calls):
    @mcache
    def bare(x):
        calls("bare", x)
        return x + 1

    @mcache(maxsize=4)
    def called(x):
        calls("called", x)
        return x + 2

    assert [bare(1), bare(1), called(1), called(1)] == [2, 2, 3, 3]
    assert calls.count == 2


def test_calls_binding_to_the_same_arguments_share_an_entry(calls):
    @mcache
    def f(a, b=2, *, c=3):
        calls(a, b, c)
        return a + b + c

    results = {f(1), f(a=1), f(1, 2), f(1, b=2), f(b=2, a=1), f(1, c=3), f(c=3, a=1, b=2), f(**{"a": 1})}
    assert results == {6}
    assert calls.count == 1
    assert f(1, 3) == 7
    assert calls.count == 2
    assert f.cache_info() == CacheInfo(hits=7, misses=2, maxsize=128, currsize=2)


def test_varargs_and_varkw_are_part_of_the_key(calls):
    @mcache
    def f(a, *rest, **opts):
        calls(a, rest, tuple(sorted(opts.items())))
        return (a, rest, opts)

    f(1, 2, 3, x=1, y=2)
    f(1, 2, 3, y=2, x=1)
    assert calls.count == 1
    f(1, 2)
    f(1, 2, 3, x=1)
    assert calls.count == 3


def test_typed_separates_equal_values_of_other_types(calls):
    @mcache
    def loose(x):
        calls("loose", type(x))
        return x

    @mcache(typed=True)
    def strict(x):
        calls("strict", type(x))
        return x

    for v in (1, 1.0, True):
        loose(v)
        strict(v)
    assert calls.per_args()[("loose", int)] == 1
    assert len([c for c in calls.log if c[0] == "loose"]) == 1
    assert len([c for c in calls.log if c[0] == "strict"]) == 3


@dataclasses.dataclass
class Point:
    x: int
    y: list[int]


@pytest.mark.parametrize(
    ("first", "equal", "different"),
    [
        ([1, 2, [3]], [1, 2, [3]], [1, 2, [4]]),
        ({"a": 1, "b": [2]}, {"b": [2], "a": 1}, {"a": 1, "b": [3]}),
        ({1, 2}, {2, 1}, {1, 3}),
        (bytearray(b"xy"), bytearray(b"xy"), bytearray(b"xz")),
        (np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(3, 2)),
        (np.arange(10)[::2], np.array([0, 2, 4, 6, 8]), np.array([0, 2, 4, 6, 9])),
        (Point(1, [2]), Point(1, [2]), Point(1, [3])),
    ],
    ids=["list", "dict", "set", "bytearray", "ndarray", "strided-ndarray", "dataclass"],
)
def test_unhashable_arguments_are_keyed_by_content(calls, first, equal, different):
    @mcache
    def f(x):
        calls(1)
        return 42

    assert f(first) == f(equal) == 42
    assert calls.count == 1
    f(different)
    assert calls.count == 2


def test_content_keys_do_not_collide_with_hashable_lookalikes(calls):
    @mcache
    def kind(x):
        calls(type(x).__name__)
        return type(x).__name__

    assert kind([1, 2]) == "list"
    assert kind((1, 2)) == "tuple"
    assert kind(np.array([1, 2])) == "ndarray"
    assert calls.count == 3


def test_large_array_one_element_change_is_a_miss(calls):
    @mcache
    def total(a):
        calls(1)
        return float(a.sum())

    a = np.ones(1_000_000)
    b = a.copy()
    total(a)
    total(b)
    assert calls.count == 1
    b[123_456] = 2.0
    assert total(b) == 1_000_001.0
    assert calls.count == 2


def test_an_argument_without_a_content_rule_is_a_clear_type_error():
    class Opaque:
        __hash__ = None  # type: ignore[assignment]

    @mcache
    def f(thing):
        return 1

    with pytest.raises(TypeError, match=r"argument thing of type Opaque .*ignore=\('thing',\)"):
        f(Opaque())


def test_key_and_ignore(calls):
    @mcache(key=lambda user, request_id: user.lower())
    def by_user(user, request_id):
        calls(user)
        return user.lower()

    by_user("Ann", 1)
    by_user("ANN", 2)
    assert calls.count == 1

    @mcache(ignore=("log",))
    def compute(x, log=None):
        calls("compute", x)
        return x * 10

    assert compute(1, log=print) == compute(1, log=None) == compute(1) == 10
    assert calls.per_args()[("compute", 1)] == 1


def test_exceptions_are_not_cached_and_none_is(calls):
    @mcache
    def flaky(x):
        calls(x)
        if calls.count == 1:
            raise ValueError("first call fails")
        return None

    with pytest.raises(ValueError, match="first call fails"):
        flaky(1)
    assert flaky(1) is None
    assert flaky(1) is None
    assert calls.count == 2
    assert flaky.cache_info().currsize == 1


def test_generator_functions_are_refused():
    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(TypeError, match=r"generator function 'test_generator_functions_are_refused\.<locals>\.gen'"):
        mcache(gen)
    with pytest.raises(TypeError, match="generator"):
        mcache(maxsize=3)(agen)


def test_metadata_signature_and_wrapped_are_kept():
    def original(a: int, b: str = "x") -> str:
        """Doc of original."""
        return b * a

    cached = mcache(original)
    assert cached.__wrapped__ is original
    assert cached.__name__ == "original"
    assert cached.__qualname__ == original.__qualname__
    assert cached.__module__ == original.__module__
    assert cached.__doc__ == "Doc of original."
    assert inspect.signature(cached) == inspect.signature(original)
    assert functools.reduce(lambda acc, _: acc, [1], cached)(2) == "xx"


def test_cache_controls(calls):
    @mcache(maxsize=10, ttl=60, policy="lfu")
    def f(a, b=0):
        calls(a, b)
        return a + b

    f(1)
    assert f.cache_key(1) == f.cache_key(a=1, b=0)
    f.cache_set(100, 2)
    assert f(2) == 100 and f(a=2, b=0) == 100
    assert calls.count == 1
    assert f.cache_delete(2) is True
    assert f.cache_delete(2) is False
    assert f(2) == 2
    assert calls.count == 2
    assert f.cache_parameters() == {
        "engine": "memory",
        "is_async": False,
        "maxsize": 10,
        "ttl": 60.0,
        "jitter": None,
        "policy": "lfu",
        "typed": False,
        "stale_ttl": None,
        "stale_if_error": None,
        "cache_if": None,
    }
    stats = f.cache_stats()
    assert stats["hits"] == 2 and stats["misses"] == 2 and stats["entries"] == 2
    assert stats["hit_ratio"] == 0.5 and stats["store_errors"] == 0
    f.cache_clear()
    assert f.cache_info() == CacheInfo(hits=0, misses=0, maxsize=10, currsize=0)
    f(1)
    assert calls.count == 3


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo", "rr", "tinylfu"])
def test_maxsize_is_a_hard_bound_for_every_policy(policy, calls):
    @mcache(maxsize=5, policy=policy)
    def f(x):
        calls(x)
        return [x]

    for i in range(200):
        assert f(i % 23) == [i % 23]
        assert f.cache_info().currsize <= 5
    assert f.cache_info().currsize == 5
    assert f.cache_stats()["evictions"] > 0


def test_maxsize_zero_caches_nothing_and_none_is_unbounded(calls):
    @mcache(maxsize=0)
    def nothing(x):
        calls("n", x)
        return x

    @mcache(maxsize=None)
    def everything(x):
        calls("e", x)
        return x

    for _ in range(3):
        nothing(1)
    for i in range(5000):
        everything(i)
    assert calls.per_args()[("n", 1)] == 3
    assert everything.cache_info().currsize == 5000
    assert everything.cache_info().maxsize is None


class Payload:
    """A value we can watch die through a weak reference."""


def test_ttl_expires_entries_and_memory_is_reclaimed_without_calls(calls):
    @mcache(ttl=0.2)
    def f(x):
        calls(x)
        return Payload()

    first = f(1)
    assert f(1) is first
    refs = [weakref.ref(f(100 + i)) for i in range(50)]
    del first
    assert calls.count == 51
    time.sleep(0.3)
    f(1)
    assert calls.count == 52, "an expired entry was returned"
    # No more calls to f, and nothing that reads it: the process-wide sweeper reclaims
    # the expired values on its own.
    deadline = time.monotonic() + 5
    while any(r() is not None for r in refs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(r() is None for r in refs), "expired values are still held"
    assert f.cache_stats()["expirations"] >= 51


def test_an_evicted_value_is_released_when_it_leaves(calls):
    # A call through the fast (vectorcall) entry, which evicts the oldest entry: its
    # value's last reference goes then, not at some later call into the extension.
    @mcache(maxsize=1)
    def f(x):
        calls(x)
        return Payload()

    first = weakref.ref(f(1))
    assert first() is not None, "the cache holds it"
    f(2)
    assert calls.count == 2
    assert first() is None, "the evicted value is still referenced"
    second = weakref.ref(f(2))
    f.cache_clear()
    assert second() is None, "a cleared value is still referenced"


def test_disable_environment_variable_calls_straight_through():
    code = """
from twat_cache import mcache
calls = []
@mcache
def f(x):
    calls.append(x)
    return x
f(1); f(1); f(1)
print(len(calls), f.cache_info().currsize)
"""
    env = dict(os.environ, TWAT_CACHE_DISABLE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "0"]
