// Fused kernels for the encoder forward on CUDA (compiled to PTX by build.rs, loaded by
// rust/src/model/cuda_ops.rs).
//
// Why they exist: with candle's generic ops a BERT layer is ~21 kernel launches, and at 64 x 128
// tokens on an H100 more GPU time went to broadcast adds and strided copies than to the matrix
// products (benches/results/profile_gpu_h100.log). Each kernel here replaces several of those:
//   split_heads    fused QKV (batch, seq, 3, heads, dim) -> (3, batch, heads, seq, dim)
//   merge_heads    attention context (batch, heads, seq, dim) -> (batch, seq, heads * dim)
//   masked_softmax scale + padding bias + softmax, in place on the scores (was 3 kernels and a
//                  broadcast of the mask to every head and query)
//   add_layer_norm residual add + layer norm, in place (was 2 kernels and a temporary)
//   embed_layer_norm  word + position + token-type embeddings + layer norm (was 4 kernels)
//   gelu_erf       exact GELU, in place
//   masked_mean_pool  mean over real tokens, to float32 (was 6 kernels)
//   padding_bias   the additive attention bias from the 0/1 mask (was 4 kernels)
// Arithmetic is float32 whatever the storage type, as in candle's own kernels.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

template <typename T> __device__ __forceinline__ float load(const T* p);
template <> __device__ __forceinline__ float load<float>(const float* p) { return *p; }
template <> __device__ __forceinline__ float load<__half>(const __half* p) { return __half2float(*p); }
template <> __device__ __forceinline__ float load<__nv_bfloat16>(const __nv_bfloat16* p) {
    return __bfloat162float(*p);
}

template <typename T> __device__ __forceinline__ void store(T* p, float v);
template <> __device__ __forceinline__ void store<float>(float* p, float v) { *p = v; }
template <> __device__ __forceinline__ void store<__half>(__half* p, float v) { *p = __float2half_rn(v); }
template <> __device__ __forceinline__ void store<__nv_bfloat16>(__nv_bfloat16* p, float v) {
    *p = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ unsigned global_thread() { return blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ unsigned thread_count() { return gridDim.x * blockDim.x; }

// ---- head layout permutes --------------------------------------------------------------------
// Pure data movement, so they work on opaque units (16, 4 or 2 bytes) chosen by the host from the
// head size and alignment: `dim` counts units, not elements. Index arithmetic is 32-bit (the host
// checks the sizes).

template <typename U>
__device__ void split_heads(const U* in, U* out, unsigned batch, unsigned seq, unsigned heads, unsigned dim) {
    const unsigned total = batch * seq * 3 * heads * dim;
    for (unsigned i = global_thread(); i < total; i += thread_count()) {
        unsigned rest = i;
        const unsigned d = rest % dim; rest /= dim;
        const unsigned h = rest % heads; rest /= heads;
        const unsigned which = rest % 3; rest /= 3;
        const unsigned s = rest % seq;
        const unsigned b = rest / seq;
        out[(((which * batch + b) * heads + h) * seq + s) * dim + d] = in[i];
    }
}

template <typename U>
__device__ void merge_heads(const U* in, U* out, unsigned batch, unsigned seq, unsigned heads, unsigned dim) {
    const unsigned total = batch * heads * seq * dim;
    for (unsigned i = global_thread(); i < total; i += thread_count()) {
        unsigned rest = i;
        const unsigned d = rest % dim; rest /= dim;
        const unsigned s = rest % seq; rest /= seq;
        const unsigned h = rest % heads;
        const unsigned b = rest / heads;
        out[((b * seq + s) * heads + h) * dim + d] = in[i];
    }
}

#define PERMUTES(NAME, U)                                                                        \
    extern "C" __global__ void split_heads_##NAME(const U* in, U* out, unsigned batch, unsigned seq, \
                                                  unsigned heads, unsigned dim) {                \
        split_heads<U>(in, out, batch, seq, heads, dim);                                         \
    }                                                                                            \
    extern "C" __global__ void merge_heads_##NAME(const U* in, U* out, unsigned batch, unsigned seq, \
                                                  unsigned heads, unsigned dim) {                \
        merge_heads<U>(in, out, batch, seq, heads, dim);                                         \
    }

PERMUTES(u128, uint4)
PERMUTES(u32, uint32_t)
PERMUTES(u16, uint16_t)

