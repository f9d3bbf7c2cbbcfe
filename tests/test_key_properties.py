"""Properties of the keys over generated values: equal values always share a key,
unequal values of the same type never do, and persistent keys are the same in another
process under another PYTHONHASHSEED."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import sys
import warnings
from typing import Any

from conftest import run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning
from twat_cache import bcache, mcache

# NaN is left out: NaN != NaN, yet every NaN is one key by design (tests/test_key_rules.py).
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=12,
)


@mcache
def in_memory(value: Any) -> None:
    return None


@bcache(folder_name="property-keys")
def on_disk(value: Any) -> None:
    return None


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(values)
def test_equal_values_share_a_key(value: Any) -> None:
    twin = copy.deepcopy(value)
    assert twin == value
    assert in_memory.cache_key(value) == in_memory.cache_key(twin)
    assert on_disk.cache_key(value) == on_disk.cache_key(twin)


@PROPERTY
@given(values, values)
def test_unequal_values_of_one_type_never_share_a_key(a: Any, b: Any) -> None:
    if type(a) is not type(b) or a == b:
        return
    assert on_disk.cache_key(a) != on_disk.cache_key(b)
    assert in_memory.cache_key(a) != in_memory.cache_key(b)


def test_persistent_keys_are_the_same_in_another_process(tmp_path: Any) -> None:
    with warnings.catch_warnings():  # a fixed sample on purpose, not a search
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        drawn = [values.example() for _ in range(200)]
    drawn = [v for v in drawn if not (isinstance(v, float) and math.isnan(v))]
    sample = tmp_path / "sample.pickle"
    sample.write_bytes(pickle.dumps(drawn))
    here = [on_disk.cache_key(v) for v in drawn]
    code = f"""
import json, pickle, sys
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_key_properties import on_disk
drawn = pickle.loads(open({str(sample)!r}, "rb").read())
print(json.dumps([on_disk.cache_key(v) for v in drawn]))
"""
    there = json.loads(run_python(code, env={"PYTHONHASHSEED": "12345"}))
    assert here == there
    assert sys.flags.hash_randomization or os.environ.get("PYTHONHASHSEED") != "12345"
