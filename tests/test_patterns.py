"""The six patterns of README.md ("Six patterns"): each one hits (executions are
counted by the block itself) and the persistent ones persist into a second process."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_python

README = Path(__file__).resolve().parent.parent / "README.md"


def six_patterns() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if b.startswith("# six-patterns")]
    return block


def test_the_six_patterns_hit_and_persist_across_processes(cache_dir):
    env = {"TWAT_CACHE_DIR": str(cache_dir)}
    first = run_python(six_patterns(), env=env).strip()
    assert first == ("{'square': 1, 'user': 1, 'smooth': 1, 'fetch': 1, 'report': 1} visits: 1")
    # A new process: memory caches start empty; every persistent result is on disk.
    second = run_python(six_patterns(), env=env).strip()
    assert second == "{'square': 1, 'user': 0, 'smooth': 0, 'fetch': 1, 'report': 0} visits: 2"
    for folder in ("user_data_cache", "array_processing_cache", "session_cache"):
        assert (cache_dir / folder / "index.sqlite").exists(), folder
