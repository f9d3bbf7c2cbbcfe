"""A persistent folder over its life: value files left by a writer killed between
placing its file and committing its row are swept, the bytes the index counts are the
bytes on disk, and a folder removed under a running process is noticed and started
afresh."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import run_python
from twat_cache import bcache, fcache

WAIT = 30.0


def data_files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder / "data")): p.stat().st_size for p in (folder / "data").glob("*/*")}


def indexed(folder: Path) -> tuple[dict[str, int], int]:
    """The value files the index names, with their sizes, and its byte total (which
    must be the sum of every entry's size, inline ones included)."""
    with sqlite3.connect(folder / "index.sqlite") as db:
        files = dict(db.execute("SELECT file, size FROM entries WHERE file IS NOT NULL"))
        (total,) = db.execute("SELECT bytes FROM totals").fetchone()
        (summed,) = db.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()
    assert total == summed
    return files, total


def test_files_of_killed_writers_are_swept_and_the_byte_total_is_what_is_on_disk(tmp_path: Any) -> None:
    folder = tmp_path / "arrays"
    code = f"""
import numpy as np
import pytest
from twat_cache import bcache, fcache
@fcache(folder_name={str(folder)!r})
def ramp(n):
    return np.arange(n, dtype=np.float64)
for n in (1000, 2000, 3000):
    ramp(n)
"""
    run_python(code)
    placed = data_files(folder)
    assert len(placed) == 3
    # What a writer SIGKILLed after placing its file and before committing leaves: a
    # whole value file in data/ that no row names (its mtime is old once the next
    # process looks).
    original = next(iter(placed))
    key_hex = original.split("/")[1].split("-")[0]
    orphan = folder / "data" / original[:2] / f"{key_hex}-{'0' * 16}.twc"  # another write's name
    shutil.copy(folder / "data" / original, orphan)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    # The next process to open the folder sweeps it.
    run_python(code + "\nimport time; time.sleep(1.0)\n")
    deadline = time.monotonic() + WAIT
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not orphan.exists()
    files, total = indexed(folder)
    assert data_files(folder) == files
    assert sum(files.values()) == total


def test_purge_expired_sweeps_too(tmp_path: Any) -> None:
    @fcache(folder_name=str(tmp_path / "purge"))
    def ramp(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)

    ramp(500)
    folder = tmp_path / "purge"
    (bucket,) = [p for p in (folder / "data").iterdir() if p.is_dir()]
    stray = bucket / f"{bucket.name}{'f' * 30}-{'0' * 16}.twc"
    stray.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stray, (old, old))
    young = bucket / f"{bucket.name}{'e' * 30}-{'0' * 16}.twc"
    young.write_bytes(b"y")  # a writer may be about to commit it: left alone
    ramp.purge_expired()
    assert not stray.exists() and young.exists()
    assert ramp(500).shape == (500,) and ramp.cache_info().hits == 1


@pytest.mark.parametrize("deco", [bcache, fcache], ids=["bcache", "fcache"])
def test_a_folder_removed_under_a_running_process_starts_afresh(tmp_path: Any, deco: Any) -> None:
    folder = tmp_path / "wiped"
    runs: list[int] = []

    @deco(folder_name=str(folder))
    def ramp(n: int) -> np.ndarray:
        runs.append(n)
        return np.arange(n, dtype=np.float64)

    ramp(100)
    ramp(100)
    assert runs == [100]
    for _ in range(50):  # the user wipes the cache (`rm -rf`, which races with SQLite's own files)
        shutil.rmtree(folder, ignore_errors=True)
        if not (folder / "index.sqlite").exists():
            break
    deadline = time.monotonic() + WAIT
    while not (folder / "index.sqlite").exists() and time.monotonic() < deadline:
        ramp(100)  # the deleted index may answer for a moment, then a new one is made
        time.sleep(0.05)
    assert (folder / "index.sqlite").exists()
    assert len(runs) >= 2, "the wiped entry went on being served"
    ramp(100)
    settled = len(runs)
    ramp(100)
    ramp(100)
    assert len(runs) == settled  # cached again, in the new folder
    files, total = indexed(folder)
    assert data_files(folder) == files and total > 0


def test_a_forged_index_row_never_reaches_a_file_outside_the_folder(tmp_path: Any) -> None:
    folder = tmp_path / "shared"
    victim = tmp_path / "victim.txt"
    victim.write_text("must survive")
    runs: list[int] = []

    @fcache(folder_name=str(folder))
    def ramp(n: int) -> np.ndarray:
        runs.append(n)
        return np.arange(n, dtype=np.float64)

    ramp(10)
    with sqlite3.connect(folder / "index.sqlite") as db:  # another user of the folder forges the row
        db.execute("UPDATE entries SET file = ?", ("../../victim.txt",))
    assert ramp(10).tolist() == list(range(10))
    assert runs == [10, 10]  # a miss, recomputed
    assert victim.read_text() == "must survive"
    ramp.cache_clear()
    ramp.purge_expired()
    assert victim.read_text() == "must survive"
