// Winograd F(4x4, 3x3) transforms (the CUDA twin of winograd4.py); the 36
// GEMMs between them go to cuBLAS through cupy.matmul.
//
// Memory is NHWC: x[b, y, x, ch] sits at ((b * h + y) * w + x) * c + ch.
// A tile p = (b, ti, tj) covers output rows 4*ti .. 4*ti + 3 and columns
// 4*tj .. 4*tj + 3; V and M are (36, tiles, channels) row-major, entry
// k = 6*i + j of the 6x6 transform domain first.  Where the NumPy twin
// multiplies by kron(B^T, B^T) in one GEMM, these apply B^T to the rows and
// then to the columns: the same sums, in another order.
#include "winograd_tiles.h"

// V[6*i + j, p, ch] = (B^T d B)[i, j] for the 6x6 input tile
// d[r][s] = x[b, 4*ti - 1 + r, 4*tj - 1 + s, ch] (zero outside x).
// One thread per (tile, channel).
template <typename T>
__global__ void winograd4_input_transform(const T* x, T* v,
                                          index_t n, index_t h, index_t w, index_t c,
                                          index_t th, index_t tw)
{
    const T bt[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                        {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T d[6][6];
        read_tile(x, d, t, 4, -1, h, w, c);
        T rows[6][6];                             // B^T d: rows
        for (int i = 0; i < 6; ++i)
            for (int s = 0; s < 6; ++s) {
                T sum = 0;
                for (int r = 0; r < 6; ++r)
                    sum += bt[i][r] * d[r][s];
                rows[i][s] = sum;
            }
        for (int i = 0; i < 6; ++i)               // (B^T d) B: columns
            for (int j = 0; j < 6; ++j) {
                T sum = 0;
                for (int s = 0; s < 6; ++s)
                    sum += rows[i][s] * bt[j][s];
                v[(index_t)(6 * i + j) * total + e] = sum;
            }
    }
}

// y[b, 4*ti + a, 4*tj + bb, ch] = (A^T M[:, p, ch] A)[a, bb] for tile
// p = (b, ti, tj), the outputs beyond (h, w) left out.  One thread per (tile, channel).
template <typename T>
__global__ void winograd4_output_transform(const T* m, T* y,
                                           index_t n, index_t h, index_t w, index_t c,
                                           index_t th, index_t tw)
{
    const T at[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T rows[4][6];                             // A^T m: rows
        for (int a = 0; a < 4; ++a)
            for (int j = 0; j < 6; ++j) {
                T sum = 0;
                for (int i = 0; i < 6; ++i)
                    sum += at[a][i] * m[(index_t)(6 * i + j) * total + e];
                rows[a][j] = sum;
            }
        for (int a = 0; a < 4; ++a)               // (A^T m) A: columns
            for (int bb = 0; bb < 4; ++bb) {
                index_t row = 4 * t.ti + a, col = 4 * t.tj + bb;
                if (row >= h || col >= w)
                    continue;
                T sum = 0;
                for (int j = 0; j < 6; ++j)
                    sum += rows[a][j] * at[bb][j];
                y[((t.b * h + row) * w + col) * c + t.ch] = sum;
            }
    }
}

// Z[6*i + j, p, ch] = (A dy A^T)[i, j] for the 4x4 output-gradient tile
// dy[a][bb] = dy[b, 4*ti + a, 4*tj + bb, ch] (zero past the map's edge): the
// adjoint of winograd4_output_transform.  One thread per (tile, channel).
template <typename T>
__global__ void winograd4_grad_transform(const T* dy, T* z,
                                         index_t n, index_t h, index_t w, index_t c,
                                         index_t th, index_t tw)
{
    const T at[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T d[4][4];
        read_tile(dy, d, t, 4, 0, h, w, c);
        T rows[6][4];                             // A dy: rows
        for (int i = 0; i < 6; ++i)
            for (int bb = 0; bb < 4; ++bb) {
                T sum = 0;
                for (int a = 0; a < 4; ++a)
                    sum += at[a][i] * d[a][bb];
                rows[i][bb] = sum;
            }
        for (int i = 0; i < 6; ++i)               // (A dy) A^T: columns
            for (int j = 0; j < 6; ++j) {
                T sum = 0;
                for (int bb = 0; bb < 4; ++bb)
                    sum += rows[i][bb] * at[bb][j];
                z[(index_t)(6 * i + j) * total + e] = sum;
            }
    }
}

// dx[b, y, x, ch] = sum over the tiles whose 6x6 input window holds (y, x) of
// (B M[:, p, ch] B^T)[r, s], at r = y + 1 - 4*ti, s = x + 1 - 4*tj: the
// adjoint of winograd4_input_transform.  One thread per entry of dx, which
// gathers from the at most 2x2 tiles over it (no atomics).
template <typename T>
__global__ void winograd4_input_transform_adjoint(const T* m, T* dx,
                                                  index_t n, index_t h, index_t w, index_t c,
                                                  index_t th, index_t tw)
{
    const T bt[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                        {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
    index_t total = n * th * tw * c;            // (tile, channel) pairs: M's row length
    index_t size = n * h * w * c;
    for (index_t e = grid_thread_index(); e < size; e += grid_thread_count()) {
        index_t ch = e % c, x = (e / c) % w, y = (e / (c * w)) % h, b = e / (c * w * h);
        T sum = 0;
        for (index_t ti = (y + 1) / 4 - 1; ti <= (y + 1) / 4; ++ti)
            for (index_t tj = (x + 1) / 4 - 1; tj <= (x + 1) / 4; ++tj) {
                int r = (int)(y + 1 - 4 * ti), s = (int)(x + 1 - 4 * tj);
                if (ti < 0 || ti >= th || tj < 0 || tj >= tw || r > 5 || s > 5)
                    continue;
                const T* tile = m + ((b * th + ti) * tw + tj) * c + ch;
                for (int i = 0; i < 6; ++i) {
                    T row = 0;                  // (M B)[i, s]: entry (i, j) is tile[(6 i + j) * total]
                    for (int j = 0; j < 6; ++j)
                        row += tile[(index_t)(6 * i + j) * total] * bt[j][s];
                    sum += bt[i][r] * row;
                }
            }
        dx[e] = sum;
    }
}
