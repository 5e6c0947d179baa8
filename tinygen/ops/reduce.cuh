// Sums and maxima across one thread block, shared by the kernels that give a block to each
// row (normalization.cu, attention.cu, loss.cu). A warp of 32 threads reduces in registers
// with butterfly shuffles; each warp's lane 0 then leaves its partial in shared memory and
// every warp reduces those (at most 32) partials again, so every thread ends with the total.
// blockDim.x must be a multiple of 32, at most 1024. No headers: NVRTC compiles it alone.
#pragma once

#define TG_NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// `shared` holds 32 floats. The first __syncthreads keeps a warp from overwriting partials
// that a slower warp is still reading from the previous call.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_sum(lane < n_warps ? shared[lane] : 0.0f);
}

__device__ __forceinline__ float block_max(float v, float* shared) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    return warp_max(lane < n_warps ? shared[lane] : TG_NEG_INF);
}
