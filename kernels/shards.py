"""Spreading a NumPy twin's work over the CPU's cores, in shards of the batch.

BLAS already runs the GEMMs on every core; the copies and element-wise
ufuncs around them (im2col, col2im, pooling, ReLU) run on one.  NumPy
releases the GIL inside copies and ufuncs, so threads that each take a
slice of the batch run on separate cores at once.  Each shard writes its
own slice of a preallocated output: the result is the same, bit for bit,
however many shards there are.

``MINIVGG_THREADS`` sets the number of threads (default: the CPU count);
1 turns the pool off.  ``set_threads`` changes it while running (data-parallel
ranks that share one machine's cores, ``minivgg/parallel/cores.py``).
"""
import os
from concurrent.futures import ThreadPoolExecutor

THREADS = max(1, int(os.environ.get("MINIVGG_THREADS", os.cpu_count() or 1)))
# Below this many elements a second thread costs more than it saves: handing a shard over and waking the
# other core takes some 50-70 us here.  np.maximum on float32 (2-core AVX-512 EPYC, medians of 200): two
# threads against one 0.28x at 2^16 elements, 0.55x at 2^17, 0.82x at 2^18, 1.05x at 2^19, 1.28x at 2^20.
# Whole steps, in-process A/B against 2^16: default run 1.02x, VGG-D width 1 1.04x, VGG-A's forward 1.01x.
MIN_ELEMENTS = 1 << 18


def make_pool(threads):
    """The pool of the ``threads - 1`` helpers (this thread is the other one); None for one thread."""
    return ThreadPoolExecutor(threads - 1, thread_name_prefix="minivgg-shard") if threads > 1 else None


_pool = make_pool(THREADS)


def set_threads(threads):
    """Run the shards on ``threads`` threads from now on (1: all in the calling thread)."""
    global THREADS, _pool
    if not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"set_threads: expected a positive number of threads, got {threads!r}")
    if threads != THREADS:
        old, THREADS, _pool = _pool, threads, make_pool(threads)
        if old is not None:
            old.shutdown(wait=True)


def bounds(n, shards):
    """``shards`` (start, stop) ranges that cover range(n) as evenly as possible."""
    return [(n * k // shards, n * (k + 1) // shards) for k in range(shards)]


def over_batch(work, n, elements):
    """Run ``work(start, stop)`` on shards of range(n), one per thread, and wait for all of them.

    ``elements`` is the size of the job; a small one runs in this thread alone.
    """
    shards = min(THREADS, n) if elements >= MIN_ELEMENTS else 1
    if shards <= 1:
        work(0, n)
        return
    first, *rest = bounds(n, shards)
    futures = [_pool.submit(work, start, stop) for start, stop in rest]
    work(*first)              # this thread takes the first shard
    for future in futures:
        future.result()       # re-raises a shard's exception here