// ---- vector access ------------------------------------------------------------------------------
// Row kernels move VEC elements per load (16 bytes when the host finds rows and starts aligned,
// else VEC = 1). Pointers are __restrict__ so loads can be issued ahead of the stores.

template <typename T, int VEC> struct alignas(sizeof(T) * VEC) Pack {
    T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ void load_pack(const T* __restrict__ p, float (&out)[VEC]) {
    const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(p);
#pragma unroll
    for (int e = 0; e < VEC; ++e) out[e] = load(&pack.v[e]);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_pack(T* __restrict__ p, const float (&in)[VEC]) {
    Pack<T, VEC> pack;
#pragma unroll
    for (int e = 0; e < VEC; ++e) store(&pack.v[e], in[e]);
    *reinterpret_cast<Pack<T, VEC>*>(p) = pack;
}

// ---- masked softmax ------------------------------------------------------------------------------
// GROUP lanes (8, 16 or 32 of a warp) per row of scores (rows = batch * heads * queries, `cols`
// keys), in place:
//   p = softmax(scores * scale + bias[batch, key])
// `bias` is the (batch, keys) padding bias (0 or a large finite negative). The row is held in
// registers, 16 values per lane: cols <= GROUP * 16 (the host picks the smallest group that fits,
// so a 128-key row of bf16 takes 8 lanes and a warp serves 4 rows); rows longer than 512 take
// masked_softmax_long, which re-reads them.

constexpr int SOFTMAX_VALUES = 16;

template <int GROUP>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
    for (int offset = GROUP / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

template <int GROUP>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
    for (int offset = GROUP / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

template <typename T, int VEC, int GROUP>
__device__ void masked_softmax(T* __restrict__ scores, const T* __restrict__ bias, float scale, unsigned rows,
                               unsigned cols, unsigned rows_per_batch) {
    constexpr int SLOTS = SOFTMAX_VALUES / VEC;
    // A warp past the last row leaves as a whole; inside a warp every lane reaches the shuffles.
    if ((global_thread() / 32) * (32 / GROUP) >= rows) return;
    const unsigned row = global_thread() / GROUP;
    const unsigned lane = threadIdx.x % GROUP;
    const bool valid = row < rows;
    T* values = scores + (size_t)row * cols;
    const T* row_bias = bias + (size_t)(row / rows_per_batch) * cols;
    const unsigned chunks = valid ? cols / VEC : 0;
    float v[SLOTS][VEC];
    float top = -INFINITY;
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        const unsigned c = lane + slot * GROUP;
        if (c < chunks) {
            float b[VEC];
            load_pack<T, VEC>(values + c * VEC, v[slot]);
            load_pack<T, VEC>(row_bias + c * VEC, b);
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                v[slot][e] = v[slot][e] * scale + b[e];
                top = fmaxf(top, v[slot][e]);
            }
        }
    }
    top = group_max<GROUP>(top);
    float total = 0.0f;
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        if (lane + slot * GROUP < chunks) {
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                v[slot][e] = expf(v[slot][e] - top);
                total += v[slot][e];
            }
        }
    }
    const float inverse = 1.0f / group_sum<GROUP>(total);
#pragma unroll
    for (int slot = 0; slot < SLOTS; ++slot) {
        const unsigned c = lane + slot * GROUP;
        if (c < chunks) {
#pragma unroll
            for (int e = 0; e < VEC; ++e) v[slot][e] *= inverse;
            store_pack<T, VEC>(values + c * VEC, v[slot]);
        }
    }
}

template <typename T>
__device__ void masked_softmax_long(T* __restrict__ scores, const T* __restrict__ bias, float scale,
                                    unsigned rows, unsigned cols, unsigned rows_per_batch) {
    const unsigned row = global_thread() / 32;
    const unsigned lane = threadIdx.x % 32;
    if (row >= rows) return;
    T* values = scores + (size_t)row * cols;
    const T* row_bias = bias + (size_t)(row / rows_per_batch) * cols;
    float top = -INFINITY;
    for (unsigned j = lane; j < cols; j += 32) top = fmaxf(top, load(values + j) * scale + load(row_bias + j));
    top = warp_max(top);
    float total = 0.0f;
    for (unsigned j = lane; j < cols; j += 32) total += expf(load(values + j) * scale + load(row_bias + j) - top);
    const float inverse = 1.0f / warp_sum(total);
    for (unsigned j = lane; j < cols; j += 32) {
        store(values + j, expf(load(values + j) * scale + load(row_bias + j) - top) * inverse);
    }
}

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

