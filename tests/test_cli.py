"""The ``twat-cache`` command line, run as a separate process against real caches that
other processes filled: its tables and JSON, exit codes, ``--dry-run``, ``verify`` on a
flipped byte, ``stats`` summed over processes, safety, progress and ``Ctrl-C``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_python, until

FILL = """
import sys
import numpy as np
from twat_cache import bcache, fcache
root = sys.argv[1] if len(sys.argv) > 1 else {root!r}

@bcache(folder_name=root + "/small", name="app.small")
def small(x):
    return {{"x": x, "pad": "v" * 50}}

@bcache(folder_name=root + "/small", name="app.other")
def other(x):
    return x + 1

@fcache(folder_name=root + "/arrays", name="app.arrays")
def arrays(n):
    return np.arange(n, dtype=np.float64)

for i in range({n}):
    small(i)
    small(i)
for i in range(3):
    other(i)
for n in (1_000, 50_000):
    arrays(n)
"""


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120) -> Any:
    """Runs ``python -m twat_cache ARGS`` in its own process, without a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "twat_cache", *args],
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )


def as_json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema_version"] == 1
    return doc


def fill(root: Path, n: int = 10) -> None:
    run_python(FILL.format(root=str(root), n=n))


def caches_of(root: Path) -> dict[str, Any]:
    doc = as_json(cli("ls", "--dir", str(root), "--json"))
    return {c["name"]: c for f in doc["folders"] for c in f["caches"]}


def snapshot(root: Path) -> dict[str, Any]:
    """Every file under ``root`` with its size and mtime, and for an index its rows (a
    checkpoint of the write-ahead log rewrites the index file with the same content)."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        if p.name == "index.sqlite" and p.read_bytes().startswith(b"SQLite format 3"):
            with sqlite3.connect(p) as db:
                out[str(p.relative_to(root))] = [
                    db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("entries", "totals", "stats")
                ]
        else:
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


def rows(folder: Path) -> int:
    with sqlite3.connect(folder / "index.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])


def consistent(folder: Path) -> None:
    """The index's byte total is the sum of its rows, and every file row has its file."""
    with sqlite3.connect(folder / "index.sqlite") as db:
        total = db.execute("SELECT bytes FROM totals").fetchone()[0]
        summed = db.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()[0]
        files = [r[0] for r in db.execute("SELECT file FROM entries WHERE file IS NOT NULL")]
    assert total == summed
    for f in files:
        assert (folder / "data" / f).is_file(), f


# ---------------------------------------------------------------- entry points


def test_console_script_and_module_both_run(cache_dir):
    script = Path(sys.executable).with_name("twat-cache")
    assert script.exists(), "pip install put the console script next to the interpreter"
    fill(cache_dir)
    by_script = subprocess.run([str(script), "ls", "-q"], capture_output=True, text=True, check=False)
    by_module = cli("ls", "-q")
    assert by_script.returncode == by_module.returncode == 0, by_script.stderr + by_module.stderr
    assert by_script.stdout == by_module.stdout
    assert sorted(by_module.stdout.split()) == ["app.arrays", "app.other", "app.small"]


@pytest.mark.parametrize("command", ["ls", "info", "stats", "rm", "prune", "verify"])
def test_every_command_has_help(command):
    done = cli(command, "--help")
    assert done.returncode == 0
    assert f"usage: twat-cache {command}" in done.stdout
    assert "--json" in done.stdout


def test_version():
    import twat_cache

    done = cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"twat-cache {twat_cache.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        [],
        ["ls", "--sort", "colour"],
        ["ls", "--filter", "size>>1"],
        ["ls", "--filter", "weight>3"],
        ["rm"],
        ["rm", "x", "--older-than", "soon"],
        ["prune", "--max-size", "big"],
    ],
)
def test_bad_arguments_give_one_line_and_status_2(args, cache_dir):
    done = cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


# ---------------------------------------------------------------- ls and info


