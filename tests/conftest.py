"""Shared helpers: a call counter that records every real execution."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest


class Calls:
    """Counts real executions of a cached function, per argument tuple."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[Any] = []

    def __call__(self, *args: Any) -> None:
        with self._lock:
            self.log.append(args)

    @property
    def count(self) -> int:
        return len(self.log)

    def per_args(self) -> Counter[Any]:
        return Counter(self.log)


@pytest.fixture
def calls() -> Calls:
    return Calls()
