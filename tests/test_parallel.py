"""Data parallel: the paper's claim that a split batch trains exactly like the whole batch."""
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from minivgg import models
from minivgg.optim import SGD, PlateauSchedule
from minivgg.parallel import (CommunicatorError, InProcessGroup, check_agreement, check_batches_split,
                              find_mpiexec, pack, shard_bounds, unpack)
from minivgg.train import Trainer

HERE = os.path.dirname(__file__)
STEPS = 3


def make_trainer(out_dir, dtype, communicator=None):
    model = models.vgg("A", num_classes=10, in_channels=1, input_size=32, width=0.0625, init="glorot",
                       seed=3, dtype=dtype)
    optimizer = SGD(model.parameters(), lr=0.05)
    return Trainer(model, optimizer, PlateauSchedule(optimizer), None, None, str(out_dir), seed=7,
                   progress=False, communicator=communicator, check_every=2)


def batches(dtype, n=12):
    rng = np.random.default_rng(0)
    return [(rng.normal(0, 60, (n, 1, 32, 32)).astype(dtype), rng.integers(0, 10, n)) for _ in range(STEPS)]


def train_single(tmp_path, dtype):
    trainer = make_trainer(tmp_path / "single", dtype)
    losses = [trainer.train_step(x, y)[0] for x, y in batches(dtype)]
    return trainer, losses


def train_split(tmp_path, dtype, replicas):
    group = InProcessGroup(replicas, timeout=30)
    trainers = [make_trainer(tmp_path / f"rank{r}", dtype, group.communicators[r]) for r in range(replicas)]
    losses, errors = [[] for _ in range(replicas)], []

    def run(rank):
        try:
            for x, y in batches(dtype):
                losses[rank].append(trainers[rank].train_step(x, y)[0])
        except Exception as error:  # surfaced below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return trainers, losses