def test_ls_shows_what_other_processes_stored(cache_dir):
    fill(cache_dir, n=12)
    doc = as_json(cli("ls", "--json"))
    assert doc["root"] == os.path.realpath(cache_dir)
    folders = {f["name"]: f for f in doc["folders"]}
    assert set(folders) == {"small", "arrays"}
    small = {c["name"]: c for c in folders["small"]["caches"]}
    assert small["app.small"]["entries"] == 12 and small["app.other"]["entries"] == 3
    assert small["app.small"]["engine"] == "bcache" and small["app.small"]["policy"] == "lru"
    assert small["app.small"]["max_bytes"] == 2**30
    assert small["app.small"]["stats"]["hits"] == 12 and small["app.small"]["stats"]["misses"] == 12
    assert folders["small"]["entries"] == 15
    assert folders["small"]["bytes"] == small["app.small"]["bytes"] + small["app.other"]["bytes"]
    arrays = folders["arrays"]["caches"][0]
    assert arrays["engine"] == "fcache" and arrays["entries"] == 2
    assert arrays["bytes"] > 50_000 * 8  # the 50,000 float64 array is in there
    assert folders["arrays"]["disk_bytes"] >= arrays["bytes"]
    assert doc["summary"]["caches"] == 3 and doc["summary"]["entries"] == 17

    text = cli("ls")
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ENGINE", "ENTRIES", "SIZE"]
    assert any(line.split()[:3] == ["app.small", "bcache", "12"] for line in lines)
    assert lines[-1].startswith("2 folders, 3 caches, 17 entries")
    assert "\033[" not in text.stdout  # no colour into a pipe


def test_ls_sorts_filters_and_lists_names(cache_dir):
    fill(cache_dir)
    by_size = cli("ls", "--sort", "size").stdout.splitlines()
    assert by_size[1].startswith("arrays/")
    assert cli("ls", "-q", "--filter", "size>100K").stdout.split() == ["app.arrays"]
    assert cli("ls", "-q", "--filter", "entries<5").stdout.split() == ["app.arrays", "app.other"]
    assert cli("ls", "-q", "--filter", "accessed>30d").stdout.split() == []
    assert cli("ls", "-q", "--filter", "accessed<1h", "--filter", "hits>5").stdout.split() == ["app.small"]


def test_info_shows_the_largest_entries(cache_dir):
    fill(cache_dir)
    doc = as_json(cli("info", "app.arrays", "--json"))
    (info,) = doc["caches"]
    assert info["path"] == os.path.realpath(cache_dir / "arrays")
    sizes = [e["bytes"] for e in info["largest"]]
    assert len(sizes) == 2 and sizes == sorted(sizes, reverse=True)
    assert all(len(e["key"]) == 32 for e in info["largest"])
    text = cli("info", "app.arrays").stdout
    assert "largest entries:" in text and info["largest"][0]["key"] in text


def test_a_name_that_matches_nothing_is_refused(cache_dir):
    fill(cache_dir)
    done = cli("info", "no.such.cache")
    assert done.returncode == 2
    assert "no cache is named 'no.such.cache'" in done.stderr


# ---------------------------------------------------------------- stats across processes


STATS_WORKER = """
import sys
from twat_cache import bcache
@bcache(folder_name=sys.argv[1], name="shared.f")
def f(x):
    return x * 10
for x in sys.argv[2].split(","):
    f(int(x))
print(f.cache_stats()["hits"], f.cache_stats()["misses"])
"""


