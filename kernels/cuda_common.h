// Shared by every kernels/*.cu file: the index type, the thread-index helpers
// and the one macro through which a kernel reaches dynamic shared memory.
//
// These .cu files are compiled twice: by NVRTC for the GPU (kernels/cuda.py)
// and by g++ against kernels/emulator/cuda_emu.h for the CPU emulator.  So
// they use only what both understand: no inline PTX, no CUB, no warp shuffles,
// no static __shared__ arrays.
#pragma once

// Element counts and offsets: 64-bit, since a VGG im2col matrix can pass 2**31 entries.
typedef long long index_t;

// The dynamic shared memory of the block (its size in bytes is the launch's
// shared_bytes), seen as an array of T named `name`.
#define DYNAMIC_SHARED(T, name)                                              \
    extern __shared__ __align__(16) unsigned char dynamic_shared_bytes[];   \
    T* name = reinterpret_cast<T*>(dynamic_shared_bytes)

// This thread's position in a 1-D grid, and the number of threads in the grid:
// a kernel walks its n elements with the grid-stride loop
//     for (index_t e = grid_thread_index(); e < n; e += grid_thread_count())
__device__ __forceinline__ index_t grid_thread_index()
{
    return (index_t)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ index_t grid_thread_count()
{
    return (index_t)gridDim.x * blockDim.x;
}
