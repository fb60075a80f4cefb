// Max-pooling forward and backward (the CUDA twin of pool.py), on NHWC memory.
// argmax holds each winner's position u * kw + v inside its window.
#include "cuda_common.h"

// y[b, i, j, ch] = max over the (kh, kw) window at (stride*i, stride*j), and its argmax
// unless with_argmax is 0 (a forward that no backward follows: argmax is then not touched).
// One thread per output; a strict > keeps the first maximum, as NumPy's argmax.
template <typename T>
__global__ void max_pool_forward(const T* x, T* y, int* argmax,
                                 index_t n, index_t h, index_t w, index_t c,
                                 index_t kh, index_t kw, index_t stride,
                                 index_t ho, index_t wo, index_t with_argmax)
{
    index_t total = n * ho * wo * c;
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        index_t ch = e % c, j = (e / c) % wo, i = (e / (c * wo)) % ho, b = e / (c * wo * ho);
        const T* window = x + ((b * h + stride * i) * w + stride * j) * c + ch;
        T best = window[0];
        int best_k = 0;
        for (index_t u = 0; u < kh; ++u)
            for (index_t v = 0; v < kw; ++v) {
                T value = window[(u * w + v) * c];
                if (value > best) {
                    best = value;
                    best_k = (int)(u * kw + v);
                }
            }
        y[e] = best;
        if (with_argmax)
            argmax[e] = best_k;
    }
}

// dx[b, row, col, ch] = sum of dy over the windows that contain (row, col)
// and whose winner it was.  One thread per input element gathers (no atomics),
// in the (u, v) order of pool.py's loop.
template <typename T>
__global__ void max_pool_backward(const T* dy, const int* argmax, T* dx,
                                  index_t n, index_t h, index_t w, index_t c,
                                  index_t kh, index_t kw, index_t stride,
                                  index_t ho, index_t wo)
{
    index_t total = n * h * w * c;
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        index_t ch = e % c, col = (e / c) % w, row = (e / (c * w)) % h, b = e / (c * w * h);
        T sum = T(0);
        for (index_t u = 0; u < kh; ++u) {
            index_t top = row - u;                    // = stride * i
            if (top < 0 || top % stride != 0 || top / stride >= ho)
                continue;
            for (index_t v = 0; v < kw; ++v) {
                index_t left = col - v;               // = stride * j
                if (left < 0 || left % stride != 0 || left / stride >= wo)
                    continue;
                index_t out = ((b * ho + top / stride) * wo + left / stride) * c + ch;
                if (argmax[out] == u * kw + v)
                    sum += dy[out];
            }
        }
        dx[e] = sum;
    }
}
