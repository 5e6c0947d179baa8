// Dropout (Srivastava et al., 2014), inverted: kept elements scaled by 1 / (1 - p), with a
// counter-based generator, Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011). A counter-based generator is a pure function of (key, counter):
// no state to advance and no cuRAND, so the same (seed, offset) gives the same mask on
// every launch, on every replay of a captured CUDA graph, and in backward (which
// regenerates the mask instead of saving it). tinygen/ops/philox.py is the same generator
// in NumPy/CuPy array code; the CPU and the GPU draw identical masks.
// The numbering, shared with philox.py: element i of a call takes 32-bit word i % 4 of
// philox4x32_10(counter = (lo(i / 4), hi(i / 4), lo(offset), hi(offset)),
//               key = (lo(seed), hi(seed))),
// u24 = word >> 8 (24 random bits), kept when u24 * 2^-24 >= p. A caller draws disjoint
// streams by giving each call its own offset (as PyTorch's Philox offset).
// One thread per 4 elements: one Philox evaluation yields the 4 words it needs, and a warp
// reads and writes 512 contiguous bytes.

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u      // golden ratio
#define PHILOX_W1 0xBB67AE85u      // sqrt(3) - 1

// Ten rounds; each multiplies two words into 64-bit products and mixes the halves with the
// other words and the key, which is bumped by the Weyl constants between rounds.
__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
    #pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) { k.x += PHILOX_W0; k.y += PHILOX_W1; }
        const unsigned int hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
        const unsigned int hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

__device__ __forceinline__ uint4 philox_block(long long block, unsigned long long seed,
                                              unsigned long long offset) {
    const uint4 counter = make_uint4((unsigned int)block, (unsigned int)(block >> 32),
                                     (unsigned int)offset, (unsigned int)(offset >> 32));
    return philox4x32_10(counter, make_uint2((unsigned int)seed, (unsigned int)(seed >> 32)));
}

__device__ __forceinline__ float keep_scale(unsigned int word, float p, float scale) {
    return (float)(word >> 8) * 5.9604644775390625e-08f >= p ? scale : 0.0f;   // 2^-24
}

// out[i] = x[i] * mask[i], mask = scale (= 1 / (1 - p)) where kept, 0 where dropped.
// Forward and backward are the same call: backward passes grad as x, with the same seed
// and offset, and gets grad * mask without the mask ever being stored.
extern "C" __global__ void dropout_apply(const float* x, float* out, long long n, float p,
                                         float scale, unsigned long long seed,
                                         unsigned long long offset)
{
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; 4 * b < n;
         b += (long long)gridDim.x * blockDim.x) {
        const uint4 r = philox_block(b, seed, offset);
        const unsigned int words[4] = {r.x, r.y, r.z, r.w};
        #pragma unroll
        for (int w = 0; w < 4; ++w) {
            const long long i = 4 * b + w;
            if (i < n) out[i] = x[i] * keep_scale(words[w], p, scale);
        }
    }
}

// The mask itself (scale or 0), for callers that keep it (attention's dropout on att).
extern "C" __global__ void dropout_mask(float* mask, long long n, float p, float scale,
                                        unsigned long long seed, unsigned long long offset)
{
    for (long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x; 4 * b < n;
         b += (long long)gridDim.x * blockDim.x) {
        const uint4 r = philox_block(b, seed, offset);
        const unsigned int words[4] = {r.x, r.y, r.z, r.w};
        #pragma unroll
        for (int w = 0; w < 4; ++w) {
            const long long i = 4 * b + w;
            if (i < n) mask[i] = keep_scale(words[w], p, scale);
        }
    }
}
