"""Data parallel on the cores of one machine, without MPI: worker processes that share memory.

    python examples/train_vgg_a.py --processes 2

``launch`` starts ``size`` processes.  Each is a replica with its share of the
cores (``share_cores``) that takes its shard of every batch, as under
``mpiexec``.  Why processes and not threads: NumPy lets go of the GIL only
inside its loops, and a step of a small network is many short loops, so two
replicas in two threads of one process ran only 1.13-1.19x one process.  Two
processes train the default run 1.1-1.2x as fast as one on 2 cores; at the
paper's widths, where one process's BLAS already keeps both cores busy, they
are slower (``benchmarks/results/parallel.md``).

The ranks all-reduce through memory that they all map (a
``multiprocessing.RawArray``): a slot per rank and a result area, each of
CHUNK_BYTES.  The arrays to sum (a step's gradients), laid end to end, go
through them a chunk at a time:

    1. rank r copies its arrays' pieces of the chunk into slot r;          barrier
    2. rank r adds up its part of the chunk (``even_part``) over slots
       0, 1, ..., size-1, in that order, into the result area;             barrier
    3. every rank copies the result back into its arrays' pieces.

The arrays are copied straight into the slot and back, never packed into
one buffer first: for the default run that saves two of the four passes over
its 7 MB of gradients (``allreduce_arrays``).

Every element is summed in rank order whichever rank sums it, so every rank
gets the same sum, bit for bit (and the same as ``InProcessGroup``'s).  A
rank writes its slot or the result area again only after the next chunk's
first barrier, which no rank passes before all have finished step 3.
"""
import multiprocessing
import os
import sys
import threading
from multiprocessing.connection import wait as wait_for_any

import numpy as np

from ..kernels.layout import flat_memory, is_dense
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
        self.allreduce_arrays([buffer])

    def allreduce_arrays(self, arrays):
        """Sum each of ``arrays`` (NumPy, dense, one dtype) over the ranks in place (the module docstring)."""
        flats = [flat_view(a, "SharedMemoryCommunicator.allreduce_arrays") for a in arrays]
        dtypes = {flat.dtype for flat in flats}
        if len(dtypes) != 1:
            raise TypeError(f"SharedMemoryCommunicator.allreduce_arrays: expected arrays of one dtype, got "
                            f"{sorted(map(str, dtypes))}")
        per_chunk = CHUNK_BYTES // flats[0].itemsize
        total = sum(flat.size for flat in flats)
        for start in range(0, total, per_chunk):
            self.allreduce_chunk(flats, start, min(start + per_chunk, total))

    def allreduce_chunk(self, flats, start, stop):
        """Steps 1-3 of the module docstring for elements [start, stop) of ``flats`` laid end to end."""
        slots = self.memory[:, :(stop - start) * flats[0].itemsize].view(flats[0].dtype)   # the slots, the result
        for piece, offset in pieces(flats, start, stop):
            slots[self.rank, offset:offset + piece.size] = piece
        self.barrier("allreduce")
        first, last = even_part(stop - start, self.size, self.rank)
        part, result = slots[:self.size, first:last], slots[self.size, first:last]
        np.copyto(result, part[0])
        for slot in part[1:]:
            result += slot
        self.barrier("allreduce")
        for piece, offset in pieces(flats, start, stop):
            piece[...] = slots[self.size, offset:offset + piece.size]

    def allgather(self, value):
        self.values[self.rank] = value
        self.barrier("allgather")
        values = self.values.tolist()
        self.barrier("allgather")   # nobody writes the next value while another rank still reads
        return values


def flat_view(array, what):
    """The 1-d view of NumPy ``array``'s memory (its axes in any order), which must be one dense block."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{what}: expected NumPy arrays, got {type(array).__name__}; on GPUs use NcclCommunicator")
    if not is_dense(array):
        raise ValueError(f"{what}: expected arrays that fill one block of memory, got one of shape {array.shape} "
                         f"with strides {array.strides}")
    return flat_memory(array)


def pieces(flats, start, stop):
    """The pieces of the 1-d arrays ``flats``, laid end to end, that fall in [start, stop), each with its
    offset from ``start``."""
    offset = 0
    for flat in flats:
        first, last = max(start, offset), min(stop, offset + flat.size)
        if first < last:
            yield flat[first - offset:last - offset], first - start
        offset += flat.size


class RankFailed(RuntimeError):
    """A rank that ``launch`` started exited with an error; the message names it and its exit code."""


def launch(target, args, size, timeout=DEFAULT_TIMEOUT):
    """Run ``target(*args, communicator)`` in ``size`` new processes, one rank each, and wait for them.

    ``target`` must be importable by name (a module's function: the ranks
    are started fresh, with ``spawn``).  Each rank first takes its share of
    the cores.  When a rank fails, the others are stopped at once and
    RankFailed names the first that failed; its own error is on stderr.  A
    one-line error (``SystemExit("...")``, as a script's bad setting) that
    several ranks meet is printed once.
    """
    context = multiprocessing.get_context("spawn")
    group = SharedMemoryGroup(size, context, timeout)
    errors = context.SimpleQueue()
    ranks = [context.Process(target=run_rank, args=(group, rank, target, args, errors), name=f"rank {rank}")
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
        print_once(errors)


def print_once(errors):
    """Print each distinct one-line error that the ranks put in the queue ``errors``, in turn, to stderr."""
    printed = []
    while not errors.empty():
        line = errors.get()
        if line not in printed:
            print(line, file=sys.stderr, flush=True)
            printed.append(line)


def run_rank(group, rank, target, args, errors):
    threading.Thread(target=exit_with_parent, name="minivgg-rank-watch", daemon=True).start()
    share_cores(group.size)
    try:
        target(*args, SharedMemoryCommunicator(group, rank))
    except SystemExit as error:
        if not isinstance(error.code, str):
            raise
        errors.put(error.code)   # the launcher prints it, once however many ranks meet it
        raise SystemExit(1) from None


def exit_with_parent():
    """End this rank when the process that launched it ends, however it ends (killed too): no rank
    goes on training alone."""
    wait_for_any([multiprocessing.parent_process().sentinel])
    os._exit(1)


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
