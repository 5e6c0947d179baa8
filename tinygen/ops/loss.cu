// Cross-entropy of logits [N, V] against integer targets [N], loss and gradient in one pass
// over the logits, as llm.c's fused classifier: the softmax is never stored, the gradient
// softmax - one_hot(target) is written straight away. The reference is
// cross_entropy_forward_backward_reference in tinygen/ops/kernel_calls.py.
// One block per row (a token); threads stride over the V classes, so a warp reads 128
// contiguous bytes of logits. Each thread keeps an online softmax (Milakov & Gimelshein,
// 2018): a running max m and the sum s of exp(x - m) over its classes; the block then
// combines them into log-sum-exp. A second sweep over the row (from L2 for V up to ~10^5)
// writes the gradient.
#include "reduce.cuh"

// loss[row] = logsumexp(logits[row]) - logits[row, target]; dlogits[row] = softmax - one_hot.
// Rows whose target is ignore_index get loss 0 and a zero gradient. A target outside
// [0, V) cannot raise on the device: that row gets NaN loss and NaN gradient, so it cannot
// go unnoticed (callers check bounds on the host before upload).
// dlogits may alias logits (in place), since each element is read before it is written by
// the same thread.
extern "C" __global__ void cross_entropy_forward_backward(
    const float* logits, const long long* target, float* loss, float* dlogits,
    int N, int V, long long ignore_index)
{
    __shared__ float shared[32];
    const int row = blockIdx.x;
    if (row >= N) return;
    const long long base = (long long)row * V;
    const long long t = target[row];

    if (t == ignore_index || t < 0 || t >= V) {
        const float fill = t == ignore_index ? 0.0f : __int_as_float(0x7fc00000);   // NaN
        for (int v = threadIdx.x; v < V; v += blockDim.x) dlogits[base + v] = fill;
        if (threadIdx.x == 0) loss[row] = fill;
        return;
    }

    float m = TG_NEG_INF, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        const float x = logits[base + v];
        if (x > m) {                      // rescale what was summed against the old max
            s = s * expf(m - x) + 1.0f;
            m = x;
        } else if (m != TG_NEG_INF) {   // x = m = -inf (a masked class) adds exp(-inf) = 0
            s += expf(x - m);
        }
    }
    const float row_max = block_max(m, shared);
    // a thread that saw no class has m = -inf and s = 0: it adds 0
    const float sum = block_sum(m == TG_NEG_INF ? 0.0f : s * expf(m - row_max), shared);
    const float lse = row_max + logf(sum);
    const float picked = logits[base + t];   // read before any thread overwrites the row
    __syncthreads();

    for (int v = threadIdx.x; v < V; v += blockDim.x)
        dlogits[base + v] = expf(logits[base + v] - lse) - (v == t ? 1.0f : 0.0f);
    if (threadIdx.x == 0) loss[row] = lse - picked;
}
