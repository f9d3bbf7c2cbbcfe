"""Single flight and locking across threads (crates/twat-cache-python/src/engine.rs)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from twat_cache import mcache


def run_together(n, fn):
    """Runs fn(i) in n threads released at the same moment; returns the results or exceptions."""
    barrier = threading.Barrier(n)

    def task(i):
        barrier.wait()
        try:
            return fn(i)
        except Exception as e:
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(task, range(n)))


def test_concurrent_calls_for_one_missing_key_run_once(calls):
    @mcache
    def slow(x):
        calls(x)
        time.sleep(0.2)
        return object()

    results = run_together(8, lambda i: slow(7))
    assert calls.count == 1
    assert all(r is results[0] for r in results), "waiters must get the very same value"


def test_every_waiter_gets_the_same_exception_and_it_is_not_cached(calls):
    @mcache
    def failing(x):
        calls(x)
        time.sleep(0.5)  # long enough that every thread arrives while it runs
        raise RuntimeError(f"failed {x}")

    results = run_together(6, lambda i: failing(1))
    assert calls.count == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "failed 1" for r in results)
    with pytest.raises(RuntimeError):
        failing(1)
    assert calls.count == 2


def test_different_keys_never_wait_for_each_other():
    started = threading.Event()
    release = threading.Event()

    @mcache
    def f(x):
        if x == "slow":
            started.set()
            release.wait(10)
        return x

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(f, "slow")
        assert started.wait(5)
        # While "slow" is being computed, another key completes at once.
        fast = pool.submit(f, "fast")
        assert fast.result(timeout=5) == "fast"
        assert not slow.done()
        release.set()
        assert slow.result(timeout=5) == "slow"


def test_a_function_calling_itself_with_the_same_key_does_not_deadlock(calls):
    @mcache
    def same_key(n):
        calls("same", n)
        if calls.count < 3:
            return same_key(n) + 1
        return 0

    assert same_key(1) == 2
    assert calls.count == 3
    assert same_key(1) == 2
    assert calls.count == 3


def test_an_exception_in_a_key_eq_propagates():
    class Touchy:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return 1

        def __eq__(self, other):
            raise LookupError("no comparing")

    @mcache
    def f(x):
        return x.v

    assert f(Touchy(1)) == 1
    with pytest.raises(LookupError, match="no comparing"):
        f(Touchy(2))


def test_python_level_eq_under_contention_does_not_deadlock():
    class SlowEq:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return hash(self.v)

        def __eq__(self, other):
            # Python code: the interpreter may switch threads in here.
            total = 0
            for i in range(200):
                total += i
            return isinstance(other, SlowEq) and self.v == other.v

    @mcache(maxsize=16)
    def f(x):
        return x.v * 2

    def hammer(i):
        for j in range(2000):
            assert f(SlowEq(j % 20)) == (j % 20) * 2
        return i

    assert run_together(4, hammer) == [0, 1, 2, 3]


def test_hits_from_many_threads_stay_consistent():
    @mcache(maxsize=64, policy="tinylfu")
    def f(x):
        return x * 3

    def hammer(i):
        for j in range(20_000):
            k = (j * (i + 1)) % 100
            assert f(k) == k * 3
        return True

    assert all(run_together(4, hammer))
    info = f.cache_info()
    assert info.hits + info.misses == 80_000
    assert info.currsize <= 64


def test_a_key_eq_that_releases_the_gil_holds_the_cache_for_others():
    """A key's ``__eq__`` that sleeps (the GIL released) keeps the cache's lock: other
    threads wait for it, then find the right values; nothing is computed twice."""
    import threading
    import time

    computed: list[int] = []
    compute_lock = threading.Lock()

    class Sleepy:
        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return self.v % 3  # collisions: lookups compare keys

        def __eq__(self, other):
            time.sleep(0.0005)  # releases the GIL while the cache is held
            return isinstance(other, Sleepy) and self.v == other.v

    @mcache(maxsize=64)
    def f(x):
        v = x.v if isinstance(x, Sleepy) else x
        with compute_lock:
            computed.append(v)
        return v * 7

    def hammer(i):
        for j in range(60):
            k = (j + i) % 9
            assert f(Sleepy(k)) == k * 7
            assert f(k) == k * 7  # plain int keys, same cache, during the sleeps
        return i

    assert run_together(4, hammer) == [0, 1, 2, 3]
    # Each Sleepy key once, each int key once (they are different keys: Sleepy(1) != 1).
    assert sorted(computed) == sorted(list(range(9)) * 2)
    info = f.cache_info()
    assert info.hits + info.misses == 4 * 60 * 2
