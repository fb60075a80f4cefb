"""The max-pool kernels: the NumPy twins of pool.cu, then the CUDA launches.

The maths (and the tie rule: the first maximum wins) is stated in
``minivgg/functions/pool.py``.  Both twins of ``max_pool_forward`` return
each winner's position in its window, u*kw + v, as int32, so that the
backward needs no search; ``max_pool_values`` returns the maxima alone, for
a forward that no backward follows.
"""
import numpy as np

from . import launch, shards, workspace
from .layout import array_module, conv_output_size, to_nchw, to_nhwc


def window_offsets(x_nhwc, kh, kw, stride):
    """For each window position (u, v): the (N, Ho, Wo, C) view of the inputs at that offset."""
    n, h, w, c = x_nhwc.shape
    ho = conv_output_size(h, kh, stride, 0)
    wo = conv_output_size(w, kw, stride, 0)
    for u in range(kh):
        for v in range(kw):
            yield u * kw + v, x_nhwc[:, u:u + stride * ho:stride, v:v + stride * wo:stride, :]


def max_pool_forward(x, kh=2, kw=2, stride=2):
    """Returns ``(y, argmax)``: the NCHW maxima and each winner's index u*kw + v.

    A running maximum over the kh*kw window offsets, each a strided view of
    the whole input: a strictly greater value takes over, so on a tie the
    first offset wins.  The argmax is updated by arithmetic,
    argmax += greater * (index - argmax), not by a masked assignment: a
    random mask defeats the CPU's branch prediction and is ten times slower.
    """
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    shape = (n, conv_output_size(h, kh, stride, 0), conv_output_size(w, kw, stride, 0), c)
    y, argmax = workspace.empty(shape, x.dtype), workspace.empty(shape, np.int32)
    greater, step = workspace.empty(shape, bool), workspace.empty(shape, np.int32)

    def pool(start, stop):
        ys, arg, gt, st = y[start:stop], argmax[start:stop], greater[start:stop], step[start:stop]
        offsets = window_offsets(x_nhwc[start:stop], kh, kw, stride)
        np.copyto(ys, next(offsets)[1])
        arg.fill(0)
        for index, candidate in offsets:
            np.greater(candidate, ys, out=gt)
            np.maximum(ys, candidate, out=ys)
            np.subtract(index, arg, out=st)
            st *= gt
            arg += st
    shards.over_batch(pool, n, x_nhwc.size)
    return to_nchw(y), to_nchw(argmax)


def max_pool_values(x, kh=2, kw=2, stride=2):
    """The NCHW maxima alone: a running maximum over the window offsets (a third of the forward's work)."""
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    y = workspace.empty((n, conv_output_size(h, kh, stride, 0), conv_output_size(w, kw, stride, 0), c), x.dtype)

    def pool(start, stop):
        ys, offsets = y[start:stop], window_offsets(x_nhwc[start:stop], kh, kw, stride)
        np.copyto(ys, next(offsets)[1])
        for _, candidate in offsets:
            np.maximum(ys, candidate, out=ys)
    shards.over_batch(pool, n, x_nhwc.size)
    return to_nchw(y)


def max_pool_backward(dy, argmax, x_shape, kh=2, kw=2, stride=2):
    """Route each output gradient to the input that won its window.

    When the windows tile the input exactly (stride equal to the kernel and
    the sizes divisible, as VGG's 2x2 pools), every input sits in one window
    at one offset, so each offset's view of dx is written once: the window's
    gradient where the input won, else 0.  Otherwise dx starts at zero and
    every offset adds, since overlapping windows may send several gradients
    to one input and rows past the last window get none.
    """
    n, c, h, w = x_shape
    dy_nhwc, arg_nhwc = to_nhwc(dy), to_nhwc(argmax)
    dx = workspace.empty((n, h, w, c), dy.dtype)
    routed, won = workspace.empty(dy_nhwc.shape, dy.dtype), workspace.empty(dy_nhwc.shape, bool)
    tiled = kh == kw == stride and h % stride == 0 and w % stride == 0

    def route(start, stop):
        dxs, rs, ws = dx[start:stop], routed[start:stop], won[start:stop]
        if not tiled:
            dxs.fill(0)
        for index, target in window_offsets(dxs, kh, kw, stride):
            np.equal(arg_nhwc[start:stop], index, out=ws)
            if tiled:
                np.multiply(dy_nhwc[start:stop], ws, out=target)
            else:
                target += np.multiply(dy_nhwc[start:stop], ws, out=rs)
    shards.over_batch(route, n, dx.size)
    return to_nchw(dx)


# ---- the CUDA twins (pool.cu) --------------------------------------------------------

def max_pool_forward_cuda(x, kh=2, kw=2, stride=2):
    """max_pool_forward on pool.cu: one thread per output element scans its window."""
    return launch_max_pool(x, kh, kw, stride, with_argmax=True)


def max_pool_values_cuda(x, kh=2, kw=2, stride=2):
    """max_pool_values on pool.cu: the same kernel, told not to write the winners' positions."""
    y, _ = launch_max_pool(x, kh, kw, stride, with_argmax=False)
    return y


def launch_max_pool(x, kh, kw, stride, with_argmax):
    """Run pool.cu's max_pool_forward; without ``with_argmax`` its argmax is a 1-element stand-in."""
    xp = array_module(x)
    x_nhwc = to_nhwc(x)
    n, h, w, c = x_nhwc.shape
    ho, wo = conv_output_size(h, kh, stride, 0), conv_output_size(w, kw, stride, 0)
    y = xp.empty((n, ho, wo, c), dtype=x.dtype)
    argmax = xp.empty((n, ho, wo, c) if with_argmax else (1,), dtype=np.int32)
    launch.run_elementwise("max_pool_forward", x.dtype, y.size,
                           (x_nhwc, y, argmax, *launch.indices(n, h, w, c, kh, kw, stride, ho, wo, with_argmax)))
    return to_nchw(y), (to_nchw(argmax) if with_argmax else None)


def max_pool_backward_cuda(dy, argmax, x_shape, kh=2, kw=2, stride=2):
    """max_pool_backward on pool.cu: one thread per input element collects what its windows sent."""
    n, c, h, w = x_shape
    dy_nhwc, arg_nhwc = to_nhwc(dy), to_nhwc(argmax.astype(np.int32, copy=False))
    ho, wo = dy_nhwc.shape[1:3]
    dx = array_module(dy).empty((n, h, w, c), dtype=dy.dtype)
    launch.run_elementwise("max_pool_backward", dy.dtype, dx.size,
                           (dy_nhwc, arg_nhwc, dx, *launch.indices(n, h, w, c, kh, kw, stride, ho, wo)))
    return to_nchw(dx)
