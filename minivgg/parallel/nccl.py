"""NCCL all-reduce of gradient buffers in GPU memory (through ``cupy.cuda.nccl``).

Two ways to drive several GPUs:

* one process per GPU (``NcclCommunicator``): rank 0 creates NCCL's unique
  id, MPI broadcasts it, every rank joins the NCCL clique;
* one process for all GPUs (``NcclInProcessGroup``): one replica thread per
  GPU; when every thread has reached the all-reduce, one of them issues the
  NCCL calls for all GPUs inside one group (``groupStart``/``groupEnd``),
  as NCCL requires when a single thread drives several devices.
"""
import numpy as np

from ..backend import check_device_index, require_cupy
from .communicator import DEFAULT_TIMEOUT, Communicator, InProcessCommunicator, InProcessGroup


def nccl_dtype(nccl, dtype):
    return {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}[np.dtype(dtype)]


def nccl_allreduce(cupy, nccl, comm, buffer):
    """Sum ``buffer`` in place over ``comm``'s clique, on the current stream."""
    stream = cupy.cuda.get_current_stream()
    comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, nccl_dtype(nccl, buffer.dtype),
                   nccl.NCCL_SUM, stream.ptr)
    return stream


class NcclCommunicator(Communicator):
    """All-reduce of CuPy buffers with NCCL, one process per GPU; set up over MPI.

    Rank 0 creates NCCL's unique id, MPI broadcasts it, and every rank joins
    the NCCL clique on GPU ``rank % gpus_per_machine``.
    """

    def __init__(self, mpi_communicator):
        cupy = require_cupy("NcclCommunicator")
        from cupy.cuda import nccl
        self.cupy, self.nccl, self.mpi = cupy, nccl, mpi_communicator
        self.rank, self.size = mpi_communicator.rank, mpi_communicator.size
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        unique_id = mpi_communicator.comm.bcast(unique_id, root=0)
        self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)

    def allreduce_sum(self, buffer):
        nccl_allreduce(self.cupy, self.nccl, self.comm, buffer).synchronize()

    def allgather(self, value):
        return self.mpi.allgather(value)

    def barrier(self, what):
        self.mpi.barrier(what)


class NcclInProcessGroup(InProcessGroup):
    """One communicator per GPU of ``devices``, for one replica thread per GPU in one process."""

    def __init__(self, devices, timeout=DEFAULT_TIMEOUT):
        super().__init__(len(devices), timeout)
        self.cupy = require_cupy("NcclInProcessGroup")
        for device in devices:
            check_device_index(self.cupy, f"cuda:{device}", device)
        from cupy.cuda import nccl
        self.nccl, self.devices = nccl, list(devices)
        self.nccl_comms = nccl.NcclCommunicator.initAll(self.devices)
        self.communicators = [NcclThreadCommunicator(self, rank) for rank in range(self.size)]

    def reduce_slots(self):
        """All-reduce every rank's buffer (in ``slots``) in one NCCL group, then wait for all GPUs."""
        streams = []
        self.nccl.groupStart()
        for device, comm, buffer in zip(self.devices, self.nccl_comms, self.slots):
            with self.cupy.cuda.Device(device):
                streams.append(nccl_allreduce(self.cupy, self.nccl, comm, buffer))
        self.nccl.groupEnd()
        for device, stream in zip(self.devices, streams):
            with self.cupy.cuda.Device(device):
                stream.synchronize()


class NcclThreadCommunicator(InProcessCommunicator):
    """Rank ``rank``'s side of an NcclInProcessGroup: its buffer stays on its GPU."""

    def allreduce_sum(self, buffer):
        group = self.group
        group.slots[self.rank] = buffer
        group.wait(self.rank, "allreduce_sum")
        if self.rank == 0:
            group.reduce_slots()
        group.wait(self.rank, "allreduce_sum")
