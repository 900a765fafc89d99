// Fused kernels for the encoder forward on CUDA (compiled to PTX by build.rs, loaded by
// rust/src/model/cuda_ops/; the attention kernels are in attention_ops.cu).
//
// Why they exist: with candle's generic ops a BERT layer is ~21 kernel launches, and at 64 x 128
// tokens on an H100 more GPU time went to broadcast adds and strided copies than to the matrix
// products (benches/results/profile_gpu_h100.log). Each kernel here replaces several of those:
//   add_layer_norm residual add + layer norm, in place (was 2 kernels and a temporary)
//   embed_layer_norm  word + position + token-type embeddings + layer norm (was 4 kernels)
//   gelu_erf       exact GELU, in place
//   geglu_*        ModernBERT's gated MLP act(x[:, :half]) * x[:, half:] in one pass (was a GELU
//                  over a strided half, a multiply and their temporaries)
//   masked_mean_pool  mean over real tokens, to float32 (was 6 kernels)
//   padding_bias   the additive attention bias from the 0/1 mask (was 4 kernels)

#include "common.cuh"

// ---- layer norms ---------------------------------------------------------------------------------
// One warp per row; the row stays in registers (hidden <= 32 * 32 = 1024, checked by the host), so
// mean and variance take two exact passes. gamma and beta are packed as params[0..hidden] and
// params[hidden..2 * hidden].

constexpr int NORM_VALUES = 32;

template <typename T, int VEC>
__device__ __forceinline__ void finish_layer_norm(float (&v)[NORM_VALUES / VEC][VEC], float sum, T* __restrict__ out,
                                                  const T* __restrict__ params, unsigned hidden, float eps) {
    constexpr int SLOTS = NORM_VALUES / VEC;
    const unsigned lane = threadIdx.x % 32;
    const unsigned chunks = hidden / VEC;
    const float mean = warp_sum(sum) / hidden;
    float squares = 0.0f;
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        if (lane + slot * 32 < chunks) {
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                const float centred = v[slot][e] - mean;
                squares += centred * centred;
            }
        }
    }
    const float inverse_std = rsqrtf(warp_sum(squares) / hidden + eps);
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        const unsigned c = lane + slot * 32;
        if (c < chunks) {
            float gamma[VEC], beta[VEC], y[VEC];
            load_pack<T, VEC>(params + c * VEC, gamma);
            load_pack<T, VEC>(params + hidden + c * VEC, beta);
#pragma unroll
            for (int e = 0; e < VEC; ++e) y[e] = (v[slot][e] - mean) * inverse_std * gamma[e] + beta[e];
            store_pack<T, VEC>(out + c * VEC, y);
        }
    }
}

// In place on `x`: x = LayerNorm(x + residual).
template <typename T, int VEC>
__device__ void add_layer_norm(T* __restrict__ x, const T* __restrict__ residual, const T* __restrict__ params,
                               unsigned rows, unsigned hidden, float eps) {
    constexpr int SLOTS = NORM_VALUES / VEC;
    const unsigned row = global_thread() / 32;
    const unsigned lane = threadIdx.x % 32;
    if (row >= rows) return;
    T* values = x + (size_t)row * hidden;
    const T* added = residual + (size_t)row * hidden;
    const unsigned chunks = hidden / VEC;
    float v[SLOTS][VEC];
    float sum = 0.0f;
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        const unsigned c = lane + slot * 32;
        if (c < chunks) {
            float r[VEC];
            load_pack<T, VEC>(values + c * VEC, v[slot]);
            load_pack<T, VEC>(added + c * VEC, r);
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                v[slot][e] += r[e];
                sum += v[slot][e];
            }
        }
    }
    finish_layer_norm<T, VEC>(v, sum, values, params, hidden, eps);
}

