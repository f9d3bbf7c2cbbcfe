"""Type-checked by mypy (make lint) and run by pytest: the decorators keep signatures."""

from __future__ import annotations

import asyncio
import tempfile
from typing import TYPE_CHECKING

from twat_cache import Cache, CacheContext, CacheInfo, acache, bcache, create_cache_config, fcache, mcache, ucache


@mcache
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@mcache(maxsize=8, ttl=1.5, policy="lfu")
def scale(x: float, factor: int = 2) -> float:
    return x * factor


@bcache(folder_name=tempfile.mkdtemp(), ttl=60)
def words(text: str) -> list[str]:
    return text.split()


@fcache(folder_name=tempfile.mkdtemp(), compress="lz4")
def repeat(data: bytes, times: int) -> bytes:
    return data * times


def test_persistent_signatures_survive_decoration() -> None:
    split: list[str] = words("a b")
    joined: bytes = repeat(b"ab", 2)
    assert split == ["a", "b"] and joined == b"abab"
    assert words.cache_info().misses == 1
    if TYPE_CHECKING:
        words(1)  # type: ignore[arg-type]
        repeat("ab", 2)  # type: ignore[arg-type]


def test_signatures_survive_decoration() -> None:
    text: str = greet("ann")
    number: float = scale(1.5, factor=3)
    info: CacheInfo = greet.cache_info()
    assert text == "hello ann!" and number == 4.5
    assert info.misses == 1
    assert greet.cache_delete("ann") is True
    if TYPE_CHECKING:
        # mypy must reject these; they never run.
        greet(1)  # type: ignore[arg-type]
        scale("x")  # type: ignore[arg-type]


@acache(ttl=5)
async def shout(word: str) -> str:
    return word.upper()


@ucache(config=create_cache_config(ttl=10))
def halve(x: int) -> float:
    return x / 2


def test_async_and_universal_signatures_survive_decoration() -> None:
    loud: str = asyncio.run(shout("hi"))
    half: float = halve(3)
    assert loud == "HI" and half == 1.5
    assert halve.cache_info().misses == 1
    with CacheContext(engine_name="memory") as cache:
        handle: Cache = cache
        handle.set("k", 1)
        assert handle.get("k") == 1
    if TYPE_CHECKING:
        shout(1)  # type: ignore[arg-type,unused-coroutine]
        halve("x")  # type: ignore[arg-type]
