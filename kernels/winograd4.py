"""Winograd F(4x4, 3x3) (Lavin & Gray 2016): larger tiles, fewer products, twice.

The same idea as F(2x2, 3x3) in ``kernels/winograd.py``, with 4x4 output
tiles: output tile (ti, tj) needs the 6x6 input tile

    d[r, s] = x[4*ti - 1 + r, 4*tj - 1 + s]      (zero outside x;  r, s = 0..5)

and for one channel and one 3x3 filter g

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* element-wise, 6x6)

with the matrices of the points 0, 1, -1, 2, -2 and infinity:

          | 4  0 -5  0  1  0 |          |  1/4    0     0  |
          | 0 -4 -4  1  1  0 |          | -1/6  -1/6  -1/6 |         | 1  1  1  1  1  0 |
    B^T = | 0  4 -4 -1  1  0 |      G = | -1/6   1/6  -1/6 |   A^T = | 0  1 -1  2 -2  0 |
          | 0 -2 -1  2  1  0 |          | 1/24  1/12   1/6 |         | 0  1  1  4  4  0 |
          | 0  2 -1 -2  1  0 |          | 1/24 -1/12   1/6 |         | 0  1 -1  8 -8  1 |
          | 0  4  0 -5  0  1 |          |   0     0     1  |

36 products make 16 outputs: 2.25 per output against the direct sum's 9
(4x fewer; F(2x2, 3x3): 2.25x).  The transforms also move less data: V
holds 36 numbers per 16 outputs where F(2x2, 3x3) holds 16 per 4, so V and M
are 2.25 times the input and the output, not 4 times.  The price is
accuracy: B, G and A have entries up to 8 and down to 1/24, and float32
results carry about 20 times the rounding error of F(2x2, 3x3) (measured in
tests/test_winograd.py), still within float32 training's noise.

A 2-d transform is a product with a Kronecker product: for a tile d read
row by row, vec(B^T d B) = (B^T kron B^T) vec(d).  So the NumPy twin does
each transform for every tile and channel at once as small GEMMs:

    V = kron(B^T, B^T) @ D       (36, 36) @ (36, P*C)    D: the 6x6 tiles, entry (r, s) first
    U = kron(G, G) @ g           (36, 9)  @ (9, C*O)     (any library: winograd4_filter_transform)
    M[k] = V[k] @ U[k]           36 GEMMs (P, C) @ (C, O)  (minivgg/functions/conv.py)
    Y = kron(A^T, A^T) @ M       (16, 36) @ (36, P*O)

The forward's two transforms (V and Y) apply their matrix one axis at a time
instead, as the CUDA twins do (``both_axes``: B^T to the rows of every tile,
then to its columns): two products with an inner dimension of 6, 432
multiply-adds per tile and channel for V instead of the Kronecker product's
1296, and 240 instead of 576 for Y.  Measured in one process against the
Kronecker product (2-core AVX-512 EPYC, alternated rounds, medians): VGG-A's
forward 1.04-1.08x, VGG-D's training step 1.03-1.04x, VGG-A's 0.998-1.017x,
the default run's 1.004-1.017x, VGG-A's at 224 0.976-0.994x; on one 512 KiB
chunk of tiles alone 1.8x.
The gradient's transforms below keep the Kronecker product: they run on the
whole batch at once, not a chunk in cache, and one axis at a time measured
0.99x there.

The weight gradient comes from the same transforms, transposed.  Per tile,
y = A^T [(G g G^T) * (B^T d B)] A is linear in g, so its adjoint gives

    dg = G^T [ (A dy A^T) * (B^T d B) ] G

and summed over the tiles p, for every pair of channels (c, o):

    Z = kron(A^T, A^T)^T @ dY    (36, 16) @ (16, P*O)    dY: the 4x4 output-gradient tiles (they do not overlap)
    M[k] = Z[k]^T @ V[k]         36 GEMMs (O, P) @ (P, C), each a sum over all P tiles
    dW = kron(G, G)^T @ M        (9, 36) @ (36, O*C)     (winograd4_weight_transform)

4x fewer multiplications than im2col's dW = dY^T @ cols, and no im2col.

The input gradient comes from the adjoint of the whole forward, with the
same Z: per tile, dd = B [sum over o of U[:, c, o] * Z[:, p, o]] B^T, and
the 6x6 tiles, which overlap by two rows and columns, are added up into dx:

    M' [k] = Z[k] @ U[k]^T        36 GEMMs (P, O) @ (O, C)
    dD = kron(B^T, B^T)^T @ M'   (36, 36) @ (36, P*C), then each tile added onto its 6x6 window of dx

(``winograd4_input_transform_adjoint``).  Against dx = conv(dy, w') by the
same algorithm, it makes no input transform of dy and no flipped filters.

The CUDA twins (winograd4.cu) compute the same entries with the two
matrices applied one axis at a time, one thread per (tile, channel).  V and
M are (36, P, C) and (36, P, O) arrays in C order; x and y are NCHW views of
NHWC memory, as everywhere in kernels/.
"""
import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import blas, launch, shards, workspace
from .layout import array_module, to_nchw, to_nhwc
from .winograd import crop, launch_tile_transform, pad_to_tiles, tile_counts, winograd_weight_transform

