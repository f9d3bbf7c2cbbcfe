"""Async functions in every decorator: the awaited result is cached, single flight for
tasks, cancellation, several event loops and threads, TTL, methods
(python/twat_cache/_async.py, crates/twat-cache-python/src/ready.rs, async_slot.rs)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest
from conftest import run_python
from twat_cache import acache, bcache, fcache, mcache

MEMORY = [acache, mcache]


@pytest.mark.parametrize("decorator", MEMORY)
def test_the_awaited_result_is_cached_never_the_coroutine(decorator, calls):
    @decorator
    async def double(x):
        calls(x)
        await asyncio.sleep(0)
        return x * 2

    async def main():
        first = await double(21)
        second = await double(21)
        third = await double(x=21)
        pending = double(21)  # a hit: may be awaited more than once
        return first, second, third, await pending, await pending

    assert asyncio.run(main()) == (42, 42, 42, 42, 42)
    assert calls.count == 1
    info = double.cache_info()
    assert (info.hits, info.misses, info.currsize) == (3, 1, 1)


@pytest.mark.parametrize("decorator", MEMORY)
def test_hits_are_accepted_wherever_asyncio_takes_a_coroutine(decorator, calls):
    @decorator
    async def ident(x):
        calls(x)
        return x

    assert asyncio.run(ident("a")) == "a"
    assert asyncio.run(ident("a")) == "a"  # a hit, given straight to asyncio.run

    async def main():
        task = asyncio.create_task(ident("a"))
        gathered = await asyncio.gather(ident("a"), ident("b"))
        waited = await asyncio.wait_for(ident("a"), timeout=5)
        return await task, gathered, waited

    assert asyncio.run(main()) == ("a", ["a", "b"], "a")
    assert calls.per_args() == {("a",): 1, ("b",): 1}


@pytest.mark.parametrize("decorator", MEMORY)
def test_eight_concurrent_calls_run_the_function_once(decorator, calls):
    @decorator
    async def slow(x):
        calls(x)
        await asyncio.sleep(0.05)
        return [x]

    async def main():
        return await asyncio.gather(*(slow(1) for _ in range(8)), slow(2))

    results = asyncio.run(main())
    assert results == [[1]] * 8 + [[2]]
    assert all(r is results[0] for r in results[:8])  # one value, shared
    assert calls.per_args() == {(1,): 1, (2,): 1}


def test_different_keys_never_wait_for_each_other(calls):
    release = {}

    @acache
    async def gated(x):
        calls(x)
        await release[x].wait()
        return x

    async def main():
        release.update({1: asyncio.Event(), 2: asyncio.Event()})
        one = asyncio.create_task(gated(1))
        two = asyncio.create_task(gated(2))
        await asyncio.sleep(0.01)
        release[2].set()  # key 2 finishes while key 1 is still running
        done_two = await asyncio.wait_for(two, timeout=5)
        assert not one.done()
        release[1].set()
        return await one, done_two

    assert asyncio.run(main()) == (1, 2)


def test_an_exception_reaches_every_waiter_and_is_not_cached(calls):
    @acache
    async def flaky(x):
        calls(x)
        await asyncio.sleep(0.02)
        if calls.count == 1:
            raise ValueError(f"boom {x}")
        return x

    async def main():
        return await asyncio.gather(*(flaky(3) for _ in range(5)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [ValueError] * 5
    assert str(outcomes[0]) == "boom 3"
    assert calls.count == 1
    assert asyncio.run(flaky(3)) == 3  # not cached: the next call runs again
    assert calls.count == 2


def test_cancelling_the_first_caller_leaves_the_value_to_the_others(calls):
    @acache
    async def slow(x):
        calls(x)
        await asyncio.sleep(0.05)
        return x * 10

    async def main():
        leader = asyncio.create_task(slow(4))
        await asyncio.sleep(0)  # the leader starts the computation
        followers = [asyncio.create_task(slow(4)) for _ in range(3)]
        await asyncio.sleep(0)
        leader.cancel()
        values = await asyncio.gather(*followers)
        with pytest.raises(asyncio.CancelledError):
            await leader
        return values

    assert asyncio.run(main()) == [40, 40, 40]
    assert calls.count == 1
    assert asyncio.run(slow(4)) == 40
    assert calls.count == 1


def test_cancelling_every_caller_cancels_the_computation(calls):
    cancelled = []

    @acache
    async def slow(x):
        calls(x)
        if calls.count == 1:  # the first run would take long; later ones do not
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(x)
                raise
        return x

    async def main():
        waiters = [asyncio.create_task(slow(5)) for _ in range(3)]
        await asyncio.sleep(0.01)
        for w in waiters:
            w.cancel()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0.01)  # the computation's own task sees its cancellation
        return [type(o) for o in outcomes]

    assert asyncio.run(main()) == [asyncio.CancelledError] * 3
    assert cancelled == [5]
    # The next call starts afresh instead of joining the cancelled computation.
    assert asyncio.run(asyncio.wait_for(slow(5), 5)) == 5
    assert calls.count == 2


def test_results_are_shared_across_event_loops(calls):
    @acache
    async def load(x):
        calls(x)
        return {"x": x}

    first = asyncio.run(load(1))
    loop = asyncio.new_event_loop()
    try:
        second = loop.run_until_complete(load(1))
    finally:
        loop.close()
    third = asyncio.run(load(1))
    assert first == second == third == {"x": 1}
    assert calls.count == 1


def test_threads_with_their_own_loops_share_one_computation(calls):
    started = threading.Event()

    @acache
    async def slow(x):
        calls(x)
        started.set()
        await asyncio.sleep(0.2)
        return x + 1

    def in_thread(delay):
        time.sleep(delay)
        return asyncio.run(slow(9))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(in_thread, 0)
        started.wait(5)
        others = [pool.submit(in_thread, 0) for _ in range(3)]
        results = [first.result(10)] + [o.result(10) for o in others]
    assert results == [10, 10, 10, 10]
    assert calls.count == 1


def test_a_waiter_on_another_loop_survives_the_end_of_the_leading_loop(calls):
    started = threading.Event()

    @acache
    async def slow(x):
        calls(x)
        started.set()
        await asyncio.sleep(0.3)
        return x

    def leader():
        async def give_up():
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(slow(1), 0.1)

        asyncio.run(give_up())  # ends its loop while the other thread waits

    def follower():
        started.wait(5)
        return asyncio.run(asyncio.wait_for(slow(1), 10))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        lead = pool.submit(leader)
        follow = pool.submit(follower)
        lead.result(10)
        assert follow.result(10) == 1
    assert calls.count == 2  # the first computation died with its loop; the waiter ran it again


def test_ttl_expires_without_any_event_loop_activity(calls):
    @acache(ttl=0.05)
    async def stamp(x):
        calls(x)
        return calls.count

    assert asyncio.run(stamp(1)) == 1
    assert asyncio.run(stamp(1)) == 1
    time.sleep(0.1)  # no loop runs meanwhile: no timer can fire
    assert asyncio.run(stamp(1)) == 2
    assert calls.count == 2


def test_a_computation_that_awaits_its_own_key_does_not_deadlock(calls):
    @acache
    async def countdown(n, again=True):
        calls(n, again)
        if again:
            # The same key again (`again` is left out of the key): computed directly.
            return await countdown(n, again=False) + 1
        return n

    countdown = acache(ignore=("again",))(countdown.__wrapped__)
    assert asyncio.run(asyncio.wait_for(countdown(3), 5)) == 4
    assert asyncio.run(countdown(3)) == 4
    assert calls.count == 2


def test_async_methods_classmethods_and_staticmethods(calls):
    class Client:
        def __init__(self, base):
            self.base = base

        @acache
        async def get(self, x):
            calls("get", self.base, x)
            return self.base + x

        @mcache
        @classmethod
        async def build(cls, x):
            calls("build", x)
            return (cls.__name__, x)

        @acache
        @staticmethod
        async def pure(x):
            calls("pure", x)
            return -x

    a, b = Client(100), Client(200)

    async def main():
        return (
            await a.get(1),
            await a.get(1),
            await b.get(1),
            await Client.build(2),
            await Client.build(2),
            await a.pure(3),
            await Client.pure(3),
        )

    assert asyncio.run(main()) == (101, 101, 201, ("Client", 2), ("Client", 2), -3, -3)
    assert calls.per_args() == {("get", 100, 1): 1, ("get", 200, 1): 1, ("build", 2): 1, ("pure", 3): 1}
    a.get.cache_clear()  # that instance only
    asyncio.run(a.get(1))
    asyncio.run(b.get(1))
    assert calls.per_args()[("get", 100, 1)] == 2
    assert calls.per_args()[("get", 200, 1)] == 1


def test_cache_set_and_delete_on_an_async_function(calls):
    @acache
    async def value(x):
        calls(x)
        return x

    value.cache_set("preset", 1)
    assert asyncio.run(value(1)) == "preset"
    assert value.cache_delete(1) is True
    assert asyncio.run(value(1)) == 1
    assert calls.count == 1


def test_acache_on_a_sync_function_caches_like_mcache(calls):
    @acache(maxsize=4)
    def square(x):
        calls(x)
        return x * x

    assert square(3) == square(3) == 9
    assert calls.count == 1


def test_disabled_by_environment_calls_straight_through(monkeypatch, calls):
    monkeypatch.setenv("TWAT_CACHE_DISABLE", "1")

    @acache
    async def ident(x):
        calls(x)
        return x

    assert asyncio.run(ident(1)) == asyncio.run(ident(1)) == 1
    assert calls.count == 2


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A real thread pool that records which threads ran the store's work."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.threads: set[int] = set()
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        def run():
            self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        self.jobs += 1
        return super().submit(run)


def run_with_executor(coro_fn):
    """Runs ``coro_fn()`` in a new loop whose default executor counts its jobs."""
    executor = CountingExecutor()

    async def main():
        asyncio.get_running_loop().set_default_executor(executor)
        return await coro_fn()

    return asyncio.run(main()), executor


@pytest.mark.parametrize("decorator", [bcache, fcache])
def test_persistent_async_io_runs_off_the_loop_and_is_shared(cache_dir, calls, decorator):
    @decorator(folder_name="async_store")
    async def load(x):
        calls(x)
        await asyncio.sleep(0.02)
        return {"x": x, "data": np.arange(x)}

    async def eight():
        loop_thread = threading.get_ident()
        values = await asyncio.gather(*(load(1000) for _ in range(8)))
        return values, loop_thread

    (values, loop_thread), executor = run_with_executor(eight)
    assert calls.count == 1
    assert all(np.array_equal(v["data"], np.arange(1000)) for v in values)
    assert executor.jobs >= 2 and loop_thread not in executor.threads  # lookup and store
    assert executor.jobs == 2  # a folder takes no cross-process lease: no claim, no release

    (hit, _), executor = run_with_executor(lambda: eight())
    assert calls.count == 1 and executor.jobs >= 1 and loop_thread not in executor.threads
    assert np.array_equal(hit[0]["data"], np.arange(1000))
    assert load.cache_info().hits >= 8


def test_bcache_async_values_persist_for_another_process(cache_dir, calls):
    code = """
