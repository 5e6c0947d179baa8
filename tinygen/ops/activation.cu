// GELU, tanh form (Hendrycks & Gimpel, 2016; GPT-2): 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))),
// and bias + GELU, the epilogue of an MLP's first Linear (one pass instead of two).
// Elementwise: one thread per element in a grid-stride loop, so consecutive threads touch
// consecutive floats (coalesced) and any n works with a capped grid. The references are
// gelu_*_reference / bias_gelu_*_reference in tinygen/ops/kernel_calls.py.

#define GELU_K 0.7978845608028654f        // sqrt(2 / pi)
#define GELU_A 0.044715f

__device__ __forceinline__ float gelu(float x) {
    const float t = tanhf(GELU_K * (x + GELU_A * x * x * x));
    return 0.5f * x * (1.0f + t);
}

// d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
__device__ __forceinline__ float gelu_grad(float x) {
    const float t = tanhf(GELU_K * (x + GELU_A * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
}

extern "C" __global__ void gelu_forward(const float* x, float* out, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        out[i] = gelu(x[i]);
}

// Recomputes tanh from x instead of saving it: one saved array ([n] x) instead of two.
extern "C" __global__ void gelu_backward(const float* x, const float* grad, float* gx,
                                         long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        gx[i] = grad[i] * gelu_grad(x[i]);
}

// x [N, C] row-major, bias [C]: out = gelu(x + bias). Element i is feature i % C, so a warp
// reads 32 consecutive biases too (they stay in L1).
extern "C" __global__ void bias_gelu_forward(const float* x, const float* bias, float* out,
                                             long long n, int C)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        out[i] = gelu(x[i] + bias[i % C]);
}

// gpre = grad * gelu'(x + bias), the gradient of both x and (before its sum over rows) bias;
// the caller sums gpre over the rows for gbias.
extern "C" __global__ void bias_gelu_backward(const float* x, const float* bias,
                                              const float* grad, float* gpre,
                                              long long n, int C)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        gpre[i] = grad[i] * gelu_grad(x[i] + bias[i % C]);
}
