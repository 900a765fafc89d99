// Fused kernels for the encoder forward on CUDA (compiled to PTX by build.rs, loaded by
// rust/src/model/cuda_ops.rs).
//
// Why they exist: with candle's generic ops a BERT layer is ~21 kernel launches, and at 64 x 128
// tokens on an H100 more GPU time went to broadcast adds and strided copies than to the matrix
// products (benches/results/profile_gpu_h100.log). Each kernel here replaces several of those:
//   split_heads    fused QKV (batch, seq, 3, heads, dim) -> (3, batch, heads, seq, dim)
//   merge_heads    attention context (batch, heads, seq, dim) -> (batch, seq, heads * dim)
//   attention_pointers  per-(text, head) operand pointers for cuBLAS's batched products, which
//                  replace both permutes for batches
//   masked_softmax scale + padding bias (+ ModernBERT's sliding window) + softmax, in place on
//                  the scores (was 3 kernels and a broadcast of the mask to every head and query)
//   add_layer_norm residual add + layer norm, in place (was 2 kernels and a temporary)
//   embed_layer_norm  word + position + token-type embeddings + layer norm (was 4 kernels)
//   gelu_erf       exact GELU, in place
//   geglu_*        ModernBERT's gated MLP act(x[:, :half]) * x[:, half:] in one pass (was a GELU
//                  over a strided half, a multiply and their temporaries)
//   masked_mean_pool  mean over real tokens, to float32 (was 6 kernels)
//   fused_attention   short sequences (<= 128 keys): QKV split, q k^T, scale + padding bias +
//                  softmax, p v and the head merge in one launch (was 5 launches per layer and
//                  two round trips of the scores through memory; at batch 1 a layer's attention
//                  is latency and launch bound, not arithmetic bound)
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

// Pointer arrays for the batched attention products (rust/src/model/cuda_ops/attention_gemm.rs):
// entry i = text * heads + head of k, q, scores, v and context in turn, `count` entries each,
// so cuBLAS reads each (text, head)'s operands straight from the fused QKV rows and writes its
// context into the merged layout. Offsets in bytes keep it independent of the element type; the
// arrays are filled on the stream so a recorded CUDA graph refills them from its own buffers.
extern "C" __global__ void attention_pointers(const char* qkv, const char* scores, const char* context,
                                              const char** out, unsigned count, unsigned heads,
                                              unsigned seq, unsigned long long row_bytes,
                                              unsigned long long hidden_bytes,
                                              unsigned long long head_bytes,
                                              unsigned long long score_bytes) {
    for (unsigned i = global_thread(); i < count; i += thread_count()) {
        const unsigned long long text = i / heads, head = i % heads;
        const char* q = qkv + text * seq * row_bytes + head * head_bytes;
        out[i] = q + hidden_bytes;
        out[count + i] = q;
        out[2 * count + i] = scores + i * score_bytes;
        out[3 * count + i] = q + 2 * hidden_bytes;
        out[4 * count + i] = context + text * seq * hidden_bytes + head * head_bytes;
    }
}

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
// `bias` is the (batch, keys) padding bias (0 or a large finite negative). With `half_window` below
// the row length (ModernBERT's local layers; NO_WINDOW otherwise), keys farther than it from the
// query get exp = 0: the scores are square per (text, head), so the query is row % cols. The
// query's own key is never blocked and its value is finite, so the maximum stays finite. The row is held in
// registers, 16 values per lane: cols <= GROUP * 16 (the host picks the smallest group that fits,
// so a 128-key row of bf16 takes 8 lanes and a warp serves 4 rows); rows longer than 512 take
// masked_softmax_long, which re-reads them.

constexpr int SOFTMAX_VALUES = 16;