// BERT's embeddings: out[row] = LayerNorm(word[ids[row]] + position[row % seq] + token_type).
template <typename T, int VEC>
__device__ void embed_layer_norm(const uint32_t* __restrict__ ids, const T* __restrict__ word,
                                 const T* __restrict__ position, const T* __restrict__ token_type,
                                 const T* __restrict__ params, T* __restrict__ out, unsigned rows, unsigned seq,
                                 unsigned hidden, unsigned vocab, float eps) {
    constexpr int SLOTS = NORM_VALUES / VEC;
    const unsigned row = global_thread() / 32;
    const unsigned lane = threadIdx.x % 32;
    if (row >= rows) return;
    // The tokenizer only yields ids of its vocabulary; clamp so a mismatched one cannot fault.
    const unsigned id = min(ids[row], vocab - 1);
    const T* w = word + (size_t)id * hidden;
    const T* p = position + (size_t)(row % seq) * hidden;
    const unsigned chunks = hidden / VEC;
    float v[SLOTS][VEC];
    float sum = 0.0f;
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        const unsigned c = lane + slot * 32;
        if (c < chunks) {
            float a[VEC], b[VEC];
            load_pack<T, VEC>(w + c * VEC, v[slot]);
            load_pack<T, VEC>(p + c * VEC, a);
            load_pack<T, VEC>(token_type + c * VEC, b);
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                v[slot][e] += a[e] + b[e];
                sum += v[slot][e];
            }
        }
    }
    finish_layer_norm<T, VEC>(v, sum, out + (size_t)row * hidden, params, hidden, eps);
}

// ---- GELU ----------------------------------------------------------------------------------------

