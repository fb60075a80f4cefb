"""The communicator across processes and machines: MPI (mpi4py).

    mpiexec -n 4 python examples/train_vgg_a.py --distributed

starts four processes; each builds an ``MpiCommunicator`` on
``MPI.COMM_WORLD``.  On the CPU the gradient buffer is all-reduced by MPI
itself.  On GPUs (``--device cuda``), MPI only shares NCCL's unique id and
NCCL all-reduces the buffer from device memory (``nccl.py``).

MPI collectives block forever when a rank has died.  So every collective
here is started non-blocking (``Iallreduce``, ``Ibarrier``) and polled until
``timeout`` seconds have passed, then raises CommunicatorError.

An error on one rank must end the whole job, or the other ranks wait for it
until their timeout (and a rank that merely returns can then block for good
in ``MPI_Finalize``).  ``abort_on_error()`` turns any exception on any rank
into an ``MPI_Abort`` of the job, after printing the rank's message.
"""
import contextlib
import importlib.util
import os
import shutil
import sys
import time
import traceback

import numpy as np

from .communicator import DEFAULT_TIMEOUT, Communicator, CommunicatorError

SPIN_SECONDS = 0.05  # a collective's wait polls without sleeping this long (a core for each rank here)
POLL_SECONDS = 0.001
ABORT_GRACE_SECONDS = 1.0  # time for mpiexec to forward an aborting rank's last lines


def find_mpiexec():
    """The ``mpiexec`` that starts MPI jobs of this Python: the one installed beside it (pip's mpich puts it
    in a virtual environment's bin/, which is on PATH only while the environment is active), else the one
    on PATH; None where there is none, or no mpi4py."""
    if importlib.util.find_spec("mpi4py") is None:
        return None
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def import_mpi():
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("MpiCommunicator needs mpi4py and an MPI library; install them with: "
                          "pip install -e '.[dist]'  (mpi4py and mpich)") from None
    return MPI


class MpiCommunicator(Communicator):
    """All-reduce over MPI processes (one replica per process)."""

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT):
        self.MPI = import_mpi()
        self.comm = comm or self.MPI.COMM_WORLD
        self.rank, self.size, self.timeout = self.comm.Get_rank(), self.comm.Get_size(), timeout
        self.spin_seconds = 0.0   # until the ranks on this machine are counted
        self.barrier("set-up")   # every rank is here: the blocking split below cannot wait for a dead one
        here = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        self.ranks_here = here.Get_size()   # the ranks on this machine, which share its cores
        here.Free()
        # a rank that spins in a wait takes a core from one it waits for where there are more ranks than cores
        self.spin_seconds = SPIN_SECONDS if self.ranks_here <= (os.cpu_count() or 1) else 0.0

    def barrier(self, what):
        """Wait until every rank has reached this point (CommunicatorError after ``timeout`` seconds)."""
        self.wait(self.comm.Ibarrier(), f"barrier ({what})")

    def wait(self, request, what):
        """Poll a non-blocking request until it completes or ``timeout`` passes.

        The first ``spin_seconds`` poll without a pause: an all-reduce of the
        default run's gradients takes about a millisecond, and a 1 ms sleep
        between polls made it take 20% of a step instead of 6%
        (``benchmarks/parallel.py``).  A longer wait (a rank still busy, or
        dead), and every wait where the machine has more ranks than cores,
        polls every POLL_SECONDS, leaving the core to others.
        """
        start = time.monotonic()
        while not request.Test():
            waited = time.monotonic() - start
            if waited > self.timeout:
                raise CommunicatorError(f"MPI {what}: rank {self.rank} of {self.size} waited {self.timeout:g} s "
                                        f"for the other ranks; one of them died or is stuck")
            if waited > self.spin_seconds:
                time.sleep(POLL_SECONDS)

    def allreduce_sum(self, buffer):
        if not isinstance(buffer, np.ndarray):
            raise TypeError("MpiCommunicator.allreduce_sum: expected a NumPy buffer; on GPUs use NcclCommunicator")
        self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM), "allreduce")

    def allgather(self, value):
        gathered = np.zeros(self.size)
        self.wait(self.comm.Iallgather(np.array([value], dtype=np.float64), gathered), "allgather")
        return gathered.tolist()


@contextlib.contextmanager
def abort_on_error():
    """Within this block, an exception on one rank of an MPI job ends every rank at once (``MPI_Abort``).

    The rank prints its traceback, then one last line naming it and the
    error, to stderr.  A rank that fails before it has started MPI (a bad
    flag) starts it only to abort, or the others would wait for it until
    their timeout.  Outside a job of several ranks nothing changes: the
    exception propagates as usual.
    """
    try:
        yield
    except BaseException as error:
        world = mpi_world() if mpiexec_size() > 1 and not is_clean_exit(error) else None
        if world is None:
            raise
        report(world, error)
        time.sleep(ABORT_GRACE_SECONDS)  # mpiexec forwards a rank's output asynchronously; the abort would cut it
        world.Abort(1)


def is_clean_exit(error):
    return isinstance(error, SystemExit) and not error.code


def report(world, error):
    """Print, to stderr, why this rank aborts: the traceback (unless a script's exit said why), then one line."""
    if isinstance(error, SystemExit):  # a one-line error is its message; argparse has printed its own (status 2)
        what = error.code if isinstance(error.code, str) else f"exited with status {error.code}"
    else:
        traceback.print_exception(type(error), error, error.__traceback__)
        what = f"{type(error).__name__}: {error}"
    print(f"rank {world.Get_rank()} of {world.Get_size()}: {what}\nrank {world.Get_rank()}: aborting the MPI job",
          file=sys.stderr, flush=True)


def mpiexec_size():
    """The number of ranks mpiexec started (MPICH's or Open MPI's environment), 1 outside mpiexec."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdecimal():
            return int(os.environ[name])
    return 1


def mpi_world():
    """``MPI.COMM_WORLD``, starting MPI if this process has not yet; None when mpi4py is missing or MPI finished."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return None if MPI.Is_finalized() else MPI.COMM_WORLD
