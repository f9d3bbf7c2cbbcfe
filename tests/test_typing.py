"""Type-checked by mypy (make lint) and run by pytest: the decorators keep signatures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twat_cache import CacheInfo, mcache


@mcache
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@mcache(maxsize=8, ttl=1.5, policy="lfu")
def scale(x: float, factor: int = 2) -> float:
    return x * factor


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
