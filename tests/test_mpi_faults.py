"""Faults under ``mpiexec -n 2``: whatever happens to one rank, the job ends soon, with that rank's message.

Each case runs examples/train_vgg_a.py --distributed on a small image folder
(through tests/mpi_faults.py, which injects the fault), bounded by a
30-second subprocess timeout; a run that needs it has hung.  The
communicator's timeout is cut to 5 s (--comm-timeout) so that a stopped rank
is noticed quickly; less is fragile on a busy 2-core machine, where rank 0's
first checkpoint and plot (importing matplotlib) can keep the other rank
waiting at the next all-reduce for 2 s.  The time from the fault to the end of the job is
printed (pytest -s shows it).
"""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from minivgg.parallel import find_mpiexec

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, os.pardir, "examples", "train_vgg_a.py")
FAULTS = os.path.join(HERE, "mpi_faults.py")
LIMIT_S = 30

MPIEXEC = find_mpiexec()
pytestmark = pytest.mark.skipif(
    MPIEXEC is None, reason="no mpiexec beside this Python or on PATH, or no mpi4py (pip install -e '.[dist]' "
                            "brings mpi4py and mpich)")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train/ with 2 classes of 32 noise images, val/ with 4 per class: 8 steps per epoch at batch size 8."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", 32), ("val", 4)):
        for name in ("a", "b"):
            os.makedirs(root / split / name)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / split / name / f"{i}.png")
    return root


def flags(folder, out):
    return ["--dataset", "folder", "--data", str(folder), "--val-size", "8", "--width", "0.0625",
            "--batch-size", "8", "--epochs", "2", "--no-progress", "--distributed", "--comm-timeout", "5",
            "--out", str(out)]


def run_job(command):
    """Run an mpiexec command line; (exit status, stderr, end time). Every process it started is gone after."""
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        _, stderr = job.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        pytest.fail(f"the MPI job was still running after {LIMIT_S} s: it hung")
    end = time.time()
    with pytest.raises(ProcessLookupError):  # no rank is left behind, stopped or not
        os.killpg(job.pid, 0)
    return job.returncode, stderr, end


def fault_time(stderr):
    return float(re.search(r"^FAULT .* at ([0-9.]+)$", stderr, re.MULTILINE).group(1))


@pytest.mark.parametrize("fault, rank, message", [
    ("raise", 1, r"rank 1 of 2: RuntimeError: injected fault on rank 1"),
    ("stop", 0, r"rank 1 of 2: CommunicatorError: MPI allreduce: rank 1 of 2 waited 5 s for the other ranks"),
    # the ranks evaluate the test set together, so rank 0 waits for rank 1 in the evaluation's allgather
    ("stop-at-end", 1, r"rank 0 of 2: CommunicatorError: MPI allgather: rank 0 of 2 waited 5 s"),
], ids=["rank-1-raises", "rank-0-stopped-while-training", "rank-1-stopped-after-training"])
def test_a_fault_on_one_rank_aborts_the_job_with_its_message(tmp_path, folder, fault, rank, message):
    command = [MPIEXEC, "-n", "2", sys.executable, FAULTS, fault, str(rank), "3", "--", *flags(folder, tmp_path)]
    status, stderr, end = run_job(command)
    assert status != 0
    assert re.search(message, stderr), stderr[-3000:]
    assert re.search(r"rank \d: aborting the MPI job", stderr)
    print(f"\n{fault} on rank {rank}: the job ended {end - fault_time(stderr):.1f} s after the fault")


def test_ranks_started_with_different_settings_stop_before_training(tmp_path, folder):
    rank = [sys.executable, TRAIN, *flags(folder, tmp_path)]
    status, stderr, _ = run_job([MPIEXEC, "-n", "1", *rank, "--limit", "40", ":", "-n", "1", *rank, "--limit", "48"])
    assert status != 0
    assert re.search(r"rank \d of 2 disagrees with other ranks on --limit \(this rank has (40|48); ranks \[\d\] "
                     r"have another value\)", stderr), stderr[-3000:]
    assert not (tmp_path / "log.jsonl").exists()  # nothing was trained


def test_a_bad_flag_on_one_rank_ends_the_job_at_once(tmp_path, folder):
    rank = [sys.executable, TRAIN, *flags(folder, tmp_path)]
    start = time.time()
    status, stderr, end = run_job([MPIEXEC, "-n", "1", *rank, ":", "-n", "1", *rank, "--lr", "nan"])
    assert status != 0
    assert "argument --lr: expected a finite number > 0, got 'nan'" in stderr
    assert "rank 1 of 2: exited with status 2" in stderr
    assert end - start < LIMIT_S / 2  # not the communicator's set-up timeout (60 s by default)
