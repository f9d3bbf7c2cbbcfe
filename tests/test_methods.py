"""Methods: one cache per instance, held weakly; classmethods and staticmethods
(crates/twat-cache-python/src/instances.rs)."""

from __future__ import annotations

import gc
import weakref

from twat_cache import mcache


class Model:
    def __init__(self, factor, calls):
        self.factor = factor
        self.calls = calls

    @mcache
    def scale(self, x):
        self.calls(id(self), x)
        return x * self.factor

    @classmethod
    @mcache
    def describe(cls, x):
        return f"{cls.__name__}:{x}"

    @staticmethod
    @mcache
    def double(x):
        return 2 * x

    @mcache
    @classmethod
    def outer_classmethod(cls, x):
        return (cls.__name__, x)


def test_instances_never_share_entries(calls):
    a, b = Model(2, calls), Model(3, calls)
    assert a.scale(5) == 10
    assert b.scale(5) == 15
    assert a.scale(5) == 10 and b.scale(5) == 15
    assert calls.count == 2
    assert a.scale.cache_info().hits == 1
    assert Model.scale.cache_info().hits == 2


def test_cache_clear_on_a_bound_method_clears_that_instance_only(calls):
    a, b = Model(2, calls), Model(3, calls)
    a.scale(1)
    b.scale(1)
    a.scale.cache_clear()
    a.scale(1)
    b.scale(1)
    assert calls.per_args()[(id(a), 1)] == 2
    assert calls.per_args()[(id(b), 1)] == 1


def test_instances_are_held_weakly_and_their_entries_go_with_them(calls):
    a = Model(2, calls)
    a.scale(1)
    a.scale(2)
    assert Model.scale.cache_info().currsize >= 2
    before = Model.scale.cache_info().currsize
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None, "the cache kept the instance alive"
    assert Model.scale.cache_info().currsize == before - 2


def test_classmethods_and_staticmethods(calls):
    assert Model.describe(1) == "Model:1"
    assert Model.describe(1) == "Model:1"
    assert Model.double(4) == 8 and Model(1, calls).double(4) == 8
    assert Model.outer_classmethod(3) == ("Model", 3)
    assert Model.outer_classmethod(3) == ("Model", 3)
    assert Model.__dict__["double"].__func__.cache_info().hits == 1
    assert Model.__dict__["outer_classmethod"].__func__.cache_info().hits == 1


def test_bound_method_metadata_and_controls(calls):
    m = Model(2, calls)
    assert m.scale.__name__ == "scale"
    assert m.scale.__self__ is m
    assert m.scale.cache_key(4) == 4
    m.scale.cache_set(99, 4)
    assert m.scale(4) == 99
    assert m.scale.cache_delete(4) is True
    assert m.scale(4) == 8


def test_methods_of_instances_without_weakref_are_cached_with_self_in_the_key(calls):
    class Slotted:
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

        @mcache
        def get(self, x):
            calls(x)
            return self.n + x

    s, t = Slotted(1), Slotted(10)
    assert s.get(1) == 2 and s.get(1) == 2
    assert t.get(1) == 11 and t.get(1) == 11  # another instance: its own entry
    assert calls.count == 2
    assert s.get.cache_delete(1) is True and s.get(1) == 2
    assert calls.count == 3


def test_methods_of_int_subclasses_are_keyed_by_value(calls):
    class Meters(int):
        @mcache
        def doubled(self):
            calls(int(self))
            return Meters(self * 2)

    assert Meters(3).doubled() == 6 and Meters(3).doubled() == 6  # equal values share
    assert Meters(4).doubled() == 8
    assert calls.count == 2
