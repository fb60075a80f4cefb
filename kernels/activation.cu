// ReLU forward and backward (the CUDA twin of activation.py).
// Element-wise: the arrays may be in any memory order, as long as they share it.
#include "cuda_common.h"

// y = max(x, 0)
template <typename T>
__global__ void relu_forward(const T* x, T* y, index_t n)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count())
        y[e] = x[e] > T(0) ? x[e] : T(0);
}

// dx = dy * [y > 0]
template <typename T>
__global__ void relu_backward(const T* dy, const T* y, T* dx, index_t n)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count())
        dx[e] = dy[e] * T(y[e] > T(0));
}
