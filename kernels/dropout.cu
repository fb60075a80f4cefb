// Dropout with a stateless, counter-based mask (the CUDA twin of dropout.py).
// The hash is written with unsigned int arithmetic, which wraps modulo 2**32
// exactly as NumPy's uint32 does, so both twins draw the same mask bit for bit.
#include "cuda_common.h"

// A bijective 32-bit mixing function (xor-shift-multiply, "lowbias32").
__device__ __forceinline__ unsigned int mix32(unsigned int h)
{
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    return h ^ (h >> 16);
}

__device__ __forceinline__ unsigned int dropout_hash(unsigned int seed, unsigned int step,
                                                     unsigned int layer, unsigned int sample,
                                                     unsigned int element)
{
    unsigned int h = mix32(seed);
    h = mix32(h ^ step);
    h = mix32(h ^ layer);
    h = mix32(h ^ sample);
    return mix32(h ^ element);
}

// For a C-contiguous batch x of n elements, per_sample of them per sample:
// mask = (hash >> 8) >= threshold and y = x * mask * scale.
template <typename T>
__global__ void dropout_forward(const T* x, T* y, bool* mask, index_t n, index_t per_sample,
                                unsigned int seed, unsigned int step, unsigned int layer,
                                unsigned int sample_offset, unsigned int threshold, T scale)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count()) {
        unsigned int sample = sample_offset + (unsigned int)(e / per_sample);
        unsigned int element = (unsigned int)(e % per_sample);
        bool keep = (dropout_hash(seed, step, layer, sample, element) >> 8) >= threshold;
        mask[e] = keep;
        y[e] = x[e] * T(keep) * scale;
    }
}

// dx = dy * mask * scale
template <typename T>
__global__ void dropout_backward(const T* dy, const bool* mask, T* dx, index_t n, T scale)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count())
        dx[e] = dy[e] * T(mask[e]) * scale;
}
