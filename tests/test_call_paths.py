"""A memory-cached function is called by vectorcall (positional arguments where CPython
has them) or by ``tp_call`` (keywords, many arguments, ``func(*args, **kwargs)`` from C):
every path reaches the same entries, counts the same and raises the same errors."""

from __future__ import annotations

import functools
import math
import operator

import pytest
from twat_cache import mcache


def test_positional_keyword_and_unpacked_calls_share_one_entry(calls):
    @mcache
    def f(x, y=2):
        calls(x, y)
        return x * 10 + y

    results = [f(1), f(x=1), f(*[1]), f(**{"x": 1}), f(1, 2), f(1, y=2), f(y=2, x=1)]
    assert results == [12] * 7
    assert calls.count == 1
    assert f.cache_info().hits == 6 and f.cache_info().misses == 1
    assert f.cache_contains(1) and f.cache_contains(1, 2)
    assert f(1, 3) == 13 and calls.count == 2


def test_calls_from_c_code_use_the_cache(calls):
    @mcache
    def square(x):
        calls(x)
        return x * x

    assert list(map(square, [3, 3, 4])) == [9, 9, 16]
    assert functools.reduce(operator.add, map(square, [3, 4])) == 25
    assert functools.partial(square, 3)() == 9
    assert sorted([4, 3], key=square) == [3, 4]
    assert calls.count == 2  # 3 and 4, once each


def test_many_arguments_take_the_general_path_and_still_hit(calls):
    @mcache
    def total(*xs):
        calls(*xs)
        return sum(xs)

    ten = list(range(10))
    assert total(*ten) == 45 and total(*ten) == 45
    assert total(0, 1, 2) == 3 and total(0, 1, 2) == 3
    assert total() == 0 and total() == 0
    assert calls.count == 3


def test_nan_and_unhashable_arguments_key_the_same_on_every_path(calls):
    @mcache
    def f(x):
        calls(repr(x))
        return repr(x)

    assert f(float("nan")) == f(x=float("nan")) == "nan"
    assert f([1, 2]) == f(x=[1, 2]) == "[1, 2]"
    assert calls.count == 2
    assert math.isnan(float(f(math.nan)))


def test_errors_pass_through_unchanged(calls):
    @mcache
    def f(x):
        calls(x)
        raise KeyError(x)

    with pytest.raises(KeyError):
        f(1)
    with pytest.raises(KeyError):
        f(1)
    assert calls.count == 2  # an exception is not cached
    with pytest.raises(TypeError):
        f(1, 2, 3)  # does not bind: the function's own TypeError
    with pytest.raises(TypeError):
        f(nope=1)


def test_an_async_function_called_positionally_still_returns_an_awaitable(calls):
    import asyncio

    @mcache
    async def f(x):
        calls(x)
        return x + 1

    async def main():
        return [await f(1), await f(1), await f(x=1)]

    assert asyncio.run(main()) == [2, 2, 2]
    assert calls.count == 1
