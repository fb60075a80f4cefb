"""Winograd F(2x2, 3x3) (Lavin & Gray 2016): the transforms around a 3x3 convolution's GEMMs, twice.

A 3x3 convolution with stride 1 and padding 1 maps an (H, W) map to an (H, W)
map.  Cut the output into 2x2 tiles: th = ceil(H/2) by tw = ceil(W/2) of them
(an odd H or W is padded to the even size 2*th, 2*tw and cropped at the end).
Output tile (ti, tj) needs the 4x4 input tile

    d[r, s] = x[2*ti - 1 + r, 2*tj - 1 + s]      (zero outside x;  r, s = 0..3)

and for one input channel and one 3x3 filter g the tile is

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise, 4x4)

with the constant matrices

          | 1  0 -1  0 |          | 1    0    0  |
    B^T = | 0  1  1  0 |      G = | 1/2  1/2  1/2|      A^T = | 1  1  1  0 |
          | 0 -1  1  0 |          | 1/2 -1/2  1/2|            | 0  1 -1 -1 |
          | 0  1  0 -1 |          | 0    0    1  |

(the identity behind it: the 2-tap-by-3-tap "minimal filtering" F(2, 3)
needs 4 multiplications instead of 6, applied along both axes: 16 instead
of 36).  Summed over the input channels c, the element-wise product at each
of the 16 positions (i, j) of the 4x4 transform domain is a matrix product
over c, for all tiles p = (n, ti, tj) at once:

    V[i, j, p, c] = (B^T d_{p,c} B)[i, j]         input transform  (this file)
    U[i, j, c, o] = (G g_{o,c} G^T)[i, j]         filter transform (this file, NumPy or CuPy alike)
    M[i, j] = V[i, j] @ U[i, j]                  16 GEMMs (P, C) @ (C, O)  (minivgg/functions/conv.py)
    y tile (p, o) = A^T M[:, :, p, o] A          output transform (this file)

2.25x fewer multiplications than the direct sum; the price is the
transforms' data movement and a little accuracy (B, G and A mix entries of
different sizes before and after the products, so float32 rounding grows by
a small constant factor over im2col's).

The weight gradient comes from the same transforms, transposed: y is linear
in g, and the adjoint of the output transform is Z = A dy A^T, so

    dW[o, c] = G^T [ sum over tiles p of (A dy_{p,o} A^T) * (B^T d_{p,c} B) ] G

16 GEMMs Z[i, j]^T @ V[i, j], (O, P) @ (P, C), between ``winograd_grad_transform``
and ``winograd_weight_transform``: 2.25x fewer multiplications than im2col's
dW = dY^T @ cols, and no im2col.

The transforms are additions only, written out entry by entry below (B^T d
is "row 0 minus row 2, row 1 plus row 2, row 2 minus row 1, row 1 minus row
3"), in the same order in the NumPy twins and the CUDA twins (winograd.cu),
so that both round alike.  V and M are (16, P, C) and (16, P, O) arrays in
C order; x and y are NCHW views of NHWC memory, as everywhere in kernels/.
"""
import numpy as np

from . import launch, shards, workspace
from .layout import array_module, to_nchw, to_nhwc

# The filter transform's matrix G (the input's B^T and the output's A^T are written out as additions).
G = np.array([[1.0, 0.0, 0.0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0.0, 0.0, 1.0]])
# (G g G^T)[i, j] = sum_{u, v} G[i, u] G[j, v] g[u, v]: one (16, 9) matrix for all 16 entries at once.
FILTER_MATRIX = np.kron(G, G)
# Flipping g (g[2 - u, 2 - v]) reverses G's columns, which swaps its rows 0 and 3:
# G J = P G, so the transform of the flipped filter is entry (P i, P j) of the transform of g.
FLIPPED_ORDER = [4 * p + q for p in (3, 1, 2, 0) for q in (3, 1, 2, 0)]