TILE = 4   # outputs per tile side; an input tile is TILE + 2 = 6 wide
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]])
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)
INPUT_MATRIX = np.kron(B_T, B_T)      # (36, 36)
FILTER_MATRIX = np.kron(G, G)         # (36, 9)
OUTPUT_MATRIX = np.kron(A_T, A_T)     # (16, 36)
# The flipped filter g[2 - u, 2 - v] is g's 9 entries in reverse order: the filter matrix's columns reversed.
FLIPPED_FILTER_MATRIX = np.ascontiguousarray(FILTER_MATRIX[:, ::-1])


def winograd4_filter_transform(w, flipped=False):
    """U[k, c, o] = (G g G^T)[k] for every filter g = w[o, c]: a (36, C, O) array (k = 6 i + j).

    With ``flipped``, the transform of the input gradient's filters
    w'[c, o, u, v] = w[o, c, 2 - u, 2 - v]: a (36, O, C) array.  Like
    ``winograd_filter_transform``: one product per output channel on the
    weight's (O, kh, kw, C) memory, a transposed view out; NumPy or CuPy alike.
    """
    xp = array_module(w)
    o, c = w.shape[:2]
    matrix = FLIPPED_FILTER_MATRIX if flipped else FILTER_MATRIX
    u = workspace.matmul(xp.asarray(matrix, dtype=w.dtype), w.transpose(0, 2, 3, 1).reshape(o, 9, c))   # (O, 36, C)
    return u.transpose(1, 0, 2) if flipped else u.transpose(1, 2, 0)


def winograd4_weight_transform(m):
    """dW[o, c] = G^T M[:, o, c] G for M of shape (36, O, C): ``winograd_weight_transform`` with F(4x4)'s G."""
    return winograd_weight_transform(m, FILTER_MATRIX)


# ---- the NumPy twins ---------------------------------------------------------------

# The input and output transforms gather (or scatter) the tiles of a chunk of images and multiply them by
# their matrix while they are still in the core's cache, where gathering every tile first sent them to
# memory and back before the GEMM.  The chunks are shared out over the shard threads, each GEMM on one OpenBLAS
# thread (``blas.over_threads``).  The same numbers, bit for bit.  Measured on the input transform
# (batch 64, float32, 2-core AVX-512 EPYC, medians) against gathering everything first: 64 channels @32x32
# 1.31x, @16x16 1.11x; 128 @16x16 1.46x, @8x8 1.10x; 256 @8x8 1.17x; 32 @8x8 1.10x; 16 @16x16 0.99x.
# Chunks of 256 KiB to 1 MiB of tiles (a core's L2 cache is 1 MiB) measured alike.  The output transform:
# 1.02-1.14x at the same layers.  The backward's two transforms are not chunked: their gather and their
# adds are 16 and 36 NumPy calls per chunk, and chunked they were 0.58-0.99x.
CHUNK_BYTES = 1 << 19


