"""kernels/blas.py: stacks of products split over the shard threads, OpenBLAS on one thread meanwhile.

Each product of the stack is computed whole by one thread, so the result is
NumPy's own stacked product up to the rounding of OpenBLAS's kernels
(float64: within 1e-12 of the largest entry).
"""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivgg.kernels import blas, shards, workspace


def random_stack(rng, stack, rows, inner, columns, dtype=np.float64):
    return rng.standard_normal((stack, rows, inner)).astype(dtype), rng.standard_normal((stack, inner, columns)).astype(dtype)


@settings(max_examples=20)
@given(st.integers(1, 9), st.integers(1, 300), st.integers(1, 70), st.integers(1, 70), st.integers(0, 2 ** 32 - 1))
def test_a_split_stack_matches_numpys_stacked_product(stack, rows, inner, columns, seed):
    a, b = random_stack(np.random.default_rng(seed), stack, rows, inner, columns)
    got = blas.stacked_matmul(a, b, np.empty((stack, rows, columns)))
    want = np.matmul(a, b)
    assert np.abs(got - want).max() <= 1e-12 * max(np.abs(want).max(), 1e-300)


def test_workspace_matmul_splits_a_large_stack_over_the_shard_threads_with_one_openblas_thread(monkeypatch):
    if shards._pool is None:
        pytest.skip("one CPU (or MINIVGG_THREADS=1): there are no shard threads to split over")
    if not blas.openblas().lib_controllers:
        pytest.skip("NumPy's BLAS is not OpenBLAS: stacks run as NumPy runs them")
    a, b = random_stack(np.random.default_rng(0), 36, 256, 64, 64, np.float32)   # 2**25.2 multiply-adds
    threads_before = blas.openblas().info()[0]["num_threads"]
    seen = []
    matmul = np.matmul

    def recording(x, y, out):
        seen.append((threading.current_thread().name, len(x), blas.openblas().info()[0]["num_threads"]))
        return matmul(x, y, out=out)
    monkeypatch.setattr(blas.np, "matmul", recording)
    product = workspace.matmul(a, b)
    monkeypatch.undo()
    assert np.allclose(product, np.matmul(a, b), rtol=1e-5, atol=1e-4)
    assert len({name for name, _, _ in seen}) == len(seen) == shards.THREADS, "one part of the stack per thread"
    assert sum(parts for _, parts, _ in seen) == 36 and all(threads == 1 for _, _, threads in seen)
    assert blas.openblas().info()[0]["num_threads"] == threads_before, "OpenBLAS's thread count is restored"


def test_a_small_stack_runs_as_numpy_runs_it(monkeypatch):
    a, b = random_stack(np.random.default_rng(1), 16, 16, 64, 64)   # 2**20 multiply-adds
    monkeypatch.setattr(blas, "one_openblas_thread", None)           # would raise if the stack were split
    assert np.array_equal(workspace.matmul(a, b), np.matmul(a, b))


def test_one_matrix_for_a_whole_stack_as_the_filter_transforms_use_it():
    """``workspace.matmul(a, b)`` with a 2-d ``a``: a @ b[k] for every k, split like any stack."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((16, 9)), rng.standard_normal((512, 9, 512))    # 2**25.2 multiply-adds
    got = workspace.matmul(a, b)
    assert got.shape == (512, 16, 512)
    assert np.abs(got - np.matmul(a, b)).max() <= 1e-12 * np.abs(got).max()


def test_with_one_shard_thread_a_large_stack_runs_whole_on_the_calling_thread(monkeypatch):
    """One shard thread (``MINIVGG_THREADS=1``, or a data-parallel rank's share of the cores): nothing to
    split over, so OpenBLAS keeps the threads it was given (``share_cores`` set them)."""
    a, b = random_stack(np.random.default_rng(3), 36, 256, 64, 64, np.float32)
    monkeypatch.setattr(shards, "THREADS", 1)
    monkeypatch.setattr(blas, "one_openblas_thread", None)           # would raise if the stack were split
    assert np.array_equal(workspace.matmul(a, b), np.matmul(a, b))
