"""Data parallel on the cores of one machine, without MPI: worker processes that share memory.

    python examples/train_vgg_a.py --processes 2

``launch`` starts ``size`` processes.  Each is a replica with its share of the
cores (``share_cores``) that takes its shard of every batch, as under
``mpiexec``.  Why processes and not threads: NumPy lets go of the GIL only
inside its loops, and a step of a small network is many short loops, so two
replicas in two threads of one process ran only 1.13-1.19x one process,
where two processes ran 1.2-1.45x (``benchmarks/results/parallel.md``).

The ranks all-reduce through memory that they all map (a
``multiprocessing.RawArray``): a slot per rank and a result area, each of
CHUNK_BYTES.  A buffer goes through them a chunk at a time:

    1. rank r copies its chunk into slot r;                                barrier
    2. rank r adds up its part of the chunk (``even_part``) over slots
       0, 1, ..., size-1, in that order, into the result area;             barrier
    3. every rank copies the result into its buffer.

Every element is summed in rank order whichever rank sums it, so every rank
gets the same sum, bit for bit (and the same as ``InProcessGroup``'s).  A
rank writes its slot or the result area again only after the next chunk's
first barrier, which no rank passes before all have finished step 3.
"""
import multiprocessing
import threading
from multiprocessing.connection import wait as wait_for_any

import numpy as np

from .communicator import DEFAULT_TIMEOUT, Communicator, CommunicatorError
from .cores import share_cores
from .data_parallel import even_part

CHUNK_BYTES = 8 << 20   # the default run's gradients (1.77 million float32) go through in one chunk


class SharedMemoryGroup:
    """What the ``size`` ranks of one machine share: the slots, the result area and a barrier.

    Made by the parent process before it starts the ranks, which inherit it.
    """

    def __init__(self, size, context, timeout=DEFAULT_TIMEOUT):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"SharedMemoryGroup: expected a positive number of ranks, got {size!r}")
        self.size, self.timeout = size, timeout
        self.memory = context.RawArray("b", (size + 1) * CHUNK_BYTES)   # slots 0..size-1, then the result
        self.values = context.RawArray("d", size)                     # allgather's floats, one per rank
        self.barrier = context.Barrier(size)


class SharedMemoryCommunicator(Communicator):
    """Rank ``rank`` of a ``SharedMemoryGroup``: the all-reduce of the module docstring."""

    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size
        self.timeout = group.timeout
        self.memory = np.frombuffer(group.memory, dtype=np.uint8).reshape(self.size + 1, CHUNK_BYTES)
        self.values = np.frombuffer(group.values, dtype=np.float64)

    def barrier(self, what):
        """Wait until every rank has reached this point (CommunicatorError after ``timeout`` seconds)."""
        try:
            self.group.barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise CommunicatorError(f"{what}: rank {self.rank} of {self.size} waited {self.timeout:g} s for the "
                                    f"other ranks; one of them died or is stuck") from None

    def allreduce_sum(self, buffer):
        if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
            raise TypeError(f"SharedMemoryCommunicator.allreduce_sum: expected a contiguous NumPy buffer, got "
                            f"{type(buffer).__name__}; on GPUs use NcclCommunicator")
        flat = buffer.reshape(-1)
        per_chunk = CHUNK_BYTES // flat.itemsize
        for start in range(0, flat.size, per_chunk):
            self.allreduce_chunk(flat[start:start + per_chunk])

    def allreduce_chunk(self, chunk):
        slots = self.memory[:, :chunk.nbytes].view(chunk.dtype)   # (size + 1, len(chunk)): the slots, the result
        slots[self.rank] = chunk
        self.barrier("allreduce_sum")
        start, stop = even_part(chunk.size, self.size, self.rank)
        part, result = slots[:self.size, start:stop], slots[self.size, start:stop]
        np.copyto(result, part[0])
        for slot in part[1:]:
            result += slot
        self.barrier("allreduce_sum")
        chunk[...] = slots[self.size]

    def allgather(self, value):
        self.values[self.rank] = value
        self.barrier("allgather")
        values = self.values.tolist()
        self.barrier("allgather")   # nobody writes the next value while another rank still reads
        return values


class RankFailed(RuntimeError):
    """A rank that ``launch`` started exited with an error; the message names it and its exit code."""


def launch(target, args, size, timeout=DEFAULT_TIMEOUT):
    """Run ``target(*args, communicator)`` in ``size`` new processes, one rank each, and wait for them.

    ``target`` must be importable by name (a module's function: the ranks
    are started fresh, with ``spawn``).  Each rank first takes its share of
    the cores.  When a rank fails, the others are stopped at once and
    RankFailed names the first that failed; its own error is on stderr.
    """
    context = multiprocessing.get_context("spawn")
    group = SharedMemoryGroup(size, context, timeout)
    ranks = [context.Process(target=run_rank, args=(group, rank, target, args), name=f"rank {rank}")
             for rank in range(size)]
    try:
        for process in ranks:
            process.start()
        wait_for_ranks(ranks)
    finally:
        for process in ranks:
            if process.is_alive():
                process.terminate()
            process.join()


def run_rank(group, rank, target, args):
    share_cores(group.size)
    target(*args, SharedMemoryCommunicator(group, rank))


def wait_for_ranks(ranks):
    """Wait until every rank has exited; raise RankFailed as soon as one exits with an error."""
    running = {process.sentinel: process for process in ranks}
    while running:
        for sentinel in wait_for_any(list(running)):
            process = running.pop(sentinel)
            process.join()
            if process.exitcode != 0:
                raise RankFailed(f"launch: {process.name} of {len(ranks)} exited with code {process.exitcode} "
                                 f"(its error is above); the other ranks were stopped")
