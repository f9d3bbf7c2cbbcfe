"""Persistent caches across real processes: persistence, sharing, crashes, hash seeds,
and code fingerprints (crates/twat-cache/src/disk.rs, python/twat_cache/_fingerprint.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import run_python

MODULE = """
import os
import numpy as np
from twat_cache import bcache, fcache

LOG = os.environ["CALL_LOG"]

def note(*what):
    with open(LOG, "a") as f:
        f.write(" ".join(map(str, what)) + "\\n")

@bcache(folder_name="shared")
def record(k):
    note("record", k)
    return {"k": k, "items": [k] * 50, "blob": bytes([k % 256]) * (k * 1000)}

@fcache(folder_name="arrays")
def filled(k, n):
    note("filled", k)
    return np.full(n, k, dtype=np.int64)
"""


def write_module(tmp_path, body=MODULE, name="workmod"):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))


def executions(log):
    return log.read_text().splitlines() if log.exists() else []


def env_for(tmp_path, cache_dir):
    return {
        "CALL_LOG": str(tmp_path / "calls.log"),
        "TWAT_CACHE_DIR": str(cache_dir),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }


def test_an_entry_written_by_one_process_is_a_hit_in_another(tmp_path, cache_dir):
    write_module(tmp_path)
    env = env_for(tmp_path, cache_dir)
    code = "import workmod; r = workmod.record(3); assert r['items'] == [3] * 50; print(workmod.record.cache_info())"
    first = run_python(code, env=env)
    second = run_python(code, env=env)
    assert executions(tmp_path / "calls.log") == ["record 3"]
    assert "hits=0, misses=1" in first
    assert "hits=1, misses=0" in second


def test_four_processes_read_and_write_one_folder_at_once(tmp_path, cache_dir):
    write_module(tmp_path)
    env = {**os.environ, **env_for(tmp_path, cache_dir)}
    worker = textwrap.dedent("""
        import sys, workmod
        me = int(sys.argv[1])
        for round in range(3):
            for k in range(40):
                k = (k * (me + 1)) % 40
                r = workmod.record(k)
                assert r["k"] == k and r["items"] == [k] * 50 and r["blob"] == bytes([k]) * (k * 1000), k
        stats = workmod.record.cache_stats()
        assert stats["store_errors"] == 0, stats
    """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", worker, str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "WARNING" not in err and "locked" not in err, err
    done = executions(tmp_path / "calls.log")
    assert 40 <= len(done) <= 4 * 40, "every key computed at least once, at most once per process"
    assert len(done) < 4 * 40 * 3, "later rounds were hits"
    (tmp_path / "calls.log").unlink()
    check = "import workmod\nfor k in range(40): assert workmod.record(k)['k'] == k"
    run_python(check, env=env_for(tmp_path, cache_dir))
    assert executions(tmp_path / "calls.log") == [], "a fresh process finds every entry"


def test_a_writer_killed_mid_write_leaves_no_readable_partial_entry(tmp_path, cache_dir):
    write_module(tmp_path)
    env = {**os.environ, **env_for(tmp_path, cache_dir)}
    n = 8_000_000  # 64 MB per entry: long enough to be caught while writing
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import workmod\nfor k in range(1000): workmod.filled(k, {n})"],
        env=env,
        stderr=subprocess.PIPE,
    )
    tmp_dir = cache_dir / "arrays" / "tmp"
    deadline = time.monotonic() + 60
    caught = False
    while time.monotonic() < deadline and not caught:
        parts = list(tmp_dir.glob("*.part")) if tmp_dir.exists() else []
        stored = len(executions(tmp_path / "calls.log"))
        if stored >= 3 and any(p.stat().st_size > 0 for p in parts if p.exists()):
            writer.send_signal(signal.SIGKILL)
            caught = True
        time.sleep(0.001)
    writer.wait(timeout=30)
    assert caught, "the writer was never seen in the middle of a write"
    assert writer.returncode == -signal.SIGKILL
    started = len(executions(tmp_path / "calls.log"))
    (tmp_path / "calls.log").unlink()
    check = textwrap.dedent(f"""
        import numpy as np, workmod
        for k in range({started}):
            a = workmod.filled(k, {n})
            assert a.shape == ({n},) and (a == k).all(), k
    """)
    run_python(check, env=env_for(tmp_path, cache_dir))
    redone = executions(tmp_path / "calls.log")
    assert len(redone) <= 2, f"only the entries in flight at the kill are recomputed: {redone}"
    assert f"filled {started - 1}" in redone, "the half-written entry was not readable"


def test_keys_are_the_same_under_any_hash_seed(tmp_path, cache_dir):
    code = textwrap.dedent("""
        import json, datetime, decimal, pathlib
        from twat_cache import bcache

        @bcache(name="tests.seeded")
        def f(a, b=1, *rest, c=None, **extra):
            return a

        @bcache(name="tests.seeded.fast", secure=False)
        def g(a, b=1, *rest, c=None, **extra):
            return a

        arg = {"b": {1, 2, "x", "y"}, "a": frozenset({"p", "q", "r"}), "c": [1.0, None, ("t", b"y")],
               "d": {"nested": {"z": 1, "y": 2}}, "e": datetime.date(2024, 5, 1), "f": decimal.Decimal("1.10"),
               "g": pathlib.Path("/x/y"), "h": 2**100}
        print(json.dumps([f.cache_key(arg, 2, 3, 4, c="c", zeta=1, alpha={"k", "j"}),
                          f.cache_key(arg, b=2, c="c", alpha={"j", "k"}, zeta=1),
                          g.cache_key(arg, 2, c={"s", "t"}, omega=1, alpha=2)]))
    """)
    seen = set()
    for seed in ("0", "1", "12345", "random"):
        out = run_python(code, env={"PYTHONHASHSEED": seed, "TWAT_CACHE_DIR": str(cache_dir)})
        seen.add(out)
    assert len(seen) == 1, seen
    keys = json.loads(seen.pop())
    assert len(set(keys)) == 3


FINGERPRINTED = """
import os
from twat_cache import bcache

@bcache(folder_name="versions", name="tests.versioned")
def compute(x):
    with open(os.environ["CALL_LOG"], "a") as f:
        f.write("compute\\n")
    return x + {delta}
"""


def test_editing_the_body_invalidates_and_moving_it_does_not(tmp_path, cache_dir):
    # No .pyc: a rewrite within the same second must not be served from a stale one.
    env = {**env_for(tmp_path, cache_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    call = "import vmod; print(vmod.compute(10))"
    write_module(tmp_path, FINGERPRINTED.format(delta=1), name="vmod")
    assert run_python(call, env=env).strip() == "11"
    write_module(tmp_path, "\n\n\n# moved down\n" + FINGERPRINTED.format(delta=1), name="vmod")
    assert run_python(call, env=env).strip() == "11"
    assert len(executions(tmp_path / "calls.log")) == 1, "moving the function kept its entries"
    write_module(tmp_path, FINGERPRINTED.format(delta=2), name="vmod")
    assert run_python(call, env=env).strip() == "12"
    assert len(executions(tmp_path / "calls.log")) == 2, "editing the body invalidated its entries"
