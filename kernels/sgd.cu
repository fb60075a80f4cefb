// SGD with momentum and weight decay (the CUDA twin of sgd.py), one fused pass:
//   v = momentum * v - lr * (g + weight_decay * p);   p += v
#include "cuda_common.h"

template <typename T>
__global__ void sgd_update(T* param, const T* grad, T* velocity, index_t n,
                           T lr, T momentum, T weight_decay)
{
    for (index_t e = grid_thread_index(); e < n; e += grid_thread_count()) {
        T v = momentum * velocity[e] - lr * (grad[e] + weight_decay * param[e]);
        velocity[e] = v;
        param[e] += v;
    }
}
