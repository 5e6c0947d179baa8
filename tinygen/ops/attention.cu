// The middle of attention, softmax(scale * q k^T + causal mask), fused into one kernel and its
// backward into another, for rows of up to 1024 keys. q k^T and att v stay matmuls (cuBLAS).
// scores/att are [R, Tk] with R = B * nh * Tq rows; row r is query i = r % Tq, which with a
// KV cache sits at position Tk - Tq + i and may see keys 0 .. Tk - Tq + i (as the reference
// Attention._causal_mask). The references are attention_softmax_*_reference in
// tinygen/ops/kernel_calls.py.
// One block of 256 threads per row; thread t holds keys t, t + 256, t + 512, t + 768 in
// registers (4 per thread: hence the 1024-key limit), so the row is read from memory once,
// the max and the sum are block reductions, and each key is written once. Consecutive
// threads hold consecutive keys: every read and write of a warp is 128 contiguous bytes.
#include "reduce.cuh"

#define SOFTMAX_THREADS 256
#define SOFTMAX_PER_THREAD 4      // SOFTMAX_THREADS * SOFTMAX_PER_THREAD = 1024 keys at most

extern "C" __global__ void attention_softmax_forward(
    const float* scores, float* att, int R, int Tq, int Tk, float scale, int causal)
{
    __shared__ float shared[32];
    const int row = blockIdx.x;
    if (row >= R) return;
    const long long base = (long long)row * Tk;
    // last key this query may see: Tk - 1 without a mask
    const int last = causal ? Tk - Tq + row % Tq : Tk - 1;

    float v[SOFTMAX_PER_THREAD];
    float m = TG_NEG_INF;
    #pragma unroll
    for (int k = 0; k < SOFTMAX_PER_THREAD; ++k) {
        const int j = threadIdx.x + k * SOFTMAX_THREADS;
        v[k] = (j < Tk && j <= last) ? scores[base + j] * scale : TG_NEG_INF;
        m = fmaxf(m, v[k]);
    }
    const float row_max = block_max(m, shared);

    float s = 0.0f;
    #pragma unroll
    for (int k = 0; k < SOFTMAX_PER_THREAD; ++k) {
        v[k] = v[k] == TG_NEG_INF ? 0.0f : expf(v[k] - row_max);   // masked keys: exactly 0
        s += v[k];
    }
    const float inv_sum = 1.0f / block_sum(s, shared);

    #pragma unroll
    for (int k = 0; k < SOFTMAX_PER_THREAD; ++k) {
        const int j = threadIdx.x + k * SOFTMAX_THREADS;
        if (j < Tk) att[base + j] = v[k] * inv_sum;
    }
}

// gscores = scale * att * (gatt - sum_j gatt_j att_j), the softmax Jacobian applied to gatt
// and the chain rule through the scale; masked keys have att = 0, so they get 0 too.
// Same layout as forward: each thread keeps its 4 keys' att and gatt in registers.
extern "C" __global__ void attention_softmax_backward(
    const float* att, const float* gatt, float* gscores, int R, int Tk, float scale)
{
    __shared__ float shared[32];
    const int row = blockIdx.x;
    if (row >= R) return;
    const long long base = (long long)row * Tk;

    float a[SOFTMAX_PER_THREAD], g[SOFTMAX_PER_THREAD];
    float dot = 0.0f;
    #pragma unroll
    for (int k = 0; k < SOFTMAX_PER_THREAD; ++k) {
        const int j = threadIdx.x + k * SOFTMAX_THREADS;
        a[k] = j < Tk ? att[base + j] : 0.0f;
        g[k] = j < Tk ? gatt[base + j] : 0.0f;
        dot += a[k] * g[k];
    }
    dot = block_sum(dot, shared);

    #pragma unroll
    for (int k = 0; k < SOFTMAX_PER_THREAD; ++k) {
        const int j = threadIdx.x + k * SOFTMAX_THREADS;
        if (j < Tk) gscores[base + j] = scale * a[k] * (g[k] - dot);
    }
}
