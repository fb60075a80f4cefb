// Softmax cross-entropy over integer labels (the CUDA twin of loss.py).
#include "cuda_common.h"

// Reduce one value per thread of the block to a single value that every
// thread receives: the maximum (take_max) or the sum.  A tree in shared
// memory `buf` (blockDim.x values; blockDim.x a power of two): at each step
// the lower half of the active threads combines its value with the upper
// half's.  The __syncthreads() calls are what make it correct: without the
// first, a thread could read a neighbour's slot before the neighbour wrote it.
template <typename T>
__device__ T block_reduce(T* buf, T value, bool take_max)
{
    unsigned int t = threadIdx.x;
    buf[t] = value;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            T other = buf[t + half];
            buf[t] = take_max ? (other > buf[t] ? other : buf[t]) : buf[t] + other;
        }
        __syncthreads();
    }
    T result = buf[0];
    __syncthreads();   // everyone has read buf[0] before buf is reused
    return result;
}

// One block per row n of the (rows, k) logits z:
//   m = max_k z,  s = sum_k exp(z - m),  probs = exp(z - m) / s,
//   row_loss[n] = m + log(s) - z[labels[n]].
// The caller averages row_loss.  Shared memory: blockDim.x values of T.
template <typename T>
__global__ void softmax_cross_entropy_forward(const T* z, const long long* labels,
                                              T* probs, T* row_loss, index_t k)
{
    DYNAMIC_SHARED(T, buf);
    const T* zr = z + (index_t)blockIdx.x * k;
    T* pr = probs + (index_t)blockIdx.x * k;

    T local_max = zr[0];
    for (index_t q = threadIdx.x; q < k; q += blockDim.x)
        local_max = zr[q] > local_max ? zr[q] : local_max;
    T m = block_reduce(buf, local_max, true);

    T local_sum = T(0);
    for (index_t q = threadIdx.x; q < k; q += blockDim.x) {
        pr[q] = exp(zr[q] - m);
        local_sum += pr[q];
    }
    T s = block_reduce(buf, local_sum, false);

    for (index_t q = threadIdx.x; q < k; q += blockDim.x)
        pr[q] = pr[q] / s;
    if (threadIdx.x == 0)
        row_loss[blockIdx.x] = (m + log(s)) - zr[labels[blockIdx.x]];
}

// dz[n, q] = (probs[n, q] - [q == labels[n]]) * scale, with scale = dloss / rows.
template <typename T>
__global__ void softmax_cross_entropy_backward(const T* probs, const long long* labels, T* dz,
                                               index_t total, index_t k, T scale)
{
    for (index_t e = grid_thread_index(); e < total; e += grid_thread_count()) {
        T p = probs[e];
        if (e % k == labels[e / k])
            p -= T(1);
        dz[e] = p * scale;
    }
}
