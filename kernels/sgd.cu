// SGD with momentum and weight decay (the CUDA twin of sgd.py), one fused pass:
//   v = momentum * v - lr * grad - lr * weight_decay * param;   param += v
// The factors arrive already in T, computed by the caller as sgd.py computes
// them, and the sums run in the same order, so both twins round alike.
// grad is only read.
#include "cuda_common.h"

template <typename T>
__global__ void sgd_update(T* param, const T* grad, T* velocity, index_t n,
                           T momentum, T neg_lr, T neg_lr_decay)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count()) {
        T v = momentum * velocity[e] + neg_lr * grad[e];
        v = v + neg_lr_decay * param[e];
        velocity[e] = v;
        param[e] += v;
    }
}
