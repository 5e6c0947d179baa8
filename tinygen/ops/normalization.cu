// LayerNorm over the last axis (Ba, Kiros & Hinton, 2016), fp32 with fp32 accumulation.
// x is viewed as [N, C]: N rows (B*T tokens), C features each. The reference, with the same
// arguments, is layer_norm_forward_reference / layer_norm_backward_reference in
// tinygen/ops/kernel_calls.py. Shape of the work, as in llm.c's layernorm.cuh:
//   forward, backward (input): one block per row; its threads stride over the C features,
//     so consecutive threads read consecutive floats (coalesced), and the row's statistics
//     are block reductions (reduce.cuh).
//   backward (weight, bias): a sum over rows for each feature; a 32 x 8 block owns 32
//     consecutive features and a slice of the rows, and writes one partial sum per slice,
//     summed afterwards by the caller (deterministic: no atomics).
#include "reduce.cuh"

// out = (x - mean) * rstd * weight + bias; mean[N] and rstd[N] = 1/sqrt(var + eps) are saved
// for backward. Two passes over the row (mean, then the centred variance) rather than
// E[x^2] - E[x]^2, which loses digits when |mean| >> std. Rows of C <= a few thousand
// floats stay in L1/L2 between passes.
extern "C" __global__ void layer_norm_forward(
    const float* x, const float* weight, const float* bias, float* out,
    float* mean, float* rstd, int N, int C, float eps, int has_weight, int has_bias)
{
    __shared__ float shared[32];
    const int row = blockIdx.x;
    if (row >= N) return;
    const float* xr = x + (long long)row * C;
    float* outr = out + (long long)row * C;

    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) s += xr[c];
    const float mu = block_sum(s, shared) / C;

    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float d = xr[c] - mu;
        ss += d * d;
    }
    const float rs = rsqrtf(block_sum(ss, shared) / C + eps);

    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float y = (xr[c] - mu) * rs;
        if (has_weight) y *= weight[c];
        if (has_bias) y += bias[c];
        outr[c] = y;
    }
    if (threadIdx.x == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// gx = rstd * (g' - mean(g') - xhat * mean(g' * xhat)), g' = grad * weight, xhat recomputed
// from x, mean and rstd (cheaper to recompute than to save a second [N, C] array).
// One block per row: the two means are block sums, then each thread writes its features.
extern "C" __global__ void layer_norm_backward_input(
    const float* grad, const float* x, const float* mean, const float* rstd,
    const float* weight, float* gx, int N, int C, int has_weight)
{
    __shared__ float shared[32];
    const int row = blockIdx.x;
    if (row >= N) return;
    const long long base = (long long)row * C;
    const float mu = mean[row], rs = rstd[row];

    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float g = has_weight ? grad[base + c] * weight[c] : grad[base + c];
        sum_g += g;
        sum_gx += g * (x[base + c] - mu) * rs;
    }
    const float mean_g = block_sum(sum_g, shared) / C;
    const float mean_gx = block_sum(sum_gx, shared) / C;

    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        const float g = has_weight ? grad[base + c] * weight[c] : grad[base + c];
        const float xhat = (x[base + c] - mu) * rs;
        gx[base + c] = rs * (g - mean_g - xhat * mean_gx);
    }
}

// Partial sums over rows for gweight = sum_rows grad * xhat and gbias = sum_rows grad.
// Block (32, 8): threadIdx.x picks one of 32 consecutive features (a warp reads 128
// contiguous bytes of a row: coalesced), threadIdx.y one of 8 rows read at once; the block
// walks down its slice of rows, gridDim.y slices in all. The 8 partials of a feature are
// added in shared memory and written to partial_w/partial_b [gridDim.y, C].
extern "C" __global__ void layer_norm_backward_params(
    const float* grad, const float* x, const float* mean, const float* rstd,
    float* partial_w, float* partial_b, int N, int C)
{
    __shared__ float sw[8][33], sb[8][33];   // 33: no bank conflicts when reading a column
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc_w = 0.0f, acc_b = 0.0f;
    if (c < C) {
        for (int row = blockIdx.y * 8 + threadIdx.y; row < N; row += gridDim.y * 8) {
            const long long i = (long long)row * C + c;
            const float g = grad[i];
            acc_w += g * (x[i] - mean[row]) * rstd[row];
            acc_b += g;
        }
    }
    sw[threadIdx.y][threadIdx.x] = acc_w;
    sb[threadIdx.y][threadIdx.x] = acc_b;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int k = 0; k < 8; ++k) {
            tw += sw[k][threadIdx.x];
            tb += sb[k][threadIdx.x];
        }
        partial_w[(long long)blockIdx.y * C + c] = tw;
        partial_b[(long long)blockIdx.y * C + c] = tb;
    }
}