def over_image_chunks(transform, n, tiles_per_image, dtype):
    """Run ``transform(first, last)`` on chunks of images first..last of n, each chunk's tiles (of
    ``tiles_per_image`` numbers an image) at most CHUNK_BYTES (or one image), the chunks shared out over
    the shard threads with one OpenBLAS thread each (``blas.over_threads``)."""
    images = max(1, CHUNK_BYTES // (tiles_per_image * np.dtype(dtype).itemsize))

    def chunks(start, stop):
        for first in range(start, stop, images):
            transform(first, min(first + images, stop))
    blas.over_threads(chunks, n, n * tiles_per_image)


def both_axes(left, tiles, out):
    """out[i, j] = sum over r, s of left[i, r] left[j, s] tiles[r, s] for (6, 6, K) ``tiles`` (K tiles and
    channels): L d L^T for every tile d, ``left`` L applied to the rows, then to the columns, two
    products with an inner dimension of 6 into the (q, q, K) ``out``."""
    q, p = left.shape
    half = workspace.empty((q, p, tiles.shape[2]), tiles.dtype)
    np.matmul(left, tiles.reshape(p, -1), out=half.reshape(q, -1))
    np.matmul(left, half, out=out)


def winograd4_input_transform(x):
    """V[k, p, c] = (B^T d B)[k] for the 6x6 input tile d of tile p = (n, ti, tj), channel c.

    ``x`` is NCHW (N, C, H, W); returns V of shape (36, N*th*tw, C) with
    th = ceil(H/4), tw = ceil(W/4).  The tiles are a strided view of the
    padded input, copied entry (r, s) first, then transformed one axis at a
    time (``both_axes``), a chunk of images at a time (``over_image_chunks``).
    """
    n, c, h, w = x.shape
    th, tw = tile_counts(h, w, TILE)
    padded = pad_to_tiles(to_nhwc(x), th, tw, TILE)
    tiles = sliding_window_view(padded, (TILE + 2, TILE + 2), axis=(1, 2))[:, ::TILE, ::TILE]   # [n, ti, tj, c, r, s]
    per_image = th * tw * c
    v = workspace.empty((36, n * per_image), x.dtype)
    b_t = B_T.astype(x.dtype)

    def transform(first, last):
        d = workspace.empty((TILE + 2, TILE + 2, last - first, th, tw, c), x.dtype)
        np.copyto(d, tiles[first:last].transpose(4, 5, 0, 1, 2, 3))
        both_axes(b_t, d.reshape(6, 6, -1), v[:, first * per_image:last * per_image].reshape(6, 6, -1))
    over_image_chunks(transform, n, 36 * per_image, x.dtype)
    return v.reshape(36, n * th * tw, c)


def winograd4_output_transform(m, y_shape):
    """y tile p = A^T M[:, p] A for every tile p and output channel: the (N, O, H, W) output.

    ``m`` is (36, N*th*tw, O); ``y_shape`` the NCHW shape of the output.  A^T,
    applied to both axes (``both_axes``), makes the 16 outputs of every tile of a
    chunk of images, which are then
    put in place in a (N, 4*th, 4*tw, O) map, cropped to (H, W).  Returns an
    NCHW view of NHWC memory.
    """
    n, o, h, w = y_shape
    th, tw = tile_counts(h, w, TILE)
    per_image = th * tw * o
    columns = m.reshape(36, -1)
    tiles = workspace.empty((n, th, TILE, tw, TILE, o), m.dtype)     # y[n, 4*ti + a, 4*tj + b, o]
    a_t = A_T.astype(m.dtype)

    def transform(first, last):
        outputs = workspace.empty((TILE, TILE, last - first, th, tw, o), m.dtype)
        both_axes(a_t, columns[:, first * per_image:last * per_image].reshape(6, 6, -1), outputs.reshape(4, 4, -1))
        np.copyto(tiles[first:last], outputs.transpose(2, 3, 0, 4, 1, 5))
    over_image_chunks(transform, n, 36 * per_image, m.dtype)
    return to_nchw(crop(tiles.reshape(n, TILE * th, TILE * tw, o), h, w))


def winograd4_grad_transform(dy):
    """Z[k, p, o] = (A dy_p A^T)[k] for the 4x4 tile dy_p of the output gradient, tile p = (n, ti, tj):
    a (36, N*th*tw, O) array (the adjoint of the output transform; zero past the map's edge).

    The tiles do not overlap: they are the map itself, cut into 4x4 pieces and
    copied entry (a, b) first; one GEMM transforms them all.
    """
    n, o, h, w = dy.shape
    th, tw = tile_counts(h, w, TILE)
    dy_nhwc = to_nhwc(dy)
    tiles = workspace.empty((TILE, TILE, n, th, tw, o), dy.dtype)     # [a, b, n, ti, tj] = dy[n, 4ti + a, 4tj + b]

    def gather(start, stop):
        part = tiles[:, :, start:stop]
        if (h, w) != (TILE * th, TILE * tw):
            part.fill(0)
        for a, b in itertools.product(range(TILE), range(TILE)):
            rows, cols = dy_nhwc[start:stop, a::TILE, b::TILE], part[a, b]
            cols[:, :rows.shape[1], :rows.shape[2]] = rows
    shards.over_batch(gather, n, tiles.size)
    z = workspace.matmul(OUTPUT_MATRIX.T.astype(dy.dtype), tiles.reshape(16, -1))
    return z.reshape(36, n * th * tw, o)


def winograd4_input_transform_adjoint(m, x_shape):
    """dx[n, c] = sum over tiles p of B M[:, p, c] B^T, each 6x6 tile added onto its window: the adjoint
    of ``winograd4_input_transform`` for M of shape (36, N*th*tw, C), an NCHW view of NHWC memory.

    One GEMM gives every tile's 6x6 entries; they are added onto a padded map
    one window offset (r, s) at a time, as col2im does, then the padding is cut.
    """
    n, c, h, w = x_shape
    th, tw = tile_counts(h, w, TILE)
    tiles = workspace.matmul(INPUT_MATRIX.T.astype(m.dtype), m.reshape(36, -1)).reshape(6, 6, n, th, tw, c)
    padded = workspace.empty((n, TILE * th + 2, TILE * tw + 2, c), m.dtype)

    def add_tiles(start, stop):
        part = padded[start:stop]
        part.fill(0)
        for r, s in itertools.product(range(TILE + 2), range(TILE + 2)):
            part[:, r:r + TILE * th:TILE, s:s + TILE * tw:TILE] += tiles[r, s, start:stop]
    shards.over_batch(add_tiles, n, padded.size)
    dx = workspace.empty((n, h, w, c), m.dtype)
    np.copyto(dx, padded[:, 1:h + 1, 1:w + 1])
    return to_nchw(dx)


# ---- the CUDA twins (winograd4.cu) --------------------------------------------------------

def winograd4_input_transform_cuda(x):
    """winograd4_input_transform on winograd4.cu: one thread per (tile, channel) writes its 36 entries."""
    return launch_tile_transform("winograd4_input_transform", x, TILE)


def winograd4_grad_transform_cuda(dy):
    """winograd4_grad_transform on winograd4.cu: one thread per (tile, channel) writes its 36 entries."""
    return launch_tile_transform("winograd4_grad_transform", dy, TILE)


def winograd4_input_transform_adjoint_cuda(m, x_shape):
    """winograd4_input_transform_adjoint on winograd4.cu: one thread per entry of dx sums what the (at
    most 2x2) tiles over it send it."""
    n, c, h, w = x_shape
    th, tw = tile_counts(h, w, TILE)
    dx_nhwc = array_module(m).empty((n, h, w, c), dtype=m.dtype)
    launch.run_elementwise("winograd4_input_transform_adjoint", m.dtype, dx_nhwc.size,
                           (m, dx_nhwc, *launch.indices(n, h, w, c, th, tw)))
    return to_nchw(dx_nhwc)


def winograd4_output_transform_cuda(m, y_shape):
    """winograd4_output_transform on winograd4.cu: one thread per (tile, channel) writes its 4x4 outputs."""
    n, o, h, w = y_shape
    th, tw = tile_counts(h, w, TILE)
    y_nhwc = array_module(m).empty((n, h, w, o), dtype=m.dtype)
    launch.run_elementwise("winograd4_output_transform", m.dtype, n * th * tw * o,
                           (m, y_nhwc, *launch.indices(n, h, w, o, th, tw)))
    return to_nchw(y_nhwc)
