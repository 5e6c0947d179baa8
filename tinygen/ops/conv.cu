// im2col and col2im (Chellapilla et al., 2006; Caffe), one launch each, for a 2-D convolution
// with stride and padding per direction. The image is addressed through element strides
// (sC, sH, sW, sN), so the same kernel reads NCHW (sN = C*H*W, sC = H*W, sH = W, sW = 1) or
// tinygen's batch-last rows [C, H, W, N] (sN = 1) without a transposing copy first.
// cols is [C*Kh*Kw, Ho*Wo*N] row-major, i.e. [C, Kh, Kw, Ho, Wo, N]:
//   cols[(c, a, b), (i, j, n)] = image[c, a + Sh*i - Ph, b + Sw*j - Pw, n], 0 in the padding,
// the layout of the reference im2col/col2im in tinygen/ops/im2col.py (which adds dilation;
// this kernel has none).

// One thread per element of cols, n fastest: consecutive threads write consecutive floats,
// and read consecutive images of one pixel (contiguous when sN = 1, strided for NCHW).
extern "C" __global__ void im2col(
    const float* image, float* cols, int C, int H, int W, int N,
    long long sC, long long sH, long long sW, long long sN,
    int Kh, int Kw, int Sh, int Sw, int Ph, int Pw, int Ho, int Wo)
{
    const long long total = (long long)C * Kh * Kw * Ho * Wo * N;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long r = idx;
        const int n = r % N; r /= N;
        const int j = r % Wo; r /= Wo;
        const int i = r % Ho; r /= Ho;
        const int b = r % Kw; r /= Kw;
        const int a = r % Kh; r /= Kh;
        const int c = (int)r;
        const int y = a + Sh * i - Ph, x = b + Sw * j - Pw;
        cols[idx] = (y >= 0 && y < H && x >= 0 && x < W)
            ? image[c * sC + y * sH + x * sW + n * sN] : 0.0f;
    }
}

// The adjoint: one thread per image element (c, y, x, n), which gathers every cols entry
// copied from it: kernel offsets a with y + Ph - a = Sh*i for an output row 0 <= i < Ho
// (and b, j likewise). A gather, not a scatter: no atomics, and the sum is deterministic.
extern "C" __global__ void col2im(
    const float* cols, float* image, int C, int H, int W, int N,
    long long sC, long long sH, long long sW, long long sN,
    int Kh, int Kw, int Sh, int Sw, int Ph, int Pw, int Ho, int Wo)
{
    const long long total = (long long)C * H * W * N;
    const long long plane = (long long)Ho * Wo * N;          // one (c, a, b) row of cols
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        long long r = idx;
        const int n = r % N; r /= N;
        const int x = r % W; r /= W;
        const int y = r % H; r /= H;
        const int c = (int)r;
        float sum = 0.0f;
        for (int a = 0; a < Kh; ++a) {
            const int dy = y + Ph - a;
            if (dy < 0 || dy % Sh != 0 || dy / Sh >= Ho) continue;
            const int i = dy / Sh;
            for (int b = 0; b < Kw; ++b) {
                const int dx = x + Pw - b;
                if (dx < 0 || dx % Sw != 0 || dx / Sw >= Wo) continue;
                const int j = dx / Sw;
                sum += cols[((long long)(c * Kh + a) * Kw + b) * plane
                            + ((long long)i * Wo + j) * N + n];
            }
        }
        image[c * sC + y * sH + x * sW + n * sN] = sum;
    }
}
