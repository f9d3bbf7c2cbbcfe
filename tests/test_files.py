"""``fcache``: numpy arrays in and out, raw layout, mmap, compression
(python/twat_cache/files.py, crates/twat-cache/src/codec.rs)."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from twat_cache import ConfigurationError, fcache, get_cache_path


def entry_files(folder):
    return sorted((get_cache_path(folder) / "data").rglob("*.twc"))


def test_arrays_round_trip_exactly_and_writable(cache_dir, calls):
    @fcache(folder_name="arrays")
    def grid(n, dtype):
        calls(n, dtype)
        return np.arange(n * 3, dtype=dtype).reshape(n, 3)

    for dtype in ("float64", "int32", "complex64", "uint8"):
        first = grid(5, dtype)
        again = grid(5, dtype)
        assert again.dtype == np.dtype(dtype)
        assert again.shape == (5, 3)
        np.testing.assert_array_equal(first, again)
        again[0, 0] = 42  # a loaded array is the caller's own copy
    assert calls.count == 4
    assert grid(5, "uint8")[0, 0] == 0


def test_the_array_is_stored_raw_beside_the_pickle(cache_dir):
    big = np.random.default_rng(1).random(200_000)

    @fcache(folder_name="raw")
    def same(x):
        return big

    same(1)
    (file,) = entry_files("raw")
    data = file.read_bytes()
    assert len(data) < big.nbytes + 4096, "no second copy of the array in the pickle stream"
    assert big.tobytes() in data
    offset = data.index(big.tobytes())
    assert offset % 64 == 0, "buffers are 64-byte aligned, ready to map"


def test_mmap_returns_a_read_only_mapped_array(cache_dir, calls):
    @fcache(folder_name="mapped", mmap=True)
    def ramp(n):
        calls(n)
        return np.linspace(0, 1, n)

    first = ramp(100_000)
    mapped = ramp(100_000)
    assert calls.count == 1
    np.testing.assert_array_equal(first, mapped)
    assert not mapped.flags.writeable
    with pytest.raises(ValueError):
        mapped[0] = 1.0
    base = mapped
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert isinstance(base, mmap.mmap), "the array's memory is the mapped cache file"


@pytest.mark.parametrize("codec", [True, "zstd", "lz4"])
def test_compression_shrinks_compressible_arrays(cache_dir, calls, codec):
    folder = f"packed-{codec}"

    @fcache(folder_name=folder, compress=codec)
    def steps(n):
        calls(n)
        return np.repeat(np.arange(n // 1000, dtype=np.int64), 1000)

    first = steps(1_000_000)
    again = steps(1_000_000)
    np.testing.assert_array_equal(first, again)
    assert calls.count == 1
    (file,) = entry_files(folder)
    assert file.stat().st_size < first.nbytes / 10


def test_incompressible_arrays_are_stored_raw(cache_dir):
    noise = np.random.default_rng(7).integers(0, 2**63, 100_000, dtype=np.int64)

    @fcache(folder_name="noise", compress=True)
    def f(x):
        return noise

    np.testing.assert_array_equal(f(1), noise)
    (file,) = entry_files("noise")
    assert noise.tobytes() in file.read_bytes()


def test_arrays_as_arguments_are_keyed_by_content(cache_dir, calls):
    @fcache(folder_name="by-content")
    def total(a):
        calls(a.shape)
        return float(a.sum())

    a = np.arange(1_000_000, dtype=np.float64)
    b = a.copy()
    assert total(a) == total(b)
    assert calls.count == 1
    b[123_456] += 1.0
    assert total(b) == total(a) + 1.0
    assert calls.count == 2
    assert total(a.reshape(1000, 1000)) == total(a)  # another shape: another key
    assert calls.count == 3
    total(a.astype(np.float32))  # another dtype: another key
    assert calls.count == 4
    assert total(a[::2]) == total(np.ascontiguousarray(a[::2]))  # strided views by content
    assert calls.count == 5


def test_object_arrays_are_refused_as_arguments(cache_dir):
    @fcache
    def f(a):
        return 1

    with pytest.raises(TypeError, match="argument a"):
        f(np.array([object(), object()], dtype=object))


def test_mmap_needs_raw_entries(cache_dir):
    with pytest.raises(ConfigurationError, match="mmap=True with compress=True"):
        fcache(mmap=True, compress=True)


def test_values_with_several_arrays_and_plain_objects(cache_dir):
    @fcache(folder_name="mixed")
    def bundle(n):
        return {"a": np.ones(n), "b": [np.zeros(3, dtype=np.int8), "text"], "n": n}

    first = bundle(10_000)
    again = bundle(10_000)
    np.testing.assert_array_equal(again["a"], first["a"])
    np.testing.assert_array_equal(again["b"][0], first["b"][0])
    assert again["b"][1] == "text" and again["n"] == 10_000


def test_durable_entries_are_flushed_before_they_are_placed(cache_dir, calls):
    @fcache(folder_name="durable", durable=True)
    def ones(n):
        calls(n)
        return np.ones(n)

    np.testing.assert_array_equal(ones(50_000), ones(50_000))
    assert calls.count == 1
    assert ones.cache_parameters()["durable"] is True
    assert len(entry_files("durable")) == 1
    with pytest.raises(ConfigurationError, match="durable='yes'"):
        fcache(durable="yes")