def tile_counts(h, w, tile=2):
    """(th, tw): the ``tile`` x ``tile`` output tiles that cover an (h, w) output."""
    return -(-h // tile), -(-w // tile)


def winograd_filter_transform(w, flipped=False):
    """U[i, j, c, o] = (G g G^T)[i, j] for every filter g = w[o, c]: a (16, C, O) array.

    With ``flipped``, the transform of the filters that the input gradient
    convolves with, w'[c, o, u, v] = w[o, c, 2 - u, 2 - v]: a (16, O, C) array.
    One product (16, 9) @ (9, C) per output channel, on the weight's own
    (O, kh, kw, C) memory (as nn.Conv2d keeps it); the result is a transposed
    view, which BLAS reads as it is.  Written once for NumPy and CuPy (on NumPy
    the products are shared out over the shard threads: ``blas.stacked_matmul``).
    """
    xp = array_module(w)
    o, c = w.shape[:2]
    rows = FILTER_MATRIX[FLIPPED_ORDER] if flipped else FILTER_MATRIX
    u = workspace.matmul(xp.asarray(rows, dtype=w.dtype), w.transpose(0, 2, 3, 1).reshape(o, 9, c))   # (O, 16, C)
    return u.transpose(1, 0, 2) if flipped else u.transpose(1, 2, 0)


def winograd_weight_transform(m, filter_matrix=FILTER_MATRIX):
    """dW[o, c] = G^T M[:, o, c] G for M of shape (K, O, C): the (O, C, 3, 3) weight gradient, an NCHW
    view of the weight's (O, kh, kw, C) memory.  The adjoint of the filter transform: one GEMM with
    ``filter_matrix``.T = kron(G, G).T, (9, K) @ (K, O*C) (K = 16, or 36 for F(4x4, 3x3)); NumPy or CuPy."""
    xp = array_module(m)
    k, o, c = m.shape
    taps = xp.matmul(xp.asarray(filter_matrix.T, dtype=m.dtype), m.reshape(k, o * c)).reshape(3, 3, o, c)
    dw = workspace.empty((o, 3, 3, c), m.dtype, like=m)
    dw[...] = taps.transpose(2, 0, 1, 3)
    return dw.transpose(0, 3, 1, 2)


# ---- the NumPy twins ---------------------------------------------------------------

def pad_to_tiles(x_nhwc, th, tw, tile=2):
    """x with one zero row/column before it and enough after it for th x tw input tiles of
    (tile + 2) x (tile + 2) at stride ``tile``.

    The padded map is (tile*th + 2, tile*tw + 2): padding 1 on top and left, and
    1 + (tile*th - H) at the bottom, 1 + (tile*tw - W) at the right (extra rows or
    columns where the size is not a multiple of the tile).  Into a reused buffer
    of which only the border is zeroed.
    """
    n, h, w, c = x_nhwc.shape
    padded = workspace.empty((n, tile * th + 2, tile * tw + 2, c), x_nhwc.dtype)

    def pad(start, stop):
        part = padded[start:stop]
        part[:, 0], part[:, h + 1:], part[:, 1:h + 1, 0], part[:, 1:h + 1, w + 1:] = 0, 0, 0, 0
        part[:, 1:h + 1, 1:w + 1] = x_nhwc[start:stop]
    shards.over_batch(pad, n, padded.size)
    return padded


def b_transpose_rows(d0, d1, d2, d3, out):
    """out[k] = (B^T d)[k] for the four rows d0..d3 of d (any arrays of one shape)."""
    np.subtract(d0, d2, out=out[0])
    np.add(d1, d2, out=out[1])
    np.subtract(d2, d1, out=out[2])
    np.subtract(d1, d3, out=out[3])


def a_transpose_rows(m0, m1, m2, m3, out):
    """out[k] = (A^T m)[k] for the four rows m0..m3 of m: m0 + m1 + m2 and m1 - m2 - m3."""
    np.add(m0, m1, out=out[0])
    out[0] += m2
    np.subtract(m1, m2, out=out[1])
    out[1] -= m3


def a_rows(m0, m1, out):
    """out[k] = (A m)[k] for the two rows m0, m1 of m: m0, m0 + m1, m0 - m1 and -m1 (A, 4x2, is A^T's
    transpose)."""
    np.copyto(out[0], m0)
    np.add(m0, m1, out=out[1])
    np.subtract(m0, m1, out=out[2])
    np.negative(m1, out=out[3])


def winograd_input_transform(x):
    """V[i, j, p, c] = (B^T d B)[i, j] for the 4x4 input tile d of tile p = (n, ti, tj), channel c.

    ``x`` is NCHW (N, C, H, W); returns V of shape (16, N*th*tw, C).  The tiles
    are strided views of the padded input: its rows 2*ti + r (r = 0..3) for
    B^T d, then the columns 2*tj + s of that for (B^T d) B.
    """
    n, c, h, w = x.shape
    th, tw = tile_counts(h, w)
    xp = pad_to_tiles(to_nhwc(x), th, tw)
    rows = workspace.empty((4, n, th, 2 * tw + 2, c), x.dtype)      # B^T d for every tile row
    v = workspace.empty((4, 4, n, th, tw, c), x.dtype)

    def transform(start, stop):
        part, t = xp[start:stop], rows[:, start:stop]
        b_transpose_rows(*(part[:, r:r + 2 * th:2] for r in range(4)), out=t)
        for i in range(4):
            b_transpose_rows(*(t[i][:, :, s:s + 2 * tw:2] for s in range(4)), out=v[i, :, start:stop])
    shards.over_batch(transform, n, v.size)
    return v.reshape(16, n * th * tw, c)


def winograd_output_transform(m, y_shape):
    """y tile p = A^T M[:, :, p] A for every tile p and output channel: the (N, O, H, W) output.

    ``m`` is (16, N*th*tw, O); ``y_shape`` the NCHW shape of the output.  The
    2x2 tiles are written into an even-sized (N, 2*th, 2*tw, O) map, cropped
    to (H, W) (a copy only for odd sizes).  Returns an NCHW view of NHWC memory.
    """
    n, o, h, w = y_shape
    th, tw = tile_counts(h, w)
    m = m.reshape(4, 4, n, th, tw, o)
    rows = workspace.empty((2, 4, n, th, tw, o), m.dtype)           # A^T m
    tiles = workspace.empty((n, th, 2, tw, 2, o), m.dtype)          # y[n, 2*ti + a, 2*tj + b, o]

    def transform(start, stop):
        t = rows[:, :, start:stop]
        a_transpose_rows(*(m[r, :, start:stop] for r in range(4)), out=t)
        for a in range(2):
            a_transpose_rows(*t[a], out=[tiles[start:stop, :, a, :, b] for b in range(2)])
    shards.over_batch(transform, n, tiles.size)
    return to_nchw(crop(tiles.reshape(n, 2 * th, 2 * tw, o), h, w))


def winograd_grad_transform(dy):
    """Z[i, j, p, o] = (A dy_p A^T)[i, j] for the 2x2 tile dy_p of the output gradient, tile p = (n, ti, tj):
    a (16, N*th*tw, O) array, the adjoint of the output transform.

    The tiles do not overlap: rows 2*ti + a (a = 0, 1) of the map for A dy, then
    its columns 2*tj + b for (A dy) A^T; an odd size is extended with zeros first.
    """
    n, o, h, w = dy.shape
    th, tw = tile_counts(h, w)
    d = zero_extended(to_nhwc(dy), 2 * th, 2 * tw)
    rows = workspace.empty((4, n, th, 2 * tw, o), dy.dtype)         # A dy for every tile row
    z = workspace.empty((4, 4, n, th, tw, o), dy.dtype)

    def transform(start, stop):
        part, t = d[start:stop], rows[:, start:stop]
        a_rows(part[:, 0::2], part[:, 1::2], out=t)
        for i in range(4):
            a_rows(t[i][:, :, 0::2], t[i][:, :, 1::2], out=z[i, :, start:stop])
    shards.over_batch(transform, n, z.size)
    return z.reshape(16, n * th * tw, o)


def zero_extended(y_nhwc, full_h, full_w):
    """An NHWC map extended with zero rows and columns to (full_h, full_w): the map itself where it
    has that size (the adjoint of ``crop``)."""
    n, h, w, o = y_nhwc.shape
    if (h, w) == (full_h, full_w):
        return y_nhwc
    extended = workspace.zeros((n, full_h, full_w, o), y_nhwc.dtype)
    extended[:, :h, :w] = y_nhwc
    return extended


def crop(y_nhwc, h, w):
    """The top-left (h, w) of an NHWC map of whole tiles: the map itself, or a copy where it is larger."""
    n, full_h, full_w, o = y_nhwc.shape
    if (h, w) == (full_h, full_w):
        return y_nhwc
    cropped = workspace.empty((n, h, w, o), y_nhwc.dtype)
    np.copyto(cropped, y_nhwc[:, :h, :w])
    return cropped


# ---- the CUDA twins (winograd.cu) --------------------------------------------------------

def launch_tile_transform(kernel, a, tile):
    """Run ``kernel``, a .cu twin in which one thread per (tile, channel) of NCHW ``a`` writes the
    (tile + 2)**2 entries of its transform: returns the ((tile + 2)**2, N*th*tw, C) array."""
    a_nhwc = to_nhwc(a)
    n, h, w, c = a_nhwc.shape
    th, tw = tile_counts(h, w, tile)
    out = array_module(a).empty(((tile + 2) ** 2, n * th * tw, c), dtype=a.dtype)
    launch.run_elementwise(kernel, a.dtype, n * th * tw * c, (a_nhwc, out, *launch.indices(n, h, w, c, th, tw)))
    return out


def winograd_input_transform_cuda(x):
    """winograd_input_transform on winograd.cu: one thread per (tile, channel) writes its 16 entries."""
    return launch_tile_transform("winograd_input_transform", x, 2)


def winograd_grad_transform_cuda(dy):
    """winograd_grad_transform on winograd.cu: one thread per (tile, channel) writes its 16 entries."""
    return launch_tile_transform("winograd_grad_transform", dy, 2)


def winograd_output_transform_cuda(m, y_shape):
    """winograd_output_transform on winograd.cu: one thread per (tile, channel) writes its 2x2 outputs."""
    n, o, h, w = y_shape
    th, tw = tile_counts(h, w)
    y_nhwc = array_module(m).empty((n, h, w, o), dtype=m.dtype)
    launch.run_elementwise("winograd_output_transform", m.dtype, n * th * tw * o,
                           (m, y_nhwc, *launch.indices(n, h, w, o, th, tw)))
    return to_nchw(y_nhwc)
