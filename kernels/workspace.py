"""Reused output buffers for the NumPy twins: after the first step, a step allocates (almost) nothing.

A training step makes the same arrays at every step: im2col's columns, the
GEMMs' outputs, the pooling indices, the gradients.  Allocated anew, each
large one costs page faults: the operating system hands out zeroed pages
one at a time as they are first written, which shows as system time.
``empty(shape, dtype)`` instead returns a view, of that shape and dtype, of a
byte buffer made by an earlier call, once nothing else holds that buffer any
more (its reference count says so: every view of a buffer holds it), else of
a new one that it keeps.  Buffers come in size classes (``size_class``), so
an array released by one layer is reused by the next of about its size
whatever its shape: the pool then holds about what a step has alive at once,
not every array the step ever made.

The pool keeps at most ``MINIVGG_WORKSPACE_MB`` (default 1024) MiB of
buffers; beyond that, buffers nobody holds are dropped, least recently used
first, and new ones are not kept.  CuPy has a caching allocator of its own,
so GPU arrays are simply allocated.

Measured (``benchmarks/vs_pytorch.py``, 2-core machine): pooling by shape
instead of by size class held 2335 MiB at VGG-A 224 (batch 8) against 2171,
and VGG-D width 1 at 32x32 outgrew the 1 GiB and lost 13% of its step to page
faults.
"""
import math
import os
import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np

from . import blas
from .layout import array_module, memory_order

LIMIT_BYTES = int(os.environ.get("MINIVGG_WORKSPACE_MB", "1024")) * 2 ** 20

_buffers = OrderedDict()   # size class in bytes -> [uint8 arrays], most recently used last
_lock = threading.Lock()   # data-parallel replicas run in threads
_handed_over = weakref.WeakValueDictionary()   # id -> a pooled array that its maker handed over (hand_over)


def is_free(buffer):
    """Nothing but the pool holds ``buffer``.

    Called on an element of a pool list, from a loop over it, ``buffer`` has four
    references of its own: the list, the caller's loop variable, this
    function's argument and getrefcount's.  A fifth means someone holds it.
    """
    return sys.getrefcount(buffer) <= 4


def pooled_bytes():
    return sum(b.nbytes for buffers in _buffers.values() for b in buffers)


def drop_free_buffers(needed):
    """Drop free buffers, least recently used first, until ``needed`` more bytes fit under the limit."""
    for key in list(_buffers):
        if pooled_bytes() + needed <= LIMIT_BYTES:
            return
        _buffers[key] = [b for b in _buffers[key] if not is_free(b)]
        if not _buffers[key]:
            del _buffers[key]


def size_class(nbytes):
    """The pool's buffer size for a request of ``nbytes``: 1, 1.25, 1.5 or 1.75 times a power of two.

    Requests of nearby sizes share a class, so a buffer released by one layer
    serves the next whose array has a different shape but about the same size;
    a buffer is never more than 25% larger than what it holds.
    """
    if nbytes <= 64:
        return 64
    quarter = 1 << (nbytes.bit_length() - 3)       # a quarter of the power of two at or below nbytes
    return -(-nbytes // quarter) * quarter


def take(shape, dtype):
    """A free pooled NumPy buffer viewed as ``shape`` and ``dtype``, or a new one (pooled while it fits)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    size = size_class(nbytes)
    with _lock:
        buffers = _buffers.setdefault(size, [])
        _buffers.move_to_end(size)
        for raw in buffers:
            if is_free(raw):
                break
        else:
            raw = np.empty(size, np.uint8)
            drop_free_buffers(size)
            if pooled_bytes() + size <= LIMIT_BYTES:
                buffers.append(raw)
        return raw[:nbytes].view(dtype).reshape(shape)


def empty(shape, dtype, like=None):
    """An uninitialised array of ``shape``: pooled for NumPy, plain for CuPy (``like`` picks the library)."""
    if like is not None and array_module(like) is not np:
        return array_module(like).empty(shape, dtype=dtype)
    return take(shape, dtype)


def zeros(shape, dtype, like=None):
    """A zero-filled array of ``shape``, from the pool for NumPy."""
    out = empty(shape, dtype, like)
    out.fill(0)
    return out


def empty_like(a, dtype=None):
    """An uninitialised pooled array shaped like NumPy ``a``, its axes in the same memory order
    (of ``a``'s dtype unless ``dtype`` is given)."""
    order = memory_order(a)
    return take([a.shape[axis] for axis in order], a.dtype if dtype is None else dtype).transpose(
        np.argsort(order).tolist())


def copy(a):
    """A copy of ``a`` with its memory order: in a pooled buffer for NumPy, a new array for CuPy."""
    if array_module(a) is not np:
        return a.copy(order="K")
    out = empty_like(a)
    np.copyto(out, a)
    return out


def hand_over(a):
    """Say that nothing but ``a`` views its pooled buffer, so that whoever receives it may keep it.

    A kernel that makes a result in a pooled buffer, keeps no other view of
    it and returns it (a weight's gradient from its GEMM) hands it over;
    ``own_or_copy`` then keeps it instead of copying it, once.  Returns ``a``.
    """
    if array_module(a) is np:
        _handed_over[id(a)] = a
    return a


def own_or_copy(a):
    """``a`` itself when nothing else sees it change (it owns its writeable memory, or was handed over),
    else ``copy(a)``."""
    if _handed_over.pop(id(a), None) is a:
        return a
    flags = getattr(a, "flags", None)
    return a if flags is not None and flags.owndata and flags.writeable else copy(a)


def matmul(a, b):
    """``a @ b`` for matrices, or ``a[k] @ b[k]`` for stacks of them, into a pooled output for NumPy
    (a new array for CuPy), ``a`` one matrix for the whole stack where it is 2-d.  A NumPy stack is
    split over the shard threads (``blas.stacked_matmul``)."""
    shape = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
    out = empty(shape, np.result_type(a, b), like=a)
    if array_module(a) is np and b.ndim == 3 and (a.ndim == 2 or a.ndim == 3 and len(a) == len(b)):
        return blas.stacked_matmul(a, b, out)
    return array_module(a).matmul(a, b, out=out)
