// AdamW (Loshchilov & Hutter, 2019) and Adam (Kingma & Ba, 2015) over one flat buffer in one
// launch: every parameter of a device and dtype lives in one contiguous array (each
// parameter a view), and so do its gradients and both moments, so a whole optimizer step is
// this kernel instead of ~14 small kernels per parameter. The reference is
// adam_step_reference in tinygen/ops/kernel_calls.py (the same update as optim/adam.py).
// One thread per element in a grid-stride loop: consecutive threads update consecutive
// floats of all four buffers (coalesced); each element is read and written once.
// decay[i] (one byte per element, 1 = decay, 0 = exempt, as for biases and norms) carries
// the per-group weight decay of nanoGPT's two groups; has_decay_flags = 0 decays all.
// The bias corrections are computed on the host from the step count, so the kernel reads
// no step counter: step_size = lr / (1 - beta1^t), inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t).

extern "C" __global__ void adam_step(
    float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
    const unsigned char* decay, int has_decay_flags, long long n,
    float lr, float beta1, float beta2, float eps, float weight_decay,
    float step_size, float inv_sqrt_bc2, int decoupled)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float x = param[i], g = grad[i];
        const float wd = (!has_decay_flags || decay[i]) ? weight_decay : 0.0f;
        if (decoupled) x *= 1.0f - lr * wd;      // AdamW: shrink the weights directly
        else g += wd * x;                        // Adam: L2 penalty in the gradient
        const float m = beta1 * exp_avg[i] + (1.0f - beta1) * g;
        const float v = beta2 * exp_avg_sq[i] + (1.0f - beta2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        param[i] = x - step_size * m / (sqrtf(v) * inv_sqrt_bc2 + eps);
    }
}
