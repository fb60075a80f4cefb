// cuda_emu.h: run the CUDA C kernels of kernels/*.cu on a CPU, unchanged.
//
// Include this header, then a .cu file, and compile with g++.  It defines the
// CUDA keywords and built-ins that the kernels use:
//
//   __global__ __device__ __host__ __forceinline__ __shared__ __align__
//   threadIdx blockIdx blockDim gridDim   __syncthreads()   atomicAdd()
//
// How threads run.  The blocks of a grid run one after the other.  Inside a
// block, every CUDA thread is a fiber (a ucontext with its own stack) and one
// OS thread runs the fibers one at a time, in threadIdx order: thread 0 runs
// until it reaches __syncthreads() or returns, then thread 1 does, and so on.
// When every thread of the block waits at the barrier, they all go on again,
// in the same order.  So the schedule is fixed, and it is the unkindest one
// for a missing barrier: thread 0 runs as far ahead of the others as it can,
// and reads shared memory that nobody has written yet.  To make such reads
// loud, shared memory is filled with 0xFF bytes (a NaN for float and double)
// before each block.
//
// What is an error (the launch returns nonzero, cuda_emu_last_error() says why):
//   - some threads wait at a __syncthreads() that others left by returning
//     (on a GPU: a hang or undefined behaviour);
//   - threads wait at different __syncthreads() calls (also undefined);
//   - a block of more than 1024 threads, or more shared memory than 48 KiB.
//
// Only one fiber runs at any time, so atomicAdd needs no lock, and the
// built-in indices are plain globals that the scheduler sets before it
// switches to a fiber.
#pragma once

#include <math.h>
#include <ucontext.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// ---- the CUDA keywords -------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() cuda_emu::syncthreads(__LINE__)

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
typedef dim3 uint3;

// ---- the built-in indices and the block's shared memory ----------------------
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

constexpr std::size_t SHARED_MEMORY_BYTES = 48 * 1024;
// The name that DYNAMIC_SHARED in kernels/cuda_common.h declares `extern`.
alignas(16) unsigned char dynamic_shared_bytes[SHARED_MEMORY_BYTES];

template <typename T>
T atomicAdd(T* address, T value)
{
    T old = *address;
    *address = old + value;
    return old;
}

namespace cuda_emu {

constexpr std::size_t STACK_BYTES = 64 * 1024;
constexpr unsigned int MAX_BLOCK_THREADS = 1024;

enum class State { running, at_barrier, returned };

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    State state = State::running;
    int barrier_line = 0;
};

inline ucontext_t scheduler;            // where a fiber goes when it pauses or returns
inline Fiber* current = nullptr;        // the fiber that runs now
inline std::function<void()> kernel_call;  // the kernel with its arguments bound
inline std::string last_error;

// __syncthreads(): pause this thread until every thread of the block is here.
inline void syncthreads(int line)
{
    current->state = State::at_barrier;
    current->barrier_line = line;
    swapcontext(&current->context, &scheduler);
}

inline void fiber_main()
{
    kernel_call();
    current->state = State::returned;   // then uc_link switches back to the scheduler
}

inline std::string block_name()
{
    return "block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
           std::to_string(blockIdx.z) + ")";
}

inline uint3 thread_index(unsigned int linear)
{
    uint3 t;
    t.x = linear % blockDim.x;
    t.y = linear / blockDim.x % blockDim.y;
    t.z = linear / (blockDim.x * blockDim.y);
    return t;
}

// After a round in which every fiber ran until it paused: false (and
// last_error set) when the waiting fibers can never be released.
inline bool barrier_is_sound(std::vector<Fiber>& fibers)
{
    const Fiber* waiter = nullptr;
    for (const Fiber& f : fibers)
        if (f.state == State::at_barrier) {
            waiter = &f;
            break;
        }
    for (std::size_t i = 0; i < fibers.size(); ++i) {
        const Fiber& f = fibers[i];
        uint3 t = thread_index((unsigned int)i);
        std::string who = "thread (" + std::to_string(t.x) + "," + std::to_string(t.y) + "," +
                          std::to_string(t.z) + ") of " + block_name();
        if (f.state == State::returned) {
            last_error = who + " returned while other threads wait at __syncthreads() on line " +
                         std::to_string(waiter->barrier_line) + ": they would wait forever";
            return false;
        }
        if (f.barrier_line != waiter->barrier_line) {
            last_error = who + " waits at __syncthreads() on line " +
                         std::to_string(f.barrier_line) + " but others wait on line " +
                         std::to_string(waiter->barrier_line);
            return false;
        }
    }
    return true;
}

