"""The communicator interface of data-parallel training, and the in-process implementation.

Data parallelism (the paper, section 3.3): every replica holds the same
weights, takes its own shard of the batch, computes the gradients of its
shard, and then all replicas *all-reduce* the gradients, i.e. each ends up
with the sum over all shards.  Since every replica then applies the same
update to the same weights, they stay identical.

Following ChainerMN, the gradients of all parameters are packed into one
flat buffer, so that one all-reduce call does the whole exchange:

    pack -> all-reduce (sum) -> unpack

A communicator needs only ``rank``, ``size``, ``allreduce_sum`` (in place on
a flat array) and ``allgather`` (one float per rank, for checks).  Data
parallel calls ``allreduce_arrays``, whose default does the three steps
above; a communicator that can sum the arrays where they lie, without the
packed copy, overrides it (``processes.py``).
"""
import abc
import threading

import numpy as np

from ..backend import get_array_module

DEFAULT_TIMEOUT = 60.0  # seconds a rank waits for the others before giving up


class CommunicatorError(RuntimeError):
    """A collective operation failed: a rank died, timed out or disagreed."""


class Communicator(abc.ABC):
    """What data parallel needs of a communicator (see the module docstring)."""

    rank = 0
    size = 1

    @abc.abstractmethod
    def allreduce_sum(self, buffer):
        """Replace ``buffer`` in place by the element-wise sum of every rank's buffer."""

    @abc.abstractmethod
    def allgather(self, value):
        """The list of every rank's ``value`` (a float), in rank order."""

    def allreduce_arrays(self, arrays):
        """Replace each of ``arrays`` in place by its sum over all ranks, in one all-reduce."""
        buffer = pack(arrays, get_array_module(arrays[0]))
        self.allreduce_sum(buffer)
        unpack(buffer, arrays)


class SingleDevice(Communicator):
    """The communicator of a run on one device: rank 0 of 1, whose collectives change nothing."""

    def allreduce_sum(self, buffer):
        return None

    def allgather(self, value):
        return [value]


class InProcessGroup:
    """``size`` communicators for ``size`` threads of one process (tests, several CPU replicas).

    Rank k writes its buffer into a shared slot; after a barrier every rank
    adds all slots up *in rank order*, so every rank gets the same sum, bit
    for bit.  A rank that does not reach the barrier within ``timeout``
    seconds breaks it, and every waiting rank raises CommunicatorError.
    """

    def __init__(self, size, timeout=DEFAULT_TIMEOUT):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"InProcessGroup: expected a positive number of ranks, got {size!r}")
        self.size, self.timeout = size, timeout
        self.slots = [None] * size
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.communicators = [InProcessCommunicator(self, rank) for rank in range(size)]

    def wait(self, rank, what):
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            raise CommunicatorError(f"{what}: rank {rank} waited {self.timeout:g} s for the other "
                                    f"{self.size - 1} ranks; one of them died or is stuck") from None


class InProcessCommunicator(Communicator):
    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size

    def allreduce_sum(self, buffer):
        group = self.group
        group.slots[self.rank] = buffer.copy()
        group.wait(self.rank, "allreduce_sum")
        total = group.slots[0].copy()
        for slot in group.slots[1:]:
            total += slot
        group.wait(self.rank, "allreduce_sum")  # nobody overwrites a slot while another rank still reads
        buffer[...] = total

    def allgather(self, value):
        group = self.group
        group.slots[self.rank] = value
        group.wait(self.rank, "allgather")
        values = list(group.slots)
        group.wait(self.rank, "allgather")
        return values


def pack(arrays, xp=np):
    """One flat buffer holding every array, in order."""
    return xp.concatenate([a.reshape(-1) for a in arrays])


def unpack(buffer, arrays):
    """Copy slices of the flat ``buffer`` back into ``arrays`` (in place)."""
    offset = 0
    for array in arrays:
        array[...] = buffer[offset:offset + array.size].reshape(array.shape)
        offset += array.size
