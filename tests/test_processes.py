"""Data parallel in processes that minivgg starts itself (``minivgg.parallel.launch``), through shared memory.

The ranks' functions live at the top of this module, as ``launch`` needs:
each rank is a fresh process that imports them by name.  A rank checks
what it can see and writes its findings to a JSON file, which the test reads.
"""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minivgg.parallel import CommunicatorError, RankFailed, SharedMemoryCommunicator, SharedMemoryGroup, launch
from minivgg.parallel.processes import CHUNK_BYTES, print_once
from test_parallel import batches, make_trainer, max_relative_difference

HANG_GUARD_SECONDS = 300   # a hung launch fails the test instead of the whole suite (not a timing)
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def hang_guard():
    def hung(signum, frame):
        raise RuntimeError(f"a launch did not end within {HANG_GUARD_SECONDS} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_GUARD_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def rank_buffers(rank, dtype):
    """The buffers rank ``rank`` all-reduces: one over two chunks, one of fewer elements than ranks."""
    rng = np.random.default_rng(rank)
    return [rng.standard_normal(CHUNK_BYTES // np.dtype(dtype).itemsize + 1000).astype(dtype),
            rng.standard_normal(2).astype(dtype)]


def rank_arrays(rank, dtype):
    """Arrays that rank ``rank`` all-reduces together: laid end to end they straddle two chunks, and one
    is a transposed view (dense, its axes in another order)."""
    rng = np.random.default_rng(100 + rank)
    per_chunk = CHUNK_BYTES // np.dtype(dtype).itemsize
    return [rng.standard_normal(per_chunk - 5000).astype(dtype),
            rng.standard_normal((700, 30)).astype(dtype).T,
            rng.standard_normal(3).astype(dtype)]


def sum_in_rank_order(make, size, dtype):
    """``make(rank, dtype)``'s lists of arrays, added up element-wise over the ranks 0, 1, ..., size-1."""
    totals = make(0, dtype)
    for rank in range(1, size):
        totals = [total + array for total, array in zip(totals, make(rank, dtype))]
    return totals


def all_reduce_rank(out_dir, communicator):
    found = {"rank": communicator.rank, "size": communicator.size, "sums_in_rank_order": True}
    for dtype in (np.float32, np.float64):
        buffers = rank_buffers(communicator.rank, dtype)
        for buffer in buffers:
            communicator.allreduce_sum(buffer)
        arrays = rank_arrays(communicator.rank, dtype)
        communicator.allreduce_arrays(arrays)
        for make, summed in ((rank_buffers, buffers), (rank_arrays, arrays)):
            expected = sum_in_rank_order(make, communicator.size, dtype)
            found["sums_in_rank_order"] &= all(np.array_equal(a, b) for a, b in zip(summed, expected))
    found["gathered"] = communicator.allgather(10.0 * communicator.rank)
    with open(os.path.join(out_dir, f"rank{communicator.rank}.json"), "w") as out:
        json.dump(found, out)


def test_the_ranks_sum_every_chunk_in_rank_order_and_gather_each_value(tmp_path):
    launch(all_reduce_rank, (str(tmp_path),), 3)
    found = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(3)]
    assert [f["rank"] for f in found] == [0, 1, 2] and {f["size"] for f in found} == {3}
    assert all(f["sums_in_rank_order"] for f in found), "bit for bit the sum in rank order, on every rank"
    assert all(f["gathered"] == [0.0, 10.0, 20.0] for f in found)


def train_rank(out_dir, communicator):
    trainer = make_trainer(out_dir, np.float64, communicator)
    for x, y in batches(np.float64):
        trainer.train_step(x, y)
    np.savez(os.path.join(out_dir, f"weights{communicator.rank}.npz"), **trainer.model.state_dict())


def test_two_processes_train_like_one(tmp_path):
    launch(train_rank, (str(tmp_path),), 2)
    single = make_trainer(str(tmp_path), np.float64, None)
    for x, y in batches(np.float64):
        single.train_step(x, y)
    expected = list(single.model.state_dict().values())
    replicas = [list(np.load(tmp_path / f"weights{rank}.npz").values()) for rank in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*replicas)), "the two replicas hold the same weights"
    assert max_relative_difference(replicas[0], expected) <= 1e-12


