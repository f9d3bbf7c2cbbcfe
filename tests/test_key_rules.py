"""Every content rule of the keys, in every engine: two unequal values never share a key
(the second call runs the function and returns its own result), equal ones do, and
values the cache cannot see all of are refused with a TypeError that says why."""

from __future__ import annotations

import array
import collections
import dataclasses
import enum
import fractions
import warnings
from typing import Any

import numpy as np
import pytest
from twat_cache import bcache, fcache, mcache

ENGINES = {"mcache": mcache, "bcache": bcache, "fcache": fcache}


def cached_repr(engine: str) -> Any:
    """A cached function whose result shows exactly what it was given."""
    runs: list[str] = []

    def show(value: Any) -> str:
        text = f"{type(value).__name__}:{value!r}"
        if isinstance(value, np.ma.MaskedArray):
            text += f" mask={np.ma.getmaskarray(value).tolist()} fill={value.fill_value!r} hard={value.hardmask}"
        elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
            text += f" attrs={sorted(vars(value).items())!r}" if hasattr(value, "__dict__") else ""
        runs.append(text)
        return text

    show.__qualname__ = f"show_{engine}_{id(runs)}"
    return ENGINES[engine](show), runs


@dataclasses.dataclass
class Point:
    x: int
    label: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(eq=False)
class Handle:
    x: int


class Tagged(list):  # a Python subclass: its attributes are part of its value here
    pass


Pair = collections.namedtuple("Pair", "a b")


class Slotted(list):
    __slots__ = ("unit",)


class Color(enum.Enum):
    RED = 1
    CRIMSON = 2


class Perm(enum.Flag):
    R = 4
    W = 2


def masked(mask: list[int], fill: Any = None, hard: bool = False) -> np.ma.MaskedArray:
    a = np.ma.array([1, 2, 3], mask=mask, hard_mask=hard)
    if fill is not None:
        a.fill_value = fill
    return a


def tagged(meta: str) -> Tagged:
    t = Tagged([1, 2])
    t.meta = meta  # type: ignore[attr-defined]
    return t


def point(label: str) -> Point:
    return Point(1, label)


strided = np.arange(12.0).reshape(3, 4)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # numpy discourages matrix; users still pass it
    matrix = np.matrix([[1, 2]])

# (rule, first value, an unequal second value)
UNEQUAL = [
    ("masked array: mask", masked([0, 0, 1]), masked([0, 1, 0])),
    ("masked array: fill value", masked([0, 0, 1], fill=7), masked([0, 0, 1], fill=8)),
    ("masked array: hard mask", masked([0, 0, 1]), masked([0, 0, 1], hard=True)),
    ("masked array vs plain", masked([0, 0, 0]), np.array([1, 2, 3])),
    ("ndarray: dtype", np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.uint32)),
    ("ndarray: byte order", np.array([1.0], dtype="<f8"), np.array([1.0], dtype="<f8").byteswap().view(">f8")),
    ("ndarray: shape", np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2)),
    ("ndarray: strided view", strided[:, ::2], strided[:, 1::2]),
    ("ndarray: 0-d", np.array(5.0), np.array(6.0)),
    ("ndarray: datetime unit", np.array([1], dtype="datetime64[D]"), np.array([1], dtype="datetime64[s]")),
    ("ndarray: datetime value", np.array(["2020-01-01"], dtype="M8[D]"), np.array(["2020-01-02"], dtype="M8[D]")),
    ("ndarray: timedelta", np.array([1], dtype="m8[s]"), np.array([2], dtype="m8[s]")),
    (
        "ndarray: structured field names",
        np.zeros(2, dtype=[("a", "<i4"), ("b", "<i4")]),
        np.zeros(2, dtype=[("b", "<i4"), ("a", "<i4")]),
    ),
    (
        "ndarray: structured field types",
        np.zeros(1, dtype=[("a", "<i4")]),
        np.zeros(1, dtype=[("a", "<f4")]),
    ),
    ("ndarray vs matrix", np.array([[1, 2]]), matrix),
    ("bytearray", bytearray(b"ab"), bytearray(b"ac")),
    ("memoryview", memoryview(bytearray(b"ab")), memoryview(bytearray(b"ac"))),
    ("memoryview: format", memoryview(bytearray(b"abcd")), memoryview(bytearray(b"abcd")).cast("i")),
    ("array.array", array.array("i", [1, 2]), array.array("i", [1, 3])),
    ("array.array: typecode", array.array("i", [1, 2]), array.array("I", [1, 2])),
    ("list subclass: attributes", tagged("a"), tagged("b")),
    ("list subclass vs list", tagged("a"), [1, 2]),
    ("namedtuple holding a list", Pair(1, [2]), Pair(1, [3])),
    ("OrderedDict: order", collections.OrderedDict(a=1, b=2), collections.OrderedDict(b=2, a=1)),
    (
        "defaultdict: factory",
        collections.defaultdict(int, {"a": 1}),
        collections.defaultdict(list, {"a": 1}),
    ),
    ("dataclass: field left out of ==", point("a"), point("b")),
    ("dataclass eq=False", Handle(1), Handle(2)),
    ("enum members", Color.RED, Color.CRIMSON),
    ("flag combinations", Perm.R | Perm.W, Perm.R),
    ("numpy scalar", np.float64(1.5), np.float64(2.5)),
    ("numpy datetime scalar", np.datetime64("2020-01-01"), np.datetime64("2020-01-02")),
    ("complex", complex(1, 2), complex(1, 3)),
    ("Fraction", fractions.Fraction(1, 3), fractions.Fraction(2, 3)),
    ("range", range(3), range(4)),
    ("slice", slice(1, 2), slice(1, 3)),
    ("NaN vs a number", float("nan"), 1.0),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("rule", "first", "second"), UNEQUAL, ids=[u[0] for u in UNEQUAL])
