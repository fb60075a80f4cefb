"""Floor 5: data-parallel training across threads, processes, machines and GPUs."""
from .communicator import Communicator, CommunicatorError, InProcessGroup, SingleDevice, pack, unpack
from .cores import share_cores
from .data_parallel import (allreduce_gradients, check_agreement, check_batches_split, check_replicas, checksum,
                            even_part, shard_bounds)
from .mpi import MpiCommunicator, abort_on_error, find_mpiexec
from .nccl import NcclCommunicator, NcclInProcessGroup
from .processes import RankFailed, SharedMemoryCommunicator, SharedMemoryGroup, launch

__all__ = ["Communicator", "CommunicatorError", "InProcessGroup", "MpiCommunicator", "NcclCommunicator",
           "NcclInProcessGroup", "RankFailed", "SharedMemoryCommunicator", "SharedMemoryGroup", "SingleDevice",
           "abort_on_error", "allreduce_gradients", "check_agreement", "check_batches_split", "check_replicas",
           "checksum", "even_part", "find_mpiexec", "launch", "pack", "shard_bounds", "share_cores", "unpack"]
