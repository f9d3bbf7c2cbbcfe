"""get_stats, clear_cache, list_caches (python/twat_cache/_registry.py)."""

from __future__ import annotations

import gc

import pytest
from twat_cache import clear_cache, get_stats, list_caches, mcache


def test_caches_are_listed_by_name_and_default_name(calls):
    @mcache(name="reg.named")
    def named(x):
        calls(x)
        return x

    @mcache
    def anonymous(x):
        return x

    assert "reg.named" in list_caches()
    assert f"{__name__}.test_caches_are_listed_by_name_and_default_name.<locals>.anonymous" in list_caches()
    named(1)
    named(1)
    stats = get_stats("reg.named")
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)
    assert get_stats()["reg.named"] == stats


def test_clear_cache_by_name_and_all(calls):
    @mcache(name="reg.a")
    def a(x):
        calls("a", x)
        return x

    @mcache(name="reg.b")
    def b(x):
        calls("b", x)
        return x

    a(1), b(1)
    clear_cache("reg.a")
    a(1), b(1)
    assert calls.per_args() == {("a", 1): 2, ("b", 1): 1}
    clear_cache()
    a(1), b(1)
    assert calls.per_args() == {("a", 1): 3, ("b", 1): 2}


def test_the_registry_holds_caches_weakly():
    @mcache(name="reg.temporary")
    def temporary(x):
        return x

    assert "reg.temporary" in list_caches()
    del temporary
    gc.collect()
    assert "reg.temporary" not in list_caches()
    with pytest.raises(KeyError, match=r"no cache named 'reg\.temporary'"):
        get_stats("reg.temporary")
