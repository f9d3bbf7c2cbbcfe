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


@pytest.fixture
def cache_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh ``$TWAT_CACHE_DIR`` for one test; persistent caches put their folders here."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TWAT_CACHE_DIR", str(root))
    monkeypatch.delenv("TWAT_CACHE_SECRET", raising=False)
    return root


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Runs ``code`` in a separate Python process (the same interpreter and package);
    returns its stdout, and fails the test with its stderr if it fails."""
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"subprocess failed ({done.returncode}):\n{done.stderr}"
    return done.stdout