def failing_rank(communicator):
    if communicator.rank == 1:
        raise ValueError("rank 1 gives up")
    communicator.barrier("waiting for rank 1")   # rank 1 never comes: launch must stop this rank


def test_a_failing_rank_stops_the_others_and_is_named():
    with pytest.raises(RankFailed, match=r"launch: rank 1 of 2 exited with code 1 \(its error is above\); the "
                                         r"other ranks were stopped"):
        launch(failing_rank, (), 2, timeout=HANG_GUARD_SECONDS + 60)


def refusing_rank(communicator):
    raise SystemExit("script.py: error: a setting every rank refuses")


def test_a_one_line_error_that_every_rank_meets_is_printed_once(capfd):
    with pytest.raises(RankFailed, match=r"launch: rank \d of 3 exited with code 1"):
        launch(refusing_rank, (), 3)
    assert capfd.readouterr().err.count("script.py: error: a setting every rank refuses") == 1


def test_print_once_prints_each_distinct_line_in_turn(capsys):
    errors = multiprocessing.get_context("spawn").SimpleQueue()
    for line in ("rank error A", "rank error B", "rank error A"):
        errors.put(line)
    print_once(errors)
    assert capsys.readouterr().err.splitlines() == ["rank error A", "rank error B"]


def sleeping_rank(out_dir, communicator):
    """A rank that only says it is running, then sleeps (until its launcher dies, for the test below)."""
    with open(os.path.join(out_dir, f"rank{communicator.rank}.pid"), "w") as out:
        out.write(str(os.getpid()))
    time.sleep(HANG_GUARD_SECONDS)


def running(pid):
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_ranks_end_when_their_launcher_is_killed(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {HERE!r}); "
                                 f"import test_processes as t; t.launch(t.sleeping_rank, ({str(tmp_path)!r},), 2)"])
    pids = [tmp_path / f"rank{rank}.pid" for rank in range(2)]
    while not all(path.exists() and path.read_text() for path in pids):
        time.sleep(0.1)
    ranks = [int(path.read_text()) for path in pids]
    assert all(map(running, ranks))
    launcher.kill()   # SIGKILL: the launcher cannot stop its ranks itself
    launcher.wait()
    while any(map(running, ranks)):
        time.sleep(0.1)


def test_a_rank_alone_times_out_with_a_clear_error():
    group = SharedMemoryGroup(2, multiprocessing.get_context("spawn"), timeout=0.2)
    with pytest.raises(CommunicatorError, match=r"allreduce: rank 0 of 2 waited 0.2 s for the other ranks; "
                                                r"one of them died or is stuck"):
        SharedMemoryCommunicator(group, 0).allreduce_sum(np.ones(3))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"SharedMemoryGroup: expected a positive number of ranks, got 0"):
        SharedMemoryGroup(0, multiprocessing.get_context("spawn"))
    communicator = SharedMemoryCommunicator(SharedMemoryGroup(1, multiprocessing.get_context("spawn")), 0)
    with pytest.raises(TypeError, match=r"allreduce_arrays: expected NumPy arrays, got list"):
        communicator.allreduce_sum([1.0, 2.0])
    with pytest.raises(ValueError, match=r"allreduce_arrays: expected arrays that fill one block of memory, got one "
                                         r"of shape \(2,\) with strides \(16,\)"):
        communicator.allreduce_arrays([np.ones(4)[::2]])
    with pytest.raises(TypeError, match=r"allreduce_arrays: expected arrays of one dtype, got \['float32', "
                                        r"'float64'\]"):
        communicator.allreduce_arrays([np.ones(2, np.float32), np.ones(2)])
