"""Moving between the public NCHW layout and the NHWC memory the kernels use.

Callers see NCHW, as PyTorch does.  Inside, the kernels work on the NHWC
view ``x.transpose(0, 2, 3, 1)`` and hand back NCHW *views* of NHWC memory.
A network that only ever passes these views between kernels never pays for a
transpose: the channels stay the fastest-moving axis, which turns every 3x3
convolution into one large matrix product.

Every helper here works on NumPy and CuPy arrays alike.
"""
import numpy as np


def array_module(*arrays):
    """``numpy`` when every array is a NumPy array, ``cupy`` when every one is a CuPy array."""
    if all(isinstance(a, (np.ndarray, np.generic)) for a in arrays):
        return np
    try:
        import cupy
    except ImportError as error:
        raise TypeError(f"expected NumPy arrays, got {sorted({type(a).__name__ for a in arrays})}") from error
    if all(isinstance(a, cupy.ndarray) for a in arrays):
        return cupy
    kinds = sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays})
    raise TypeError(f"expected all NumPy arrays or all CuPy arrays, got {kinds}")


def to_nhwc(x):
    """A C-contiguous NHWC array holding NCHW ``x``.

    Free (no copy) when ``x`` is already an NCHW view of NHWC memory, which is
    what every kernel returns.
    """
    return array_module(x).ascontiguousarray(x.transpose(0, 2, 3, 1))


def to_nchw(x_nhwc):
    """The NCHW view of NHWC ``x_nhwc`` (no copy)."""
    return x_nhwc.transpose(0, 3, 1, 2)


def memory_order(a):
    """The axes of ``a`` from the slowest-moving in memory to the fastest."""
    return sorted(range(a.ndim), key=lambda axis: a.strides[axis], reverse=True)


def is_dense(a):
    """True when ``a`` fills one gap-free block of memory, its axes in any order."""
    return a.transpose(memory_order(a)).flags.c_contiguous


def dense(x):
    """``x`` itself when dense, else a C-contiguous copy."""
    return x if is_dense(x) else array_module(x).ascontiguousarray(x)


def flat_memory(a):
    """The 1-d view of dense ``a`` in memory order (no copy)."""
    return a.transpose(memory_order(a)).reshape(-1)


def empty_with_layout(like, dtype=None):
    """An uninitialised array shaped like dense ``like``, its axes in the same memory order."""
    order = memory_order(like)
    buffer = array_module(like).empty([like.shape[a] for a in order],
                                      dtype=like.dtype if dtype is None else dtype)
    return buffer.transpose(np.argsort(order).tolist())


def same_layout(a, b):
    """True when ``a`` and ``b`` have one shape and walk memory alike (axes of length 1 do not count)."""
    return a.shape == b.shape and all(sa == sb for sa, sb, n in zip(a.strides, b.strides, a.shape) if n > 1)


def with_layout(a, like):
    """``a`` laid out in memory like ``like`` (a copy only when the layouts differ)."""
    if same_layout(a, like):
        return a
    out = empty_with_layout(like, a.dtype)
    out[...] = a
    return out


def check_same_dtype(op, *arrays):
    """Raise unless all ``arrays`` share one dtype (the kernels take one T)."""
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1:
        raise TypeError(f"{op}: expected arrays of one dtype, got {sorted(map(str, dtypes))}")


def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1
