"""Reused output buffers for the NumPy twins: after the first step, a step allocates (almost) nothing.

A training step makes the same arrays at every step: im2col's columns, the
GEMMs' outputs, the pooling indices, the gradients.  Allocated anew, each
large one costs page faults: the operating system hands out zeroed pages
one at a time as they are first written, which shows as system time.
``empty(shape, dtype)`` instead returns a buffer of that shape made by an
earlier call, once nothing else holds it any more (its reference count says
so: a view of a buffer holds it too), else a new one that it keeps.

The pool keeps at most ``MINIVGG_WORKSPACE_MB`` (default 1024) MiB of free
buffers; beyond that, buffers nobody holds are dropped, least recently used
first.  CuPy has a caching allocator of its own, so GPU arrays are simply
allocated.
"""
import os
import sys
import threading
from collections import OrderedDict

import numpy as np

from .layout import array_module, memory_order

LIMIT_BYTES = int(os.environ.get("MINIVGG_WORKSPACE_MB", "1024")) * 2 ** 20

_buffers = OrderedDict()   # (shape, dtype) -> [arrays], most recently used last
_lock = threading.Lock()   # data-parallel replicas run in threads


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


def take(shape, dtype):
    """A free pooled NumPy buffer of ``shape`` and ``dtype``, or a new one (pooled while it fits)."""
    key = (tuple(shape), np.dtype(dtype))
    with _lock:
        buffers = _buffers.setdefault(key, [])
        _buffers.move_to_end(key)
        for buffer in buffers:
            if is_free(buffer):
                return buffer
        buffer = np.empty(key[0], key[1])
        drop_free_buffers(buffer.nbytes)
        if pooled_bytes() + buffer.nbytes <= LIMIT_BYTES:
            buffers.append(buffer)
        return buffer


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


def empty_like(a):
    """An uninitialised pooled array shaped like NumPy ``a``, its axes in the same memory order."""
    order = memory_order(a)
    return take([a.shape[axis] for axis in order], a.dtype).transpose(np.argsort(order).tolist())


def copy(a):
    """A copy of ``a`` with its memory order: in a pooled buffer for NumPy, a new array for CuPy."""
    if array_module(a) is not np:
        return a.copy(order="K")
    out = empty_like(a)
    np.copyto(out, a)
    return out


def own_or_copy(a):
    """``a`` itself when it owns its writeable memory (nothing else sees it change), else ``copy(a)``."""
    flags = getattr(a, "flags", None)
    return a if flags is not None and flags.owndata and flags.writeable else copy(a)


def matmul(a, b):
    """``a @ b`` for matrices, or ``a[k] @ b[k]`` for stacks of them, into a pooled output for NumPy
    (a new array for CuPy)."""
    out = empty((*a.shape[:-1], b.shape[-1]), np.result_type(a, b), like=a)
    return array_module(a).matmul(a, b, out=out)