def _run_worker(folder: Path, xs: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", STATS_WORKER, str(folder), xs], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_stats_sum_every_process(cache_dir):
    folder = cache_dir / "shared"
    assert _run_worker(folder, "1,2,3,1,1") == ["2", "3"]  # 3 misses, 2 hits
    assert _run_worker(folder, "1,2,3,4") == ["3", "1"]  # the first three hit what the other stored
    doc = as_json(cli("stats", "--json", "--dir", str(folder)))
    (row,) = doc["caches"]
    assert row["name"] == "shared.f"
    assert (row["stats"]["hits"], row["stats"]["misses"]) == (5, 4)
    assert row["stats"]["bytes_written"] > 0 and row["stats"]["bytes_read"] > 0
    assert doc["total"]["hits"] == 5
    text = cli("stats", "--dir", str(folder)).stdout
    assert text.splitlines()[1].split()[:4] == ["shared.f", "5", "4", "56%"]

    # cache_stats() in a third process sees the totals of all of them, and its own.
    out = run_python(
        textwrap.dedent(
            f"""
            from twat_cache import bcache
            @bcache(folder_name={str(folder)!r}, name="shared.f")
            def f(x):
                return x * 10
            f(4)
            s = f.cache_stats()
            print(s["hits"], s["all_processes"]["hits"], s["all_processes"]["misses"])
            """
        )
    )
    assert out.split() == ["1", "6", "4"]


def test_stats_zero_resets_the_totals(cache_dir):
    folder = cache_dir / "shared"
    _run_worker(folder, "1,1,1")
    assert cli("stats", "--zero", "--dir", str(folder)).returncode == 2  # no terminal, no -y
    assert as_json(cli("stats", "--json", "--dir", str(folder)))["total"]["hits"] == 2
    done = cli("stats", "--zero", "-y", "--dir", str(folder))
    assert done.returncode == 0 and "zeroed" in done.stdout
    assert as_json(cli("stats", "--json", "--dir", str(folder)))["total"]["hits"] == 0
    _run_worker(folder, "1")
    assert as_json(cli("stats", "--json", "--dir", str(folder)))["total"]["hits"] == 1


def test_a_process_killed_between_folds_keeps_what_it_folded(cache_dir):
    """SIGKILL skips the exit fold: what the process folded every few seconds stays."""
    folder = cache_dir / "killed"
    code = f"""
import sys, time
from twat_cache import bcache
@bcache(folder_name={str(folder)!r}, name="k.f")
def f(x):
    return x
f(1); f(1); f(1)
print("ready", flush=True)
time.sleep(600)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        until(
            lambda: as_json(cli("stats", "--json", "--dir", str(folder)))["total"]["hits"] == 2,
            "the periodic fold",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert as_json(cli("stats", "--json", "--dir", str(folder)))["total"]["misses"] == 1


# ---------------------------------------------------------------- verify


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_finds_a_byte_flipped_on_disk_and_repairs(cache_dir):
    fill(cache_dir)
    assert cli("verify").returncode == 0
    files = sorted((cache_dir / "arrays" / "data").rglob("*.twc"), key=lambda p: p.stat().st_size)
    _flip(files[-1])
    done = cli("verify")
    assert done.returncode == 1
    assert "damaged arrays/app.arrays" in done.stdout and "checksum mismatch" in done.stdout
    assert "15 entries: 14 sound, 1 damaged" in done.stdout
    doc = json.loads(cli("verify", "--json").stdout)
    assert [d["name"] for d in doc["damaged"]] == ["app.arrays"]
    assert files[-1].exists(), "verify without --repair removes nothing"

    repaired = cli("verify", "--repair", "-y", "--json")
    assert repaired.returncode == 1  # damage was found
    assert json.loads(repaired.stdout)["repaired"] == 1
    assert not files[-1].exists()
    assert cli("verify").returncode == 0
    consistent(cache_dir / "arrays")


def test_verify_checks_an_inline_entry_too(cache_dir):
    fill(cache_dir, n=1)
    folder = cache_dir / "small"
    with sqlite3.connect(folder / "index.sqlite") as db:
        (rowid, value) = db.execute("SELECT id, value FROM entries WHERE ns = 'app.small'").fetchone()
        broken = bytearray(value)
        broken[-1] ^= 0x01
        db.execute("UPDATE entries SET value = ? WHERE id = ?", (bytes(broken), rowid))
    done = cli("verify", "app.small", "--json")
    assert done.returncode == 1
    assert len(json.loads(done.stdout)["damaged"]) == 1


def test_verify_checks_signatures_with_the_secret(cache_dir):
    run_python(
        f"""
from twat_cache import bcache
@bcache(folder_name={str(cache_dir / "signed")!r}, name="s.f", secret="right")
def f(x):
    return x
f(1); f(2)
"""
    )
    unchecked = json.loads(cli("verify", "--json").stdout)
    assert unchecked["sound"] == 2 and unchecked["signature_not_checked"] == 2
    assert cli("verify", "--secret", "right").returncode == 0
    wrong = cli("verify", "--secret", "wrong", "--json")
    assert wrong.returncode == 1
    assert all("signature mismatch" in d["why"] for d in json.loads(wrong.stdout)["damaged"])
    assert cli("verify", env={"TWAT_CACHE_SECRET": "right"}).returncode == 0


# ---------------------------------------------------------------- rm


COUNTED = """
import json, sys
from twat_cache import bcache
runs = []
@bcache(folder_name={folder!r}, name={name!r})
def f(x):
    runs.append(x)
    return x
for x in range({n}):
    f(x)
print(json.dumps(runs))
"""


def recomputed(folder: Path, name: str, n: int) -> list[int]:
    """Calls ``name``'s function on 0..n-1 in a new process; the arguments it really ran on."""
    return list(json.loads(run_python(COUNTED.format(folder=str(folder), name=name, n=n))))


def test_rm_removes_one_cache_and_leaves_the_other(cache_dir):
    folder = cache_dir / "two"
    assert recomputed(folder, "one", 5) == [0, 1, 2, 3, 4]
    assert recomputed(folder, "two", 5) == [0, 1, 2, 3, 4]
    done = cli("rm", "one", "-y", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    assert "removed 5 entries" in done.stdout
    assert recomputed(folder, "one", 5) == [0, 1, 2, 3, 4]
    assert recomputed(folder, "two", 5) == []
    consistent(folder)


def test_rm_without_a_terminal_or_yes_removes_nothing(cache_dir):
    folder = cache_dir / "f"
    recomputed(folder, "f", 3)
    done = cli("rm", "f", "--dir", str(folder))
    assert done.returncode == 2
    assert "pass -y" in done.stderr
    assert recomputed(folder, "f", 3) == []


def test_dry_run_changes_nothing(cache_dir):
    fill(cache_dir)
    stale = cache_dir / "small" / "tmp" / f"{_dead_pid()}-0-0.part"
    stale.write_bytes(b"x" * 100)
    before = snapshot(cache_dir)
    for args in (
        ["rm", "app.small", "--dry-run"],
        ["rm", "app.*", "--dry-run", "--json"],
        ["prune", "--dry-run"],
        ["prune", "--max-size", "1K", "--older-than", "0s", "--dry-run", "--json"],
        ["stats", "--zero", "--dry-run"],
    ):
        done = cli(*args)
        assert done.returncode == 0, (args, done.stderr)
    plan = json.loads(cli("prune", "--max-size", "1K", "--dry-run", "--json").stdout)
    assert plan["dry_run"] is True and plan["would_remove"] >= 1
    assert snapshot(cache_dir) == before
    assert caches_of(cache_dir)["app.small"]["entries"] == 10


def test_rm_older_than_keeps_recent_entries(cache_dir):
    folder = cache_dir / "ages"
    recomputed(folder, "f", 3)  # 0, 1, 2 written now
    time.sleep(2.5)
    code = COUNTED.format(folder=str(folder), name="f", n=6)  # 0..2 hit (their reads recorded), 3..5 new
    assert json.loads(run_python(code)) == [3, 4, 5]
    done = cli("rm", "f", "--older-than", "2s", "-y", "--dir", str(folder))
    assert done.returncode == 0 and "removed 0 entries" in done.stdout, done.stdout
    time.sleep(2.5)
    assert json.loads(run_python(COUNTED.format(folder=str(folder), name="f", n=2))) == []  # reads 0, 1
    done = cli("rm", "f", "--older-than", "2s", "-y", "--dir", str(folder))
    assert "removed 4 entries" in done.stdout, done.stdout  # 2..5 went; 0, 1 were just read
    assert recomputed(folder, "f", 6) == [2, 3, 4, 5]


def test_rm_by_key_prefix_removes_that_entry(cache_dir):
    fill(cache_dir)
    (info,) = as_json(cli("info", "app.arrays", "--json"))["caches"]
    key = info["largest"][0]["key"]
    done = cli("rm", "app.arrays", "--key-prefix", key[:10], "-y")
    assert done.returncode == 0 and "removed 1 entries" in done.stdout
    (after,) = as_json(cli("info", "app.arrays", "--json"))["caches"]
    assert [e["key"] for e in after["largest"]] == [info["largest"][1]["key"]]
    assert cli("rm", "app.arrays", "--key-prefix", "xyz", "-y").returncode == 2


# ---------------------------------------------------------------- prune


def test_prune_removes_expired_entries(cache_dir):
    folder = cache_dir / "ttl"
    run_python(
        f"""
from twat_cache import bcache
@bcache(folder_name={str(folder)!r}, name="t.short", ttl=1)
def short(x):
    return x
@bcache(folder_name={str(folder)!r}, name="t.long")
def long(x):
    return x
for i in range(4):
    short(i); long(i)
"""
    )
    time.sleep(1.5)
    assert caches_of(folder)["t.short"]["expired"] == 4
    done = cli("prune", "-y", "--dir", str(folder))
    assert done.returncode == 0 and "removed 4 entries" in done.stdout, done.stdout
    caches = caches_of(folder)
    assert caches["t.short"]["entries"] == 0 and caches["t.long"]["entries"] == 4
    assert caches["t.short"]["stats"]["expirations"] == 4
    consistent(folder)


def test_prune_max_size_evicts_by_policy(cache_dir):
    folder = cache_dir / "arrays"
    run_python(
        f"""
import numpy as np
from twat_cache import fcache
@fcache(folder_name={str(folder)!r}, name="a.f")
def f(n):
    return np.zeros(n, dtype=np.uint8)
f(200_000)  # the least recently used: evicted first
f(8_000)
"""
    )
    done = cli("prune", "--max-size", "100K", "-y", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    assert "1 entries by lru" in done.stdout
    (arrays,) = as_json(cli("ls", "--json", "--dir", str(folder)))["folders"]
    assert arrays["bytes"] <= 100 * 1024 and arrays["entries"] == 1
    assert arrays["caches"][0]["stats"]["evictions"] == 1
    consistent(folder)
    assert rows(folder) == 1


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_prune_removes_what_a_killed_writer_left_and_keeps_a_live_ones(cache_dir):
    folder = cache_dir / "big"
    code = f"""
import numpy as np
from twat_cache import fcache
@fcache(folder_name={str(folder)!r}, name="b.f")
def f(n):
    return np.ones(n, dtype=np.uint8)
f(10)
print("ready", flush=True)
while True:
    f.cache_clear()
    f(200_000_000)
"""
    left: list[Path] = []
    for _attempt in range(10):  # until the kill lands while the file is being written
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
            until(lambda: any((folder / "tmp").glob("*.part")), "a temporary file being written", within=60)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        left = list((folder / "tmp").glob("*.part"))
        if left:
            break
    assert left, "the killed writer left its temporary file"
    live = folder / "tmp" / f"{os.getpid()}-0-0.part"  # this test process is alive: a live writer
    live.write_bytes(b"still being written")
    done = cli("prune", "-y", "--dir", str(folder))
    assert done.returncode == 0, done.stderr
    assert "files left by killed writers" in done.stdout
    assert not any(p.exists() for p in left)
    assert live.exists()
    consistent(folder)


def test_prune_and_rm_while_another_process_writes(cache_dir):
    folder = cache_dir / "busy"
    code = f"""
import sys
import numpy as np
from twat_cache import bcache, fcache
@bcache(folder_name={str(folder)!r}, name="w.small", maxsize=2_000_000)
def small(i):
    return "s" * 1000 + str(i)
@fcache(folder_name={str(folder)!r}, name="w.big", maxsize=2_000_000)
def big(i):
    return np.full(20_000, i, dtype=np.int32)
print("ready", flush=True)
for i in range(5000):
    small(i)
    if i % 10 == 0:
        big(i)
        assert big(i)[0] == i
    assert small(i) == "s" * 1000 + str(i)
s = small.cache_stats()
print(s["store_errors"], big.cache_stats()["store_errors"])
"""
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    rounds = 0
    while writer.poll() is None:
        for args in (
            ["prune", "--max-size", "500K", "-y"],
            ["rm", "w.small", "--older-than", "0s", "-y"],
            ["rm", "w.*", "-y"],
        ):
            done = cli(*args, "--dir", str(folder), env={"TWAT_CACHE_CLI_BATCH": "16"})
            assert done.returncode == 0, done.stderr
        rounds += 1
    out, err = writer.communicate()
    assert writer.returncode == 0, err
    assert out.split() == ["0", "0"], (out, err)
    assert rounds >= 1
    assert cli("verify", "--dir", str(folder)).returncode == 0
    consistent(folder)


# ---------------------------------------------------------------- safety


def test_a_folder_that_is_not_a_cache_is_refused(tmp_path):
    plain = tmp_path / "documents"
    plain.mkdir()
    (plain / "index.sqlite").write_text("not a database")
    (plain / "notes.txt").write_text("keep me")
    before = snapshot(plain)
    for args in (["ls"], ["rm", "x", "-y"], ["prune", "-y"], ["verify"]):
        done = cli(*args, "--dir", str(plain))
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "not a twat-cache folder" in done.stderr
        assert "Traceback" not in done.stderr
    assert snapshot(plain) == before
    missing = cli("ls", "--dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_nothing_outside_a_cache_folder_is_touched(cache_dir, tmp_path):
    fill(cache_dir)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = cache_dir / "small"
    # An index row that names a file outside data/ (a shared folder is as untrusted as its files).
    with sqlite3.connect(folder / "index.sqlite") as db:
        db.execute("UPDATE entries SET file = ? WHERE ns = 'app.other'", (str(victim),))
    # A link inside the root to a folder outside it is not followed.
    outside = tmp_path / "outside"
    run_python(COUNTED.format(folder=str(outside), name="outside.f", n=2))
    (cache_dir / "link").symlink_to(outside)
    assert "outside.f" not in cli("ls", "-q").stdout.split()
    for args in (["rm", "app.*", "-y"], ["prune", "--max-size", "1", "-y"], ["verify", "--repair", "-y"]):
        done = cli(*args)
        assert done.returncode in (0, 1), (args, done.stderr)
    assert victim.read_text() == "precious"
    assert recomputed(outside, "outside.f", 2) == []  # untouched
    # --dir / is a folder with no cache: refused, nothing removed.
    assert cli("rm", "anything", "-y", "--dir", "/").returncode == 2


def test_a_link_given_as_dir_is_followed_once(cache_dir, tmp_path):
    fill(cache_dir)
    link = tmp_path / "shortcut"
    link.symlink_to(cache_dir / "small")
    assert sorted(cli("ls", "-q", "--dir", str(link)).stdout.split()) == ["app.other", "app.small"]


# ---------------------------------------------------------------- progress and Ctrl-C


def test_ctrl_c_stops_a_large_rm_between_batches(cache_dir):
    """On a terminal: a progress line on stderr; SIGINT stops after a whole batch."""
    import pty

    folder = cache_dir / "many"
    run_python(
        f"""
from twat_cache import bcache
@bcache(folder_name={str(folder)!r}, name="m.f")
def f(x):
    return x
for i in range(10_000):
    f(i)
"""
    )
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twat_cache", "rm", "m.f", "-y", "--dir", str(folder)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "TWAT_CACHE_CLI_BATCH": "1"},
    )
    os.close(secondary)
    seen = b""
    try:
        while b"rm: " not in seen:
            chunk = os.read(primary, 4096)
            assert chunk, seen
            seen += chunk
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert b"interrupted: removed" in seen, seen
    left = rows(folder)
    assert 0 < left < 10_000
    consistent(folder)
    assert cli("verify", "--dir", str(folder)).returncode == 0
    assert caches_of(folder)["m.f"]["entries"] == left


def test_no_progress_line_without_a_terminal(cache_dir):
    fill(cache_dir)
    done = cli("verify")
    assert done.returncode == 0
    assert done.stderr == ""


# ---------------------------------------------------------------- Redis


def test_redis_caches_are_listed_counted_and_removed(redis_url, cache_dir):
    ns = f"cli-{os.getpid()}-{time.monotonic_ns()}"
    code = f"""
import json
from twat_cache import rcache
runs = []
@rcache(url={redis_url!r}, namespace={ns!r})
def f(x):
    runs.append(x)
    return x * 3
for x in (1, 2, 1, 1):
    f(x)
print(json.dumps(runs))
"""
    assert json.loads(run_python(code)) == [1, 2]
    listed = as_json(cli("ls", "--json", "--redis", redis_url))
    mine = {c["name"]: c for c in listed["redis"]["caches"]}
    assert mine[ns]["entries"] == 2
    assert mine[ns]["stats"]["hits"] == 2 and mine[ns]["stats"]["misses"] == 2
    stats = as_json(cli("stats", ns, "--json", "--redis", redis_url))
    assert stats["caches"][0]["stats"]["hits"] == 2
    (info,) = as_json(cli("info", ns, "--json", "--redis", redis_url))["caches"]
    assert (info["name"], info["entries"]) == (ns, 2)
    assert ns in cli("info", ns, "--redis", redis_url).stdout
    done = cli("rm", ns, "-y", "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(run_python(code)) == [1, 2]
    assert cli("prune", "--redis", redis_url).returncode == 2
    assert cli("rm", ns, "--older-than", "1d", "-y", "--redis", redis_url).returncode == 2


# ---------------------------------------------------------------- docs/cli.md


DOC_APP = """
import numpy as np
from twat_cache import bcache, fcache

@bcache(name="myapp.geocode", ttl=86400)
def geocode(address):
    return {"address": address}

@bcache(name="myapp.profile", folder_name="myapp", maxsize=200 * 2**20)
def profile(user):
    return {"user": user}

@fcache(name="myapp.embedding", folder_name="myapp-arrays", compress="lz4")
def embedding(doc):
    return np.full(4096, doc, dtype=np.float32)

for i in range(50):
    geocode(i % 10); profile(i % 20); embedding(i % 30)
"""


def test_the_commands_in_docs_cli_md_run(cache_dir):
    import re
    import shlex

    run_python(DOC_APP)
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", page, re.DOTALL)
    commands = [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ twat-cache ")]
    assert len(commands) >= 5
    for command in commands:
        done = cli(*shlex.split(command)[1:])
        assert done.returncode == 0, (command, done.stderr)
        assert "Traceback" not in done.stderr
    # The page's table has the columns the command prints.
    documented = blocks[0].splitlines()[1].split()
    assert cli("ls").stdout.splitlines()[0].split() == documented


def test_a_forked_child_folds_its_own_counts_once(cache_dir):
    """A multiprocessing child made by fork folds what it counted at its exit (which
    skips atexit), and never what its parent counted before the fork."""
    folder = cache_dir / "forked"
    run_python(
        f"""
import multiprocessing
from twat_cache import bcache

@bcache(folder_name={str(folder)!r}, name="fork.f")
def f(x):
    return x

def child():
    for _ in range(3):
        f(1)

f(1); f(1); f(1)  # one miss, two hits, not folded yet
p = multiprocessing.get_context("fork").Process(target=child)
p.start(); p.join()
assert p.exitcode == 0
"""
    )
    total = as_json(cli("stats", "--json", "--dir", str(folder)))["total"]
    assert (total["hits"], total["misses"]) == (5, 1)


def test_rm_reaches_the_local_tier_of_a_running_process(cache_dir):
    """Removals bump the folder's generations: a process holding a local copy recomputes."""
    folder = cache_dir / "tiered"
    code = f"""
import sys
from twat_cache import bcache
runs = []
@bcache(folder_name={str(folder)!r}, name="t.f", local=True)
def f(x):
    runs.append(x)
    return x * 2
for line in sys.stdin:
    assert f(1) == 2
    print(len(runs), f.cache_stats()["local_hits"], flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None

    def call() -> list[str]:
        proc.stdin.write("\n")
        proc.stdin.flush()
        return proc.stdout.readline().split()

    try:
        assert call() == ["1", "0"]
        served = [call() for _ in range(3)]
        assert served[-1][0] == "1" and int(served[-1][1]) >= 1  # served by the local tier
        done = cli("rm", "t.f", "-y", "--dir", str(folder))
        assert done.returncode == 0 and "removed 1 entries" in done.stdout
        assert call()[0] == "2"  # the local copy was stale: computed again
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_running_process_caches_are_named_before_their_first_fold(cache_dir):
    """What `ls` knows of a cache (engine, limits) is in the index from its first use,
    not from the first fold of its counts (seconds later, or at exit)."""
    folder = cache_dir / "live"
    code = f"""
import sys
from twat_cache import fcache
@fcache(folder_name={str(folder)!r}, name="live.arrays", maxsize=10**8)
def f(n):
    return list(range(n))
f(10)
print("ready", flush=True)
sys.stdin.readline()
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        listed = caches_of(folder)
        assert listed["live.arrays"]["engine"] == "fcache"
        assert listed["live.arrays"]["max_bytes"] == 10**8
        assert listed["live.arrays"]["entries"] == 1
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Runs the command line with a pseudo-terminal as stdin, stdout and stderr."""
    import pty

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "twat_cache", *args], stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0, out
    finally:
        os.close(primary)
    return out


def test_colour_goes_to_a_terminal_unless_no_color(cache_dir):
    fill(cache_dir)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert b"\033[1mNAME" in _on_a_terminal(["ls"], env)
    plain = _on_a_terminal(["ls"], {**env, "NO_COLOR": "1"})
    assert b"\033[" not in plain and b"NAME" in plain