// True when key `key` lies farther than `half_window` from `query` (no overflow at NO_WINDOW).
__device__ __forceinline__ bool outside_window(unsigned key, unsigned query, unsigned half_window) {
    return (key > query ? key - query : query - key) > half_window;
}

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
                               unsigned cols, unsigned rows_per_batch, unsigned half_window) {
    constexpr int SLOTS = SOFTMAX_VALUES / VEC;
    // A warp past the last row leaves as a whole; inside a warp every lane reaches the shuffles.
    if ((global_thread() / 32) * (32 / GROUP) >= rows) return;
    const unsigned row = global_thread() / GROUP;
    const unsigned lane = threadIdx.x % GROUP;
    const bool valid = row < rows;
    T* values = scores + (size_t)row * cols;
    const T* row_bias = bias + (size_t)(row / rows_per_batch) * cols;
    const unsigned chunks = valid ? cols / VEC : 0;
    const bool windowed = half_window < cols;
    const unsigned query = row % cols;
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
                if (windowed && outside_window(c * VEC + e, query, half_window)) v[slot][e] = -INFINITY;
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
                                    unsigned rows, unsigned cols, unsigned rows_per_batch,
                                    unsigned half_window) {
    const unsigned row = global_thread() / 32;
    const unsigned lane = threadIdx.x % 32;
    if (row >= rows) return;
    T* values = scores + (size_t)row * cols;
    const T* row_bias = bias + (size_t)(row / rows_per_batch) * cols;
    const unsigned query = row % cols;
    auto value = [&](unsigned j) {
        return outside_window(j, query, half_window) ? -INFINITY : load(values + j) * scale + load(row_bias + j);
    };
    float top = -INFINITY;
    for (unsigned j = lane; j < cols; j += 32) top = fmaxf(top, value(j));
    top = warp_max(top);
    float total = 0.0f;
    for (unsigned j = lane; j < cols; j += 32) total += expf(value(j) - top);
    const float inverse = 1.0f / warp_sum(total);
    for (unsigned j = lane; j < cols; j += 32) store(values + j, expf(value(j) - top) * inverse);
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

// ---- fused attention for short sequences -------------------------------------------------------
// One block per (query tile, head, text): ATT_WARPS warps, ATT_QUERIES_PER_WARP queries each.
//   1. K of this head (seq x D) and the tile's queries go to shared memory as float32, the
//      padding bias as float32; in half precision V is loaded into registers at the same time;
//   2. each lane scores keys lane, lane + 32, ... (<= 128 keys: 4 per lane) against the warp's
//      queries; scale + bias + softmax with warp shuffles; probabilities to shared memory;
//   3. V replaces K in shared memory; each lane accumulates D / 32 output features of the warp's
//      queries, written straight into the merged (text, position, head * D) layout.
// Global loads are 16-byte units, all of a thread's issued before any is used: the first version
// loaded one element per iteration of a loop that also stored to shared memory, so each thread
// waited out ~64 memory latencies in turn (34 us per layer at batch 1 on an H200, against 10 us
// for the five unfused kernels). Both products read shared memory 16 bytes at a time (K rows
// D + 4 floats apart so a warp's keys spread over the banks); V's tail is zero-filled to a multiple
// of four keys. Arithmetic is float32, summed in the same order as one element at a time.
constexpr int ATT_WARPS = 8;
constexpr int ATT_THREADS = ATT_WARPS * 32;
constexpr int ATT_QUERIES_PER_WARP = 2;
constexpr int ATT_TILE = ATT_WARPS * ATT_QUERIES_PER_WARP;
constexpr int ATT_MAX_KEYS = 128;
constexpr int ATT_KEYS_PER_LANE = ATT_MAX_KEYS / 32;

// A head's (<= 128) rows of one of q, k, v as 16-byte units, spread over the block's threads.
template <typename T, int D> struct HeadRows {
    static constexpr int VEC = 16 / sizeof(T);
    static constexpr int ROW_UNITS = D / VEC;
    static constexpr int UNITS = ATT_MAX_KEYS * ROW_UNITS / ATT_THREADS;
    uint4 r[UNITS];

    // `at` points at row 0's first element of this head's part; rows are `row` elements apart.
    __device__ __forceinline__ void load(const T* __restrict__ at, size_t row, unsigned rows) {
#pragma unroll
        for (int u = 0; u < UNITS; ++u) {
            const unsigned i = u * ATT_THREADS + threadIdx.x, j = i / ROW_UNITS, part = i % ROW_UNITS;
            if (j < rows) r[u] = *reinterpret_cast<const uint4*>(at + j * row + part * VEC);
        }
    }

    __device__ __forceinline__ void store(float* __restrict__ shared, int stride, unsigned rows) const {
#pragma unroll
        for (int u = 0; u < UNITS; ++u) {
            const unsigned i = u * ATT_THREADS + threadIdx.x, j = i / ROW_UNITS, part = i % ROW_UNITS;
            if (j < rows) {
                const T* e = reinterpret_cast<const T*>(&r[u]);
#pragma unroll
                for (int k = 0; k < VEC; ++k) shared[j * stride + part * VEC + k] = ::load(e + k);
            }
        }
    }
};

template <typename T, int D>
__device__ void fused_attention(const T* __restrict__ qkv, const T* __restrict__ bias, T* __restrict__ out,
                                unsigned seq, unsigned heads, float scale) {
    static_assert(D % 32 == 0 && D <= 128, "head size: a multiple of 32, at most 128");
    // Rows of K and V in shared memory are D + 4 floats apart: 16-byte aligned for the float4
    // reads below, and the 8 rows of a quarter warp's 16-byte reads (lane = key) start 4 banks
    // apart, so they hit all 32 banks once.
    constexpr int STRIDE = D + 4;
    constexpr int PER_LANE = D / 32;  // output features per lane, adjacent (lane * PER_LANE + c)
    constexpr int VEC = 16 / sizeof(T);
    constexpr int ROW_UNITS = D / VEC;
    // Half precision: V waits in registers (8 units a thread at D = 64) while K is used.
    constexpr bool PREFETCH_V = sizeof(T) == 2;
    __shared__ __align__(16) float kv[ATT_MAX_KEYS * STRIDE];
    __shared__ __align__(16) float q_tile[ATT_TILE][D];
    __shared__ __align__(16) float probs[ATT_TILE][ATT_MAX_KEYS];
    __shared__ float key_bias[ATT_MAX_KEYS];

    const unsigned tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const size_t row = (size_t)3 * heads * D;  // one position's fused q, k, v
    const T* base = qkv + (size_t)b * seq * row + (size_t)h * D;
    const unsigned first = tile * ATT_TILE;

    HeadRows<T, D> k_rows, v_rows;
    k_rows.load(base + heads * D, row, seq);
    if constexpr (PREFETCH_V) v_rows.load(base + 2 * heads * D, row, seq);
    uint4 q_unit = make_uint4(0, 0, 0, 0);
    const unsigned q_row = threadIdx.x / ROW_UNITS, q_part = threadIdx.x % ROW_UNITS;
    const bool q_loads = q_row < ATT_TILE && first + q_row < seq;
    if (q_loads) q_unit = *reinterpret_cast<const uint4*>(base + (first + q_row) * row + q_part * VEC);
    const float my_bias = threadIdx.x < seq ? load(bias + (size_t)b * seq + threadIdx.x) : 0.0f;

    k_rows.store(kv, STRIDE, seq);
    if (q_row < ATT_TILE) {
        const T* e = reinterpret_cast<const T*>(&q_unit);
#pragma unroll
        for (int k = 0; k < VEC; ++k) q_tile[q_row][q_part * VEC + k] = q_loads ? load(e + k) : 0.0f;
    }
    if (threadIdx.x < ATT_MAX_KEYS) key_bias[threadIdx.x] = my_bias;
    __syncthreads();

    float score[ATT_QUERIES_PER_WARP][ATT_KEYS_PER_LANE];
#pragma unroll
    for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q)
#pragma unroll
        for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) score[q][t] = 0.0f;
    const float* my_q = q_tile[warp * ATT_QUERIES_PER_WARP];
    // Four features per step, as 16-byte shared-memory reads (one instruction where four were),
    // accumulated in the same order as one feature at a time.
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
        float4 k[ATT_KEYS_PER_LANE];
