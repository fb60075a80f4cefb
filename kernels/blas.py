"""Stacks of matrix products on the CPU: OpenBLAS on one thread, the stack split over minivgg's threads.

A Winograd layer makes its convolution 16 or 36 products ``a[k] @ b[k]``
of a few hundred rows each (``minivgg/functions/conv.py``).  NumPy hands
such a stack to BLAS one product at a time, and OpenBLAS splits every one
of them over its threads and waits for all of them at its end: on products
this small the hand-over and the wait cost more than the second core
brings, and a stack runs slower on two OpenBLAS threads than on one.
``stacked_matmul`` instead tells OpenBLAS to use one thread for the stack
and gives each of minivgg's shard threads (``shards.py``) its own part of
it: every product is computed whole, by one thread, as before.

Measured on the 2-core AVX-512 EPYC (float32, medians of 30, OpenBLAS's
own two threads against one thread per half of the stack):

    stack (products, rows, inner, columns)      2 OpenBLAS threads   halves in 2 threads
    36 x (256, 64) @ (64, 64)     (the default run's 64->64 @8)   1.15 ms          0.28 ms   (4.2x)
    36 x (1024, 64) @ (64, 128)   (VGG-A's 64->128 @16)            2.43 ms          1.77 ms   (1.37x)
    36 x (256, 128) @ (128, 256)  (128->256 @8)                    2.93 ms          1.51 ms   (1.94x)
    36 x (256, 256) @ (256, 256)  (256->256 @8)                    4.74 ms          3.03 ms   (1.57x)
    16 x (256, 512) @ (512, 512)  (512->512 @4)                    6.52 ms          5.19 ms   (1.26x)

The filter transforms are stacks too, one small product per output channel
(``winograd_filter_transform``: (16, 9) @ (9, C) for each of O): at 512 ->
512 channels 0.91 -> 0.34 ms for F(2x2), 4.0 -> 3.0 ms for F(4x4).

A single product (a fully connected layer, im2col's GEMM) keeps OpenBLAS's
threads: split in two halves the same way it was 0.89-0.98x as fast.  So
does a small stack: below about 2**23 multiply-adds, handing half of it to
the other thread (some 45 us) costs more than it saves (16 x (64, 128) @
(128, 128), 2**24: 264 us in NumPy, 148 us split; 16 x (64, 64) @ (64, 64),
2**22: 34 us against 69 us).

OpenBLAS's thread count is one setting for the whole process, switched
through threadpoolctl (about 6 us there and back); a lock keeps two threads
(data-parallel replicas) from switching it at once.  Where NumPy's BLAS is not OpenBLAS
(threadpoolctl finds none), a stack runs as NumPy runs it.
"""
import contextlib
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from . import shards

MIN_MULTIPLY_ADDS = 1 << 23
_lock = threading.Lock()
_openblas = None   # threadpoolctl's controller of the OpenBLAS libraries loaded (NumPy's), made on first use


def openblas():
    """threadpoolctl's controller of the loaded OpenBLAS libraries (it holds none where there is none)."""
    global _openblas
    if _openblas is None:
        _openblas = ThreadpoolController().select(internal_api="openblas")
    return _openblas


@contextlib.contextmanager
def one_openblas_thread():
    """Within this block OpenBLAS runs every product on the calling thread alone; then as many as before."""
    with _lock, openblas().limit(limits=1):
        yield


def over_threads(work, n, elements):
    """``shards.over_batch(work, n, elements)`` with one OpenBLAS thread: for work whose shards make
    matrix products, each shard's products on its own core.  With one shard thread, as OpenBLAS is set."""
    if shards.THREADS == 1:
        work(0, n)
        return
    with one_openblas_thread():
        shards.over_batch(work, n, elements)


def stacked_matmul(a, b, out):
    """``out[k] = a[k] @ b[k]`` for NumPy stacks of matrices (3-d ``b`` and ``out``, and ``a`` 3-d of the
    same stack length, or one matrix for every product): from MIN_MULTIPLY_ADDS on, part of the stack on
    each shard thread, each product on one OpenBLAS thread; a smaller stack as NumPy runs it.  Returns
    ``out``."""
    multiply_adds = out.size * a.shape[-1]
    if multiply_adds < MIN_MULTIPLY_ADDS or not openblas().lib_controllers:
        return np.matmul(a, b, out=out)

    def products(start, stop):
        np.matmul(a[start:stop] if a.ndim == 3 else a, b[start:stop], out=out[start:stop])
    over_threads(products, len(out), multiply_adds)
    return out
