"""Bad configuration fails at decoration time, naming the parameter, the value and what
is accepted (python/twat_cache/_options.py, python/twat_cache/exceptions.py)."""

from __future__ import annotations

import pytest
from twat_cache import ConfigurationError, TwatCacheError, mcache


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maxsize": -1}, r"invalid maxsize=-1: expected a non-negative int, or None"),
        ({"maxsize": "10"}, r"invalid maxsize='10'"),
        ({"maxsize": True}, r"invalid maxsize=True"),
        ({"ttl": "soon"}, r"invalid ttl='soon': expected a positive number of seconds"),
        ({"ttl": 0}, r"invalid ttl=0"),
        ({"ttl": -5.0}, r"invalid ttl=-5.0"),
        ({"policy": "mru"}, r"invalid policy='mru': expected one of 'lru', 'lfu', 'fifo', 'rr', 'tinylfu'"),
        ({"key": 42}, r"invalid key=42: expected a callable"),
        ({"typed": "yes"}, r"invalid typed='yes': expected True or False"),
        ({"ignore": 3}, r"invalid ignore=3"),
        ({"name": ""}, r"invalid name=''"),
    ],
)
def test_bad_options_fail_at_decoration_time(kwargs, message):
    with pytest.raises(ConfigurationError, match=message) as info:
        mcache(**kwargs)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TwatCacheError)


def test_ignore_must_name_parameters():
    def f(a, b):
        return a

    with pytest.raises(ConfigurationError, match=r"'c' is not a parameter; expected names among \('a', 'b'\)"):
        mcache(ignore=("c",))(f)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'max_size'"):
        mcache(max_size=3)  # type: ignore[call-overload]


def test_policy_names_are_case_insensitive():
    @mcache(policy="TinyLFU")
    def f(x):
        return x

    assert f.cache_parameters()["policy"] == "tinylfu"


@pytest.mark.parametrize("deco", ["bcache", "fcache"])
def test_an_unusable_folder_never_breaks_the_program(tmp_path, caplog, deco):
    import time

    import twat_cache

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder's parent should be")
    runs = []

    @getattr(twat_cache, deco)(folder_name=str(blocker / "cache"))  # decorating does not raise
    def double(x):
        runs.append(x)
        return 2 * x

    assert double(2) == 4 and double(2) == 4
    assert runs == [2, 2]  # called through, not cached
    assert double.cache_stats()["store_errors"] >= 1
    assert "cannot be used" in caplog.text
    assert caplog.text.count("cannot be used") == 1  # warned once
    blocker.unlink()  # the folder becomes usable: the cache starts storing
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and double.cache_info().hits == 0:
        double(3)
        time.sleep(0.05)
    assert double.cache_info().hits >= 1
    assert (blocker / "cache" / "index.sqlite").exists()
