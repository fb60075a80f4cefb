// Convolution helpers (the CUDA twin of conv.py): im2col, col2im, bias_grad.
// The matrix products themselves go to cuBLAS through cupy.matmul.
//
// Memory is NHWC: x[b, y, x, ch] sits at ((b * h + y) * w + x) * c + ch.
// cols has one row per output pixel (b, i, j) and one column per window
// entry (u, v, ch), exactly as in conv.py.
#include "cuda_common.h"

// cols[r, q] = padded x[b, stride*i + u - padding, stride*j + v - padding, ch]
// for row r = (b, i, j) and column q = (u, v, ch), zero outside x.
// One thread per entry of cols: neighbouring threads write neighbouring
// columns and read neighbouring channels.
template <typename T>
__global__ void im2col(const T* x, T* cols,
                       index_t n, index_t h, index_t w, index_t c,
                       index_t kh, index_t kw, index_t stride, index_t padding,
                       index_t ho, index_t wo)
{
    index_t width = kh * kw * c;
    index_t total = n * ho * wo * width;
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        index_t q = e % width, r = e / width;
        index_t ch = q % c, v = (q / c) % kw, u = q / (c * kw);
        index_t j = r % wo, i = (r / wo) % ho, b = r / (wo * ho);
        index_t row = stride * i + u - padding, col = stride * j + v - padding;
        bool inside = 0 <= row && row < h && 0 <= col && col < w;
        cols[e] = inside ? x[((b * h + row) * w + col) * c + ch] : T(0);
    }
}

// The adjoint of im2col: x[b, row, col, ch] = sum of every cols entry that
// im2col copied from there.  One thread per element of x gathers its terms
// (no atomics), adding them in the (u, v) order of conv.py's loop so that
// both twins round the same way.
template <typename T>
__global__ void col2im(const T* cols, T* x,
                       index_t n, index_t h, index_t w, index_t c,
                       index_t kh, index_t kw, index_t stride, index_t padding,
                       index_t ho, index_t wo)
{
    index_t width = kh * kw * c;
    index_t total = n * h * w * c;
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        index_t ch = e % c, col = (e / c) % w, row = (e / (c * w)) % h, b = e / (c * w * h);
        T sum = T(0);
        for (index_t u = 0; u < kh; ++u) {
            index_t top = row + padding - u;          // = stride * i for the window i that holds it
            if (top < 0 || top % stride != 0 || top / stride >= ho)
                continue;
            index_t i = top / stride;
            for (index_t v = 0; v < kw; ++v) {
                index_t left = col + padding - v;     // = stride * j
                if (left < 0 || left % stride != 0 || left / stride >= wo)
                    continue;
                index_t j = left / stride;
                sum += cols[((b * ho + i) * wo + j) * width + (u * kw + v) * c + ch];
            }
        }
        x[e] = sum;
    }
}

// db[o] += sum over rows r of g[r, o], for a (rows, cols) row-major g.
// The block is (32, by) threads: threadIdx.x picks a column (so a warp reads
// 32 neighbouring floats), threadIdx.y one of by row lanes.  Each thread sums
// a strided subset of the rows; the block adds its by partial sums in shared
// memory and one atomicAdd per column puts them into db, which the caller
// zeroes first.  Shared memory: blockDim.x * blockDim.y values of T.
template <typename T>
__global__ void bias_grad(const T* g, T* db, index_t rows, index_t cols)
{
    DYNAMIC_SHARED(T, partial);
    index_t o = (index_t)blockIdx.x * blockDim.x + threadIdx.x;
    index_t first = (index_t)blockIdx.y * blockDim.y + threadIdx.y;
    index_t step = (index_t)gridDim.y * blockDim.y;
    T sum = T(0);
    if (o < cols)
        for (index_t r = first; r < rows; r += step)
            sum += g[r * cols + o];
    partial[threadIdx.y * blockDim.x + threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && o < cols) {
        T block_sum = T(0);
        for (unsigned lane = 0; lane < blockDim.y; ++lane)
            block_sum += partial[lane * blockDim.x + threadIdx.x];
        atomicAdd(&db[o], block_sum);
    }
}