template <typename T, int VEC>
__device__ void gelu_erf(T* __restrict__ x, unsigned n) {
    const unsigned chunks = n / VEC;
    for (unsigned c = global_thread(); c < chunks; c += thread_count()) {
        float v[VEC];
        load_pack<T, VEC>(x + c * VEC, v);
#pragma unroll
        for (int e = 0; e < VEC; ++e) v[e] = 0.5f * v[e] * (1.0f + erff(v[e] * 0.70710678118654752f));
        store_pack<T, VEC>(x + c * VEC, v);
    }
}

// ---- pooling and masks ---------------------------------------------------------------------------

// out[b, j] = mean of hidden[b, s, j] over the positions s where mask[b, s] = 1, in float32.
// Grid (ceil(hidden / blockDim), batch).
template <typename T>
__device__ void masked_mean_pool(const T* __restrict__ hidden, const uint32_t* __restrict__ mask,
                                 float* __restrict__ out, unsigned seq, unsigned width) {
    const unsigned b = blockIdx.y;
    const unsigned j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    const T* h = hidden + (size_t)b * seq * width + j;
    const uint32_t* m = mask + (size_t)b * seq;
    float total = 0.0f, count = 0.0f;
#pragma unroll 8
    for (unsigned s = 0; s < seq; ++s) {
        if (m[s]) {
            total += load(h + (size_t)s * width);
            count += 1.0f;
        }
    }
    out[(size_t)b * width + j] = total / fmaxf(count, 1e-9f);
}

// The additive attention bias from a 0/1 mask: 0 where a token is real, `blocked` (a large
// finite negative for the dtype) where it is padding.
template <typename T>
__device__ void padding_bias(const uint32_t* __restrict__ mask, T* __restrict__ bias, unsigned n, float blocked) {
    for (unsigned i = global_thread(); i < n; i += thread_count()) store(bias + i, mask[i] ? 0.0f : blocked);
}

#define SOFTMAX(NAME, T, VEC, GROUP)                                                                 \
    extern "C" __global__ void masked_softmax_##NAME##_v##VEC##_g##GROUP(                          \
        T* scores, const T* bias, float scale, unsigned rows, unsigned cols, unsigned rows_per_batch) { \
        masked_softmax<T, VEC, GROUP>(scores, bias, scale, rows, cols, rows_per_batch);              \
    }

#define VEC_OPS(NAME, T, VEC)                                                                        \
    SOFTMAX(NAME, T, VEC, 8)                                                                         \
    SOFTMAX(NAME, T, VEC, 16)                                                                        \
    SOFTMAX(NAME, T, VEC, 32)                                                                        \
    extern "C" __global__ void add_layer_norm_##NAME##_v##VEC(T* x, const T* residual, const T* params, \
                                                              unsigned rows, unsigned hidden, float eps) { \
        add_layer_norm<T, VEC>(x, residual, params, rows, hidden, eps);                              \
    }                                                                                                \
    extern "C" __global__ void embed_layer_norm_##NAME##_v##VEC(                                     \
        const uint32_t* ids, const T* word, const T* position, const T* token_type, const T* params, \
        T* out, unsigned rows, unsigned seq, unsigned hidden, unsigned vocab, float eps) {             \
        embed_layer_norm<T, VEC>(ids, word, position, token_type, params, out, rows, seq, hidden, vocab, eps); \
    }                                                                                                \
    extern "C" __global__ void gelu_erf_##NAME##_v##VEC(T* x, unsigned n) { gelu_erf<T, VEC>(x, n); }

#define FLOAT_OPS(NAME, T, WIDE)                                                                   \
    VEC_OPS(NAME, T, 1)                                                                              \
    VEC_OPS(NAME, T, WIDE)                                                                           \
    extern "C" __global__ void masked_softmax_long_##NAME(T* scores, const T* bias, float scale,     \
                                                          unsigned rows, unsigned cols,               \
                                                          unsigned rows_per_batch) {                  \
        masked_softmax_long<T>(scores, bias, scale, rows, cols, rows_per_batch);                     \
    }                                                                                                \
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