#pragma unroll
        for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) {
            const unsigned j = lane + 32 * t;
            k[t] = j < seq ? *reinterpret_cast<const float4*>(&kv[j * STRIDE + d]) : make_float4(0, 0, 0, 0);
        }
#pragma unroll
        for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q) {
            const float4 x = *reinterpret_cast<const float4*>(&my_q[q * D + d]);
#pragma unroll
            for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) {
                score[q][t] = fmaf(x.x, k[t].x, score[q][t]);
                score[q][t] = fmaf(x.y, k[t].y, score[q][t]);
                score[q][t] = fmaf(x.z, k[t].z, score[q][t]);
                score[q][t] = fmaf(x.w, k[t].w, score[q][t]);
            }
        }
    }
    if constexpr (!PREFETCH_V) v_rows.load(base + 2 * heads * D, row, seq);
#pragma unroll
    for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q) {
        float top = -INFINITY;
#pragma unroll
        for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) {
            const unsigned j = lane + 32 * t;
            score[q][t] = j < seq ? score[q][t] * scale + key_bias[j] : -INFINITY;
            top = fmaxf(top, score[q][t]);
        }
        top = warp_max(top);
        float total = 0.0f;
#pragma unroll
        for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) {
            score[q][t] = lane + 32 * t < seq ? expf(score[q][t] - top) : 0.0f;
            total += score[q][t];
        }
        const float inverse = 1.0f / warp_sum(total);
#pragma unroll
        for (int t = 0; t < ATT_KEYS_PER_LANE; ++t) probs[warp * ATT_QUERIES_PER_WARP + q][lane + 32 * t] = score[q][t] * inverse;
    }
    __syncthreads();  // every warp is done with K
    v_rows.store(kv, STRIDE, seq);
    // The product below reads V four rows at a time: rows seq.. up to the next multiple of 4 are
    // zeros (their probabilities are 0, and 0 times what was left there could be NaN).
    const unsigned tail = (seq + 3) / 4 * 4;
    for (unsigned i = threadIdx.x; i < (tail - seq) * D; i += ATT_THREADS) kv[(seq + i / D) * STRIDE + i % D] = 0.0f;
    __syncthreads();

    float acc[ATT_QUERIES_PER_WARP][PER_LANE];