def test_unequal_values_never_share_a_key(cache_dir: Any, engine: str, rule: str, first: Any, second: Any) -> None:
    f, runs = cached_repr(engine)
    a, b = f(first), f(second)
    assert len(runs) == 2, f"{rule}: the second value was served the first one's result"
    assert a == runs[0] and b == runs[1]
    assert a != b


# (rule, a value, an equal value made separately)
EQUAL = [
    ("ndarray", lambda: np.arange(10.0)),
    ("ndarray: strided", lambda: np.arange(12.0).reshape(3, 4)[:, ::2]),
    ("ndarray: 0-d", lambda: np.array(5.0)),
    ("ndarray: datetime", lambda: np.array(["2020-01-01", "2021-06-30"], dtype="M8[D]")),
    ("masked array", lambda: masked([0, 1, 0], fill=5)),
    ("list subclass", lambda: tagged("a")),
    ("namedtuple holding a list", lambda: Pair(1, [2])),
    ("tuple holding a list", lambda: (None, [1])),
    ("OrderedDict", lambda: collections.OrderedDict(a=1, b=2)),
    ("defaultdict", lambda: collections.defaultdict(int, {"a": 1})),
    ("dataclass", lambda: point("a")),
    ("complex", lambda: complex(1, 2)),
    ("Fraction", lambda: fractions.Fraction(1, 3)),
    ("range", lambda: range(0, 10, 2)),
    ("slice", lambda: slice(1, None, 2)),
    ("NaN", lambda: float("nan")),
    ("numpy NaN", lambda: np.float64("nan")),
    ("structured array", lambda: np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("rule", "make"), EQUAL, ids=[e[0] for e in EQUAL])
def test_equal_values_share_a_key(cache_dir: Any, engine: str, rule: str, make: Any) -> None:
    f, runs = cached_repr(engine)
    first, second = make(), make()
    assert first is not second
    assert f(first) == f(second)
    assert len(runs) == 1, f"{rule}: an equal value made separately missed"


REFUSED = [
    ("ndarray subclass", lambda: np.arange(3).view(type("Unit", (np.ndarray,), {})), "subclass of numpy.ndarray"),
    ("object array", lambda: np.array([[1], [2, 3]], dtype=object), "Python objects"),
    ("slots subclass", lambda: Slotted([1]), "__slots__"),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("rule", "make", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_values_not_fully_visible_are_refused(cache_dir: Any, engine: str, rule: str, make: Any, why: str) -> None:
    f, runs = cached_repr(engine)
    with pytest.raises(TypeError, match=why) as caught:
        f(make())
    assert "value" in str(caught.value) and "key=" in str(caught.value)
    assert runs == []


def test_an_object_array_whose_lists_change_is_never_served_stale(cache_dir: Any) -> None:
    inner = [1]
    arr = np.empty(1, dtype=object)
    arr[0] = inner
    f, runs = cached_repr("mcache")
    with pytest.raises(TypeError):
        f(arr)
    assert runs == []


@pytest.mark.parametrize("engine", ENGINES)
def test_every_nan_is_one_key_in_every_engine(cache_dir: Any, engine: str) -> None:
    f, runs = cached_repr(engine)
    f(float("nan"))
    f(float("nan"))
    f((1, float("nan")))
    f((1, float("nan")))
    f([float("nan")])
    f([float("nan")])
    assert len(runs) == 3
