// Winograd F(2x2, 3x3) transforms (the CUDA twin of winograd.py); the 16
// GEMMs between them go to cuBLAS through cupy.matmul.
//
// Memory is NHWC: x[b, y, x, ch] sits at ((b * h + y) * w + x) * c + ch.
// A tile p = (b, ti, tj) covers output rows 2*ti, 2*ti + 1 and columns
// 2*tj, 2*tj + 1; V and M are (16, tiles, channels) row-major, entry (i, j)
// of the 4x4 transform domain first.  The additions are those of
// winograd.py, in the same order.
#include "winograd_tiles.h"

// V[i, j, p, ch] = (B^T d B)[i, j] for the 4x4 input tile
// d[r][s] = x[b, 2*ti - 1 + r, 2*tj - 1 + s, ch] (zero outside x).
// One thread per (tile, channel): neighbouring threads read neighbouring
// channels and write neighbouring entries of each of V's 16 rows.
template <typename T>
__global__ void winograd_input_transform(const T* x, T* v,
                                         index_t n, index_t h, index_t w, index_t c,
                                         index_t th, index_t tw)
{
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T d[4][4];
        read_tile(x, d, t, 2, -1, h, w, c);
        T rows[4][4];                            // B^T d: rows
        for (int s = 0; s < 4; ++s) {
            rows[0][s] = d[0][s] - d[2][s];
            rows[1][s] = d[1][s] + d[2][s];
            rows[2][s] = d[2][s] - d[1][s];
            rows[3][s] = d[1][s] - d[3][s];
        }
        for (int i = 0; i < 4; ++i) {            // (B^T d) B: columns
            T* out = v + (index_t)(4 * i) * total + e;
            out[0 * total] = rows[i][0] - rows[i][2];
            out[1 * total] = rows[i][1] + rows[i][2];
            out[2 * total] = rows[i][2] - rows[i][1];
            out[3 * total] = rows[i][1] - rows[i][3];
        }
    }
}

// y[b, 2*ti + a, 2*tj + bb, ch] = (A^T M[:, :, p, ch] A)[a, bb] for tile
// p = (b, ti, tj), the outputs beyond (h, w) of an odd size left out.
// One thread per (tile, channel).
template <typename T>
__global__ void winograd_output_transform(const T* m, T* y,
                                          index_t n, index_t h, index_t w, index_t c,
                                          index_t th, index_t tw)
{
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T rows[2][4];                            // A^T m: rows
        for (int j = 0; j < 4; ++j) {
            T m0 = m[(0 * 4 + j) * total + e], m1 = m[(1 * 4 + j) * total + e];
            T m2 = m[(2 * 4 + j) * total + e], m3 = m[(3 * 4 + j) * total + e];
            rows[0][j] = m0 + m1 + m2;
            rows[1][j] = m1 - m2 - m3;
        }
        for (int a = 0; a < 2; ++a) {            // (A^T m) A: columns
            T out[2] = {rows[a][0] + rows[a][1] + rows[a][2], rows[a][1] - rows[a][2] - rows[a][3]};
            index_t row = 2 * t.ti + a;
            for (int bb = 0; bb < 2; ++bb) {
                index_t col = 2 * t.tj + bb;
                if (row < h && col < w)
                    y[((t.b * h + row) * w + col) * c + t.ch] = out[bb];
            }
        }
    }
}

// Z[i, j, p, ch] = (A dy A^T)[i, j] for the 2x2 tile
// dy[a][bb] = dy[b, 2*ti + a, 2*tj + bb, ch] of the output gradient (zero
// beyond (h, w) of an odd size): the adjoint of winograd_output_transform.
// One thread per (tile, channel).
template <typename T>
__global__ void winograd_grad_transform(const T* dy, T* z,
                                        index_t n, index_t h, index_t w, index_t c,
                                        index_t th, index_t tw)
{
    index_t total = n * th * tw * c;            // (tile, channel) pairs
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        TileChannel t = tile_channel(e, c, th, tw);
        T d[2][2];
        read_tile(dy, d, t, 2, 0, h, w, c);
        T rows[4][2];                            // A dy: rows
        for (int bb = 0; bb < 2; ++bb) {
            rows[0][bb] = d[0][bb];
            rows[1][bb] = d[0][bb] + d[1][bb];
            rows[2][bb] = d[0][bb] - d[1][bb];
            rows[3][bb] = -d[1][bb];
        }
        for (int i = 0; i < 4; ++i) {            // (A dy) A^T: columns
            T* out = z + (index_t)(4 * i) * total + e;
            out[0 * total] = rows[i][0];
            out[1 * total] = rows[i][0] + rows[i][1];
            out[2 * total] = rows[i][0] - rows[i][1];
            out[3 * total] = -rows[i][1];
        }
    }
}
