"""Shard threads set while running, and data-parallel ranks sharing one machine's cores."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from minivgg.kernels import shards
from minivgg.parallel import share_cores
from minivgg.parallel.cores import BLAS_THREAD_VARIABLES


@pytest.fixture
def restore_threads():
    """Put the shard threads and BLAS's thread counts back as they were."""
    shard_threads = shards.THREADS
    with threadpool_limits(limits=None):   # restores the BLAS libraries' counts on leaving
        yield
    shards.set_threads(shard_threads)


def blas_threads():
    return {library["num_threads"] for library in threadpool_info() if library["user_api"] == "blas"}


def shard_thread_names(threads):
    """The names of the threads that take the shards; each shard waits for the others, so a thread that
    took two would never see them all arrive."""
    names, all_here = set(), threading.Barrier(threads, timeout=10)

    def work(start, stop):
        names.add(threading.current_thread().name)
        all_here.wait()
    shards.over_batch(work, threads, shards.MIN_ELEMENTS)
    return names


def test_set_threads_changes_how_many_threads_take_shards(restore_threads):
    shards.set_threads(1)
    assert shards._pool is None and shard_thread_names(1) == {threading.current_thread().name}
    shards.set_threads(3)
    assert len(shard_thread_names(3)) == 3
    with pytest.raises(ValueError, match=r"set_threads: expected a positive number of threads, got 0"):
        shards.set_threads(0)


def test_a_shard_count_does_not_change_a_result(restore_threads):
    x = np.random.default_rng(0).standard_normal((64, 16, 32, 32)).astype(np.float32)
    from minivgg.kernels.activation import relu_forward
    shards.set_threads(1)
    one = relu_forward(x).copy()
    shards.set_threads(2)
    assert np.array_equal(relu_forward(x), one)


def test_ranks_on_one_machine_share_its_cores(monkeypatch, restore_threads):
    for name in ("MINIVGG_THREADS", *BLAS_THREAD_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    assert share_cores(2, cores=8) == 4
    assert shards.THREADS == 4
    assert blas_threads() in (set(), {4}), "no BLAS library found, or each set to the rank's share"
    assert share_cores(3, cores=2) == 1 and shards.THREADS == 1, "at least one thread each"


def test_thread_counts_set_in_the_environment_win(monkeypatch, restore_threads):
    monkeypatch.setenv("MINIVGG_THREADS", "3")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    shards.set_threads(3)
    before = blas_threads()
    share_cores(2, cores=8)
    assert shards.THREADS == 3 and blas_threads() == before


def test_a_bad_rank_count_is_named():
    with pytest.raises(ValueError, match=r"share_cores: expected a positive number of ranks on this machine, "
                                         r"got 0"):
        share_cores(0)
