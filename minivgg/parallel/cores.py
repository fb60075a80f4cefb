"""Sharing one machine's cores among the data-parallel ranks that run on it.

A process of minivgg uses every core it sees: OpenBLAS starts a thread per
core, and so does the pool of shard threads (``kernels/shards.py``).  Two
ranks on a 2-core machine would then run eight threads on two cores, and
each thread's share of the work waits for the others' time slices.  So a
rank takes ``cores // ranks_on_this_machine`` threads of each kind, at
least one.  A thread count the user set in the environment wins.

Measured (``benchmarks/parallel.py``'s worker under ``mpiexec -n 2``, 2-core
EPYC, VGG-A width 0.25, batch 64, median steps): each rank with OpenBLAS's
and the shard pool's default 2 + 2 threads took 94-1008 ms a step with MPI
waits that slept between polls, 121-125 ms with waits that spin (``mpi.py``);
with 1 + 2 threads 27.1-27.5 ms; with its share, 1 + 1, 25.2-25.9 ms.
"""
import os

from threadpoolctl import threadpool_limits

from ..kernels import shards

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def share_cores(ranks_here, cores=None):
    """Give this rank, one of ``ranks_here`` on this machine, its share of the ``cores`` (default: all
    of them): as many shard threads and BLAS threads.  Returns the share."""
    if not (isinstance(ranks_here, int) and ranks_here >= 1):
        raise ValueError(f"share_cores: expected a positive number of ranks on this machine, got {ranks_here!r}")
    share = max(1, (cores or os.cpu_count() or 1) // ranks_here)
    if "MINIVGG_THREADS" not in os.environ:
        shards.set_threads(share)
    if not any(name in os.environ for name in BLAS_THREAD_VARIABLES):
        threadpool_limits(limits=share, user_api="blas")
    return share