__device__ __forceinline__ float gelu_exact(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

template <typename T, int VEC>
__device__ void gelu_erf(T* __restrict__ x, unsigned n) {
    const unsigned chunks = n / VEC;
    for (unsigned c = global_thread(); c < chunks; c += thread_count()) {
        float v[VEC];
        load_pack<T, VEC>(x + c * VEC, v);
#pragma unroll
        for (int e = 0; e < VEC; ++e) v[e] = gelu_exact(v[e]);
        store_pack<T, VEC>(x + c * VEC, v);
    }
}

// ---- gated GELU (ModernBERT's MLP) -----------------------------------------------------------------
// x (rows, 2 * half) holds [input | gate] per row; out (rows, half) = act(input) * gate, contiguous.
// `half` counts VEC-element chunks (the host checks half % VEC == 0 and the alignment).

__device__ __forceinline__ float gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

template <typename T, int VEC, bool TANH>
__device__ void geglu(const T* __restrict__ x, T* __restrict__ out, unsigned rows, unsigned half) {
    const unsigned chunks = rows * half;
    for (unsigned c = global_thread(); c < chunks; c += thread_count()) {
        const unsigned row = c / half;
        const unsigned j = c - row * half;
        const T* in = x + ((size_t)row * 2 * half + j) * VEC;
        float a[VEC], g[VEC];
        load_pack<T, VEC>(in, a);
        load_pack<T, VEC>(in + (size_t)half * VEC, g);
#pragma unroll
        for (int e = 0; e < VEC; ++e) a[e] = (TANH ? gelu_tanh(a[e]) : gelu_exact(a[e])) * g[e];
        store_pack<T, VEC>(out + (size_t)c * VEC, a);
    }
}

// ---- pooling and masks ---------------------------------------------------------------------------

// out[b, j] = mean of hidden[b, s, j] over the positions s where mask[b, s] = 1, in float32.
// Grid (ceil(width / 32), batch), POOL_WARPS warps per block: lane = feature, each warp sums every
// POOL_WARPS-th position, then the warps' partial sums meet in shared memory. (One thread per
// feature walking all positions took 14 us at batch 1 x 128 tokens on an H200: 6 blocks, a serial
// chain of 128 loads each.)
constexpr int POOL_WARPS = 8;

template <typename T>
__device__ void masked_mean_pool(const T* __restrict__ hidden, const uint32_t* __restrict__ mask,
                                 float* __restrict__ out, unsigned seq, unsigned width) {
    __shared__ float partial[POOL_WARPS][32];
    __shared__ float counts[POOL_WARPS];
    const unsigned b = blockIdx.y;
    const unsigned lane = threadIdx.x % 32;
    const unsigned warp = threadIdx.x / 32;
    const unsigned j = blockIdx.x * 32 + lane;
    const uint32_t* m = mask + (size_t)b * seq;
    float total = 0.0f, count = 0.0f;
    if (j < width) {
        const T* h = hidden + (size_t)b * seq * width + j;
#pragma unroll 4
        for (unsigned s = warp; s < seq; s += POOL_WARPS) {
            // Both loads issued before either is used (a branch on the mask made each step
            // wait for it, then for the state: two memory latencies per position).
            const float x = load(h + (size_t)s * width);
            const bool real = m[s] != 0;
            total += real ? x : 0.0f;
            count += real ? 1.0f : 0.0f;
        }
    } else {
        for (unsigned s = warp; s < seq; s += POOL_WARPS) count += m[s] ? 1.0f : 0.0f;
    }
    partial[warp][lane] = total;
    if (lane == 0) counts[warp] = count;
    __syncthreads();
    if (warp == 0 && j < width) {
        float sum = 0.0f, n = 0.0f;
#pragma unroll
        for (int w = 0; w < POOL_WARPS; ++w) {
            sum += partial[w][lane];
            n += counts[w];
        }
        out[(size_t)b * width + j] = sum / fmaxf(n, 1e-9f);
    }
}

// The additive attention bias from a 0/1 mask: 0 where a token is real, `blocked` (a large
// finite negative for the dtype) where it is padding.
template <typename T>
__device__ void padding_bias(const uint32_t* __restrict__ mask, T* __restrict__ bias, unsigned n, float blocked) {
    for (unsigned i = global_thread(); i < n; i += thread_count()) store(bias + i, mask[i] ? 0.0f : blocked);
}

#define VEC_OPS(NAME, T, VEC)                                                                        \
    extern "C" __global__ void add_layer_norm_##NAME##_v##VEC(T* x, const T* residual, const T* params, \
                                                              unsigned rows, unsigned hidden, float eps) { \
        add_layer_norm<T, VEC>(x, residual, params, rows, hidden, eps);                              \
    }                                                                                                \
    extern "C" __global__ void embed_layer_norm_##NAME##_v##VEC(                                     \
        const uint32_t* ids, const T* word, const T* position, const T* token_type, const T* params, \
        T* out, unsigned rows, unsigned seq, unsigned hidden, unsigned vocab, float eps) {             \
        embed_layer_norm<T, VEC>(ids, word, position, token_type, params, out, rows, seq, hidden, vocab, eps); \
    }                                                                                                \
    extern "C" __global__ void gelu_erf_##NAME##_v##VEC(T* x, unsigned n) { gelu_erf<T, VEC>(x, n); } \
    extern "C" __global__ void geglu_erf_##NAME##_v##VEC(const T* x, T* out, unsigned rows, unsigned half) { \
        geglu<T, VEC, false>(x, out, rows, half);                                                    \
    }                                                                                                \
    extern "C" __global__ void geglu_tanh_##NAME##_v##VEC(const T* x, T* out, unsigned rows, unsigned half) { \
        geglu<T, VEC, true>(x, out, rows, half);                                                     \
    }

#define FLOAT_OPS(NAME, T, WIDE)                                                                   \
    VEC_OPS(NAME, T, 1)                                                                              \
    VEC_OPS(NAME, T, WIDE)                                                                           \
    extern "C" __global__ void masked_mean_pool_##NAME(const T* hidden, const uint32_t* mask, float* out, \
                                                       unsigned seq, unsigned width) {                \
        masked_mean_pool<T>(hidden, mask, out, seq, width);                                          \
    }                                                                                                \
    extern "C" __global__ void padding_bias_##NAME(const uint32_t* mask, T* bias, unsigned n, float blocked) { \
        padding_bias<T>(mask, bias, n, blocked);                                                     \
    }

// 16-byte vectors: 4 floats, 8 halves.
FLOAT_OPS(f32, float, 4)
FLOAT_OPS(f16, __half, 8)
FLOAT_OPS(bf16, __nv_bfloat16, 8)