def max_relative_difference(a, b):
    return max(float(np.abs(x - y).max() / np.abs(y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_a_batch_split_across_replicas_trains_like_the_whole_batch(tmp_path, dtype, tolerance, replicas):
    single, single_losses = train_single(tmp_path, dtype)
    split, split_losses = train_split(tmp_path, dtype, replicas)
    expected = list(single.model.state_dict().values())
    for trainer in split:
        assert max_relative_difference(list(trainer.model.state_dict().values()), expected) <= tolerance
        assert max_relative_difference(trainer.optimizer.velocities, single.optimizer.velocities) <= tolerance
    for losses in split_losses:
        np.testing.assert_allclose(losses, single_losses, rtol=tolerance)


def test_replicas_hold_identical_weights_bit_for_bit(tmp_path):
    split, _ = train_split(tmp_path, np.float32, 2)
    for a, b in zip(split[0].model.parameters(), split[1].model.parameters()):
        assert np.array_equal(a.data, b.data)


def test_shards_cover_the_batch_and_an_empty_shard_is_an_error():
    for n, size in [(12, 4), (13, 4), (5, 5), (64, 3)]:
        bounds = [shard_bounds(n, size, r) for r in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
    with pytest.raises(ValueError, match="a batch of 3 samples cannot be split across 4 replicas"):
        shard_bounds(3, 4, 0)


def test_pack_and_unpack_round_trip():
    arrays = [np.arange(6.0).reshape(2, 3), np.arange(4.0)]
    buffer = pack(arrays)
    targets = [np.zeros((2, 3)), np.zeros(4)]
    unpack(buffer * 2, targets)
    np.testing.assert_array_equal(targets[0], arrays[0] * 2)
    np.testing.assert_array_equal(targets[1], arrays[1] * 2)


def test_a_rank_that_never_arrives_gives_a_clear_error_not_a_hang():
    group = InProcessGroup(2, timeout=1.0)
    with pytest.raises(CommunicatorError, match="rank 0 waited 1 s for the other 1 ranks"):
        group.communicators[0].allreduce_sum(np.ones(3))


def run_ranks(size, work):
    """Run ``work(communicator)`` on every rank of an InProcessGroup in its own thread; (results, errors) by rank."""
    group = InProcessGroup(size, timeout=30)
    results, errors = [None] * size, [None] * size

    def run(rank):
        try:
            results[rank] = work(group.communicators[rank])
        except CommunicatorError as error:
            errors[rank] = str(error)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results, errors


def test_ranks_with_other_settings_or_data_are_named():
    def settings(communicator):
        rank = communicator.rank
        check_agreement(communicator, {"--lr": 0.01, "--limit": 100 if rank < 2 else 200,
                                       "the training data (a hash)": "ab12" if rank != 1 else "ff00"})

    _, errors = run_ranks(3, settings)
    assert re.search(r"^data parallel: rank 0 of 3 disagrees with other ranks on --limit \(this rank has 100; "
                     r"ranks \[2\] have another value\); the training data \(a hash\) \(this rank has 'ab12'; "
                     r"ranks \[1\] have another value\)", errors[0])
    assert "--limit (this rank has 200; ranks [0, 1] have another value)" in errors[2]
    assert "--lr" not in errors[1]


def test_ranks_that_agree_go_on():
    results, errors = run_ranks(2, lambda c: check_agreement(c, {"--lr": 0.01, "--scale": "32,48"}) or "ok")
    assert results == ["ok", "ok"] and errors == [None, None]


@pytest.mark.parametrize("samples, batch_size, message", [
    (65, 64, r"the last batch of each epoch holds 1 samples \(65 samples in batches of 64\), fewer than the 2 ranks"),
    (1, 64, r"the last batch of each epoch holds 1 samples"),
    (64, 1, r"a batch of 1 samples cannot be split across 2 ranks"),
    (64, 32, None),
    (66, 64, None),
])
def test_every_batch_must_give_each_rank_a_sample(samples, batch_size, message):
    problem = check_batches_split(samples, batch_size, 2)
    assert problem is None if message is None else re.search(message, problem)


def test_drifting_replicas_are_detected(tmp_path):
    group = InProcessGroup(2, timeout=30)
    trainers = [make_trainer(tmp_path / f"r{r}", np.float64, group.communicators[r]) for r in range(2)]
    trainers[1].model.classifier[0].weight.data[0, 0] += 1.0  # rank 1's weights silently differ
    errors = []

    def run(rank):
        try:
            for x, y in batches(np.float64)[:2]:
                trainers[rank].train_step(x, y)
        except CommunicatorError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(errors) == 2 and all("drifted apart by step 2" in e for e in errors)


def test_nccl_in_one_process_without_gpus_is_a_clear_error():
    from minivgg.parallel import NcclInProcessGroup
    with pytest.raises((RuntimeError, ValueError), match="cupy-cuda13x|no usable CUDA device|no such device"):
        NcclInProcessGroup([0, 1])


def test_the_mpiexec_beside_this_python_comes_before_the_one_on_path(tmp_path, monkeypatch):
    pytest.importorskip("mpi4py", reason="find_mpiexec looks for mpiexec only where mpi4py is installed")
    beside, on_path = tmp_path / "venv-bin", tmp_path / "path-bin"
    for folder in (beside, on_path):
        folder.mkdir()
        (folder / "mpiexec").write_text("#!/bin/sh\n")
        (folder / "mpiexec").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setattr(sys, "executable", str(beside / "python"))
    assert find_mpiexec() == str(beside / "mpiexec")      # a virtual environment's, active or not
    (beside / "mpiexec").unlink()
    assert find_mpiexec() == str(on_path / "mpiexec")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_mpiexec() is None


MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None, reason="no mpiexec beside this Python or on PATH, or no mpi4py (pip install -e '.[dist]' "
                            "brings mpi4py and mpich)")


@needs_mpi
def test_under_mpiexec_two_processes_train_like_one(tmp_path):
    out = tmp_path / "mpi.json"
    subprocess.run([MPIEXEC, "-n", "2", sys.executable, os.path.join(HERE, "mpi_equality.py"), str(out)],
                   check=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["ranks"] == 2 and result["ranks_here"] == 2
    assert result["threads_each"] == max(1, (os.cpu_count() or 1) // 2), "each rank takes half of the cores"
    assert result["waits_spin"] == ((os.cpu_count() or 1) >= 2), "waits spin only where every rank has a core"
    assert result["float64_relative_difference"] <= 1e-12
    assert result["float32_relative_difference"] <= 1e-5
    assert result["replicas_identical"]
    assert "waited 2 s for the other ranks" in result["stuck_rank_error"]


class Request:
    """A stand-in for an MPI request that completes at its ``calls``-th test (never, for None)."""

    def __init__(self, calls=None):
        self.calls, self.tests = calls, 0

    def Test(self):
        self.tests += 1
        return self.calls is not None and self.tests >= self.calls


def bare_mpi_communicator(timeout, spin_seconds):
    """An MpiCommunicator's waiting, without MPI (``wait`` uses no more of it)."""
    from minivgg.parallel import MpiCommunicator
    communicator = MpiCommunicator.__new__(MpiCommunicator)
    communicator.rank, communicator.size, communicator.timeout = 0, 2, timeout
    communicator.spin_seconds = spin_seconds
    return communicator


def test_an_mpi_wait_polls_without_sleeping_at_first(monkeypatch):
    from minivgg.parallel import mpi
    sleeps = []
    monkeypatch.setattr(mpi.time, "sleep", sleeps.append)
    request = Request(calls=50)
    bare_mpi_communicator(timeout=60, spin_seconds=mpi.SPIN_SECONDS).wait(request, "allreduce")
    assert request.tests == 50 and sleeps == [], "a collective that ends at once is not waited for in sleeps"


def test_with_more_ranks_than_cores_an_mpi_wait_sleeps_from_the_first_poll(monkeypatch):
    from minivgg.parallel import mpi
    sleeps = []
    monkeypatch.setattr(mpi.time, "sleep", sleeps.append)
    bare_mpi_communicator(timeout=60, spin_seconds=0.0).wait(Request(calls=3), "allreduce")
    assert sleeps == [mpi.POLL_SECONDS] * 2, "no spinning: a sleep after each poll that found it unfinished"


def test_a_long_mpi_wait_sleeps_between_polls_and_times_out_with_a_clear_error(monkeypatch):
    from minivgg.parallel import mpi
    sleeps, sleep = [], time.sleep
    monkeypatch.setattr(mpi.time, "sleep", lambda seconds: (sleeps.append(seconds), sleep(seconds)))
    with pytest.raises(CommunicatorError, match=r"MPI allreduce: rank 0 of 2 waited 0.1 s for the other ranks"):
        bare_mpi_communicator(timeout=0.1, spin_seconds=0.01).wait(Request(), "allreduce")
    assert sleeps and set(sleeps) == {mpi.POLL_SECONDS}, "after spin_seconds, polls are POLL_SECONDS apart"


def test_train_step_takes_the_whole_batch_or_this_rank_shard_and_names_anything_else(tmp_path):
    trainers = [make_trainer(tmp_path, np.float64, c) for c in InProcessGroup(2).communicators]
    (x, y), = batches(np.float64)[:1]
    with pytest.raises(ValueError, match=r"train_step: expected the inputs of the batch of 12 labels, or of rank "
                                         r"0's shard of 6, got 5"):
        trainers[0].train_step(x[:5], y)
