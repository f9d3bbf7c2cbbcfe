"""Every Python code block in README.md runs, and every docstring example passes."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def docs_blocks() -> list[tuple[str, str]]:
    return [
        (page.name, code) for page in sorted((ROOT / "docs").glob("*.md")) for code in BLOCK.findall(page.read_text())
    ]


def test_readme_has_python_examples():
    assert len(readme_blocks()) >= 4


@pytest.fixture
def redis_env(redis_url, monkeypatch):
    """Examples reach Redis through $TWAT_CACHE_REDIS_URL, as users' code does."""
    monkeypatch.setenv("TWAT_CACHE_REDIS_URL", redis_url)
    return redis_url


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(index, cache_dir, redis_env):
    code = readme_blocks()[index]
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": f"readme_{index}"})


@pytest.mark.parametrize(("page", "code"), docs_blocks())
def test_docs_block_runs(page, code, cache_dir, redis_env):
    exec(compile(code, f"docs/{page}", "exec"), {"__name__": f"docs_{page}"})


@pytest.mark.parametrize(
    "module",
    [
        "twat_cache",
        "twat_cache.memory",
        "twat_cache.async_memory",
        "twat_cache.config",
        "twat_cache.engines",
        "twat_cache.universal",
        "twat_cache.context",
        "twat_cache.disk",
        "twat_cache.files",
        "twat_cache._paths",
        "twat_cache._fingerprint",
        "twat_cache._registry",
        "twat_cache._signature",
        "twat_cache._types",
        "twat_cache.exceptions",
        "twat_cache.redis",
        "twat_cache._serializers",
        "twat_cache._options",
        "twat_cache._freshness",
        "twat_cache.cli",
        "twat_cache.cli._units",
        "twat_cache.cli._filters",
        "twat_cache.cli._term",
        "twat_cache.cli._redis",
    ],
)
def test_docstring_examples(module, redis_env):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_demo_runs_and_shows_hits():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True, check=True
    ).stdout
    assert "CacheInfo(hits=10000, misses=1, maxsize=128, currsize=1)" in out
    assert "__main__.fib: hits=" in out
    assert "the same call in a new process:" in out and "CacheInfo(hits=1, misses=0" in out
    assert "demo.simulation: hits=100 misses=1" in out
    assert "rcache (Redis / Valkey, shared by machines):" in out
    assert "cache_stats: {'hits': 200, 'misses': 1," in out
    assert "server killed: render('about') still returns '<h1>about</h1>'" in out
    ls = out[out.index("$ twat-cache ls") :].splitlines()
    assert ls[1].split()[:2] == ["NAME", "ENGINE"]
    assert any(line.split()[:2] == ["demo.profile", "bcache"] for line in ls)
    assert any(line.split()[:2] == ["demo.simulation", "fcache"] for line in ls)
    assert "caches," in ls[-1] and "on disk under" in ls[-1]