#pragma unroll
    for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q)
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) acc[q][c] = 0.0f;
    const float(*my_p)[ATT_MAX_KEYS] = probs + warp * ATT_QUERIES_PER_WARP;
    // Four keys per step: their probabilities as one 16-byte read per query, each key's V
    // features of this lane as one read (PER_LANE adjacent floats).
    for (unsigned j0 = 0; j0 < seq; j0 += 4) {
        float4 p[ATT_QUERIES_PER_WARP];
#pragma unroll
        for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q) p[q] = *reinterpret_cast<const float4*>(&my_p[q][j0]);
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) {
            float v[PER_LANE];
            const float* at = &kv[(j0 + jj) * STRIDE + lane * PER_LANE];
            if constexpr (PER_LANE == 2) {
                const float2 pair = *reinterpret_cast<const float2*>(at);
                v[0] = pair.x;
                v[1] = pair.y;
            } else {
#pragma unroll
                for (int c = 0; c < PER_LANE; ++c) v[c] = at[c];
            }
#pragma unroll
            for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q) {
                const float pj = jj == 0 ? p[q].x : jj == 1 ? p[q].y : jj == 2 ? p[q].z : p[q].w;
#pragma unroll
                for (int c = 0; c < PER_LANE; ++c) acc[q][c] = fmaf(pj, v[c], acc[q][c]);
            }
        }
    }
#pragma unroll
    for (int q = 0; q < ATT_QUERIES_PER_WARP; ++q) {
        const unsigned position = first + warp * ATT_QUERIES_PER_WARP + q;
        if (position >= seq) continue;
        T* o = out + ((size_t)b * seq + position) * heads * D + (size_t)h * D;
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) store(o + lane * PER_LANE + c, acc[q][c]);
    }
}

#define SOFTMAX(NAME, T, VEC, GROUP)                                                                 \
    extern "C" __global__ void masked_softmax_##NAME##_v##VEC##_g##GROUP(                          \
        T* scores, const T* bias, float scale, unsigned rows, unsigned cols, unsigned rows_per_batch, \
        unsigned half_window) {                                                                      \
        masked_softmax<T, VEC, GROUP>(scores, bias, scale, rows, cols, rows_per_batch, half_window); \
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
    extern "C" __global__ void gelu_erf_##NAME##_v##VEC(T* x, unsigned n) { gelu_erf<T, VEC>(x, n); } \
    extern "C" __global__ void geglu_erf_##NAME##_v##VEC(const T* x, T* out, unsigned rows, unsigned half) { \
        geglu<T, VEC, false>(x, out, rows, half);                                                    \
    }                                                                                                \
    extern "C" __global__ void geglu_tanh_##NAME##_v##VEC(const T* x, T* out, unsigned rows, unsigned half) { \
        geglu<T, VEC, true>(x, out, rows, half);                                                     \
    }

#define FUSED_ATTENTION(NAME, T, D)                                                                  \
    extern "C" __global__ void fused_attention_##NAME##_d##D(const T* qkv, const T* bias, T* out,     \
                                                              unsigned seq, unsigned heads, float scale) { \
        fused_attention<T, D>(qkv, bias, out, seq, heads, scale);                                    \
    }

#define FLOAT_OPS(NAME, T, WIDE)                                                                   \
    VEC_OPS(NAME, T, 1)                                                                              \
    VEC_OPS(NAME, T, WIDE)                                                                           \
    extern "C" __global__ void masked_softmax_long_##NAME(T* scores, const T* bias, float scale,     \
                                                          unsigned rows, unsigned cols,               \
                                                          unsigned rows_per_batch, unsigned half_window) { \
        masked_softmax_long<T>(scores, bias, scale, rows, cols, rows_per_batch, half_window);        \
    }                                                                                                \
    extern "C" __global__ void masked_mean_pool_##NAME(const T* hidden, const uint32_t* mask, float* out, \
                                                       unsigned seq, unsigned width) {                \
        masked_mean_pool<T>(hidden, mask, out, seq, width);                                          \
    }                                                                                                \
    extern "C" __global__ void padding_bias_##NAME(const uint32_t* mask, T* bias, unsigned n, float blocked) { \
        padding_bias<T>(mask, bias, n, blocked);                                                     \
    }                                                                                                \
    FUSED_ATTENTION(NAME, T, 32)                                                                     \
    FUSED_ATTENTION(NAME, T, 64)

// 16-byte vectors: 4 floats, 8 halves.
FLOAT_OPS(f32, float, 4)
FLOAT_OPS(f16, __half, 8)
FLOAT_OPS(bf16, __nv_bfloat16, 8)