import asyncio, sys
from twat_cache import bcache
ran = []
@bcache(folder_name="async_shared", name="tests.async_shared", version=1)
async def profile(user):
    ran.append(user)
    await asyncio.sleep(0)
    return {"user": user, "score": len(user)}
print(asyncio.run(profile("ada")), len(ran))
"""
    env = {"TWAT_CACHE_DIR": str(cache_dir)}
    assert run_python(code, env=env).strip() == "{'user': 'ada', 'score': 3} 1"
    assert run_python(code, env=env).strip() == "{'user': 'ada', 'score': 3} 0"


def test_persistent_async_exceptions_are_not_stored(cache_dir, calls):
    @bcache(folder_name="async_errors")
    async def fails(x):
        calls(x)
        raise KeyError(x)

    async def main():
        return await asyncio.gather(*(fails(1) for _ in range(4)), return_exceptions=True)

    assert [type(e) for e in asyncio.run(main())] == [KeyError] * 4
    assert calls.count == 1
    with pytest.raises(KeyError):
        asyncio.run(fails(1))
    assert calls.count == 2


def test_an_object_with_an_async_call_is_cached_as_async(calls):
    class Base:
        async def __call__(self, x):
            calls(x)
            return x * 2

    class Fetcher(Base):
        pass

    fetch = acache(Fetcher())
    assert asyncio.run(fetch(2)) == asyncio.run(fetch(2)) == 4  # the value, not a spent coroutine
    assert calls.count == 1


def test_persistent_async_methods_key_self_by_value(cache_dir, calls):
    class Account:
        def __init__(self, owner):
            self.owner = owner

        def __eq__(self, other):
            return isinstance(other, Account) and other.owner == self.owner

        __hash__ = None  # keyed by content (its __dict__), as bcache does for self

        @bcache(folder_name="async_methods")
        async def balance(self, currency):
            calls(self.owner, currency)
            await asyncio.sleep(0)
            return {"owner": self.owner, "currency": currency}

    async def main():
        first = await Account("ada").balance("EUR")
        again = await Account("ada").balance("EUR")  # an equal instance: a hit on disk
        other = await Account("bob").balance("EUR")
        return first, again, other

    first, again, other = asyncio.run(main())
    assert first == again == {"owner": "ada", "currency": "EUR"}
    assert other["owner"] == "bob"
    assert calls.per_args() == {("ada", "EUR"): 1, ("bob", "EUR"): 1}


def test_cached_async_functions_say_they_are_async_and_stack(cache_dir, calls):
    @acache
    @bcache(folder_name="stacked")
    async def load(x):
        calls(x)
        return {"x": x}

    assert asyncio.iscoroutinefunction(load) and asyncio.iscoroutinefunction(load.__wrapped__)
    assert asyncio.run(load(1)) == asyncio.run(load(1)) == {"x": 1}  # values, never coroutines
    assert calls.count == 1
    assert load.cache_info().hits == 1 and load.__wrapped__.cache_info().misses == 1

    class Client:
        @mcache
        async def get(self, x):
            return x

    assert asyncio.iscoroutinefunction(Client().get)


def test_many_loops_and_cancellations_leave_no_flight_behind(calls):
    import random

    from twat_cache import _async

    @acache(maxsize=4)  # small: keys are evicted and computed again
    async def slow(x):
        calls(x)
        await asyncio.sleep(random.random() * 0.01)
        return x * 3

    def worker(seed):
        rng = random.Random(seed)

        async def one(x):
            task = asyncio.ensure_future(slow(x))
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() * 0.005)
                task.cancel()
            try:
                return x, await task
            except asyncio.CancelledError:
                return x, None

        async def main():
            return await asyncio.gather(*(one(rng.randrange(8)) for _ in range(200)))

        return asyncio.run(main())

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = [r for rs in pool.map(worker, range(4)) for r in rs]
    assert all(value in (None, x * 3) for x, value in results)
    assert sum(value is not None for _, value in results) > 400
    assert _async._FLIGHTS.by_key == {}  # every flight ended and was removed