// Run one block to completion; false on a barrier error.
inline bool run_block(std::vector<Fiber>& fibers)
{
    for (std::size_t i = 0; i < fibers.size(); ++i) {
        Fiber& f = fibers[i];
        getcontext(&f.context);
        f.context.uc_stack.ss_sp = f.stack.get();
        f.context.uc_stack.ss_size = STACK_BYTES;
        f.context.uc_link = &scheduler;
        makecontext(&f.context, fiber_main, 0);
        f.state = State::running;
    }
    for (;;) {
        bool anyone_waits = false;
        for (std::size_t i = 0; i < fibers.size(); ++i) {
            Fiber& f = fibers[i];
            if (f.state != State::running)
                continue;
            current = &f;
            threadIdx = thread_index((unsigned int)i);
            swapcontext(&scheduler, &f.context);
            anyone_waits = anyone_waits || f.state == State::at_barrier;
        }
        if (!anyone_waits)
            return true;
        if (!barrier_is_sound(fibers))
            return false;
        for (Fiber& f : fibers)
            f.state = State::running;
    }
}

inline bool check_launch(const unsigned int* dims, std::size_t shared_bytes)
{
    unsigned long long threads = 1ull * dims[3] * dims[4] * dims[5];
    if (threads == 0 || dims[0] * 1ull * dims[1] * dims[2] == 0) {
        last_error = "empty grid or block";
        return false;
    }
    if (threads > MAX_BLOCK_THREADS) {
        last_error = "a block of " + std::to_string(threads) + " threads; the limit is 1024";
        return false;
    }
    if (shared_bytes > SHARED_MEMORY_BYTES) {
        last_error = "asks for " + std::to_string(shared_bytes) +
                     " bytes of shared memory; a block has 49152";
        return false;
    }
    return true;
}

// Call kernel(args...) where args[i] points to the i-th argument, as in
// cuLaunchKernel's kernelParams.
template <typename... Params, std::size_t... I>
void call_with(void (*kernel)(Params...), void** args, std::index_sequence<I...>)
{
    kernel(*static_cast<Params*>(args[I])...);
}

// Launch `kernel` on grid (dims[0..2]) x block (dims[3..5]) threads.
// Returns 0, or 1 with last_error set.
template <typename... Params>
int launch(void (*kernel)(Params...), const unsigned int* dims, std::size_t shared_bytes,
           void** args)
{
    last_error.clear();
    if (!check_launch(dims, shared_bytes))
        return 1;
    gridDim = dim3{dims[0], dims[1], dims[2]};
    blockDim = dim3{dims[3], dims[4], dims[5]};
    kernel_call = [&] { call_with(kernel, args, std::index_sequence_for<Params...>{}); };

    std::vector<Fiber> fibers(blockDim.x * blockDim.y * blockDim.z);
    for (Fiber& f : fibers)
        f.stack.reset(new char[STACK_BYTES]);
    for (unsigned int z = 0; z < gridDim.z; ++z)
        for (unsigned int y = 0; y < gridDim.y; ++y)
            for (unsigned int x = 0; x < gridDim.x; ++x) {
                blockIdx = uint3{x, y, z};
                std::fill_n(dynamic_shared_bytes, shared_bytes, (unsigned char)0xFF);
                if (!run_block(fibers))
                    return 1;
            }
    return 0;
}

}  // namespace cuda_emu

extern "C" const char* cuda_emu_last_error()
{
    return cuda_emu::last_error.c_str();
}
