// Local response normalisation across channels (the CUDA twin of lrn.py),
// on NHWC memory: the channels of one pixel are neighbours in memory.
// The exponents and the factor 2*alpha*beta arrive already in T, computed by
// the caller as lrn.py computes them, so both twins round alike.
#include "cuda_common.h"

// d = k + alpha * sum of x**2 over channels ch - size/2 .. ch + (size-1)/2,
// y = x * d**neg_beta.  One thread per element.
template <typename T>
__global__ void lrn_forward(const T* x, T* y, T* d, index_t pixels, index_t c, index_t size,
                            T alpha, T neg_beta, T k)
{
    for (index_t e = grid_thread_index(); e < pixels * c; e += grid_thread_count()) {
        index_t ch = e % c;
        const T* pixel = x + (e - ch);
        index_t lo = ch - size / 2 > 0 ? ch - size / 2 : 0;
        index_t hi = ch + (size - 1) / 2 < c - 1 ? ch + (size - 1) / 2 : c - 1;
        T sum = T(0);
        for (index_t other = lo; other <= hi; ++other)
            sum += pixel[other] * pixel[other];
        T de = k + alpha * sum;
        d[e] = de;
        y[e] = x[e] * pow(de, neg_beta);
    }
}

// dx = dy * d**neg_beta - two_alpha_beta * x * spread, where spread sums
// dy * x * d**neg_beta / d (= dy * x * d**(neg_beta - 1)) over the transposed
// window ch - (size-1)/2 .. ch + size/2.  One power per element, as in lrn.py.
template <typename T>
__global__ void lrn_backward(const T* dy, const T* x, const T* d, T* dx,
                             index_t pixels, index_t c, index_t size,
                             T neg_beta, T two_alpha_beta)
{
    for (index_t e = grid_thread_index(); e < pixels * c; e += grid_thread_count()) {
        index_t ch = e % c, first = e - ch;
        index_t lo = ch - (size - 1) / 2 > 0 ? ch - (size - 1) / 2 : 0;
        index_t hi = ch + size / 2 < c - 1 ? ch + size / 2 : c - 1;
        T spread = T(0);
        for (index_t other = first + lo; other <= first + hi; ++other)
            spread += dy[other] * x[other] * pow(d[other], neg_beta) / d[other];
        dx[e] = dy[e] * pow(d[e], neg_beta) - two_alpha_beta * x[e] * spread;
    }
}
