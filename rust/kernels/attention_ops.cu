// Attention kernels for the encoder forward on CUDA (compiled to PTX by build.rs, loaded by
// rust/src/model/cuda_ops/attention.rs and attention_gemm.rs); the other fused kernels are in
// encoder_ops.cu (why they exist: the header there).
//   split_heads    fused QKV (batch, seq, 3, heads, dim) -> (3, batch, heads, seq, dim)
//   merge_heads    attention context (batch, heads, seq, dim) -> (batch, seq, heads * dim)
//   attention_pointers  per-(text, head) operand pointers for cuBLAS's batched products, which
//                  replace both permutes for batches
//   masked_softmax scale + padding bias (+ ModernBERT's sliding window) + softmax, in place on
//                  the scores (was 3 kernels and a broadcast of the mask to every head and query)
//   fused_attention   short sequences (<= 128 keys): QKV split, q k^T, scale + padding bias +
//                  softmax, p v and the head merge in one launch (was 5 launches per layer and
//                  two round trips of the scores through memory; at batch 1 a layer's attention
//                  is latency and launch bound, not arithmetic bound)

#include "common.cuh"

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

#define SOFTMAXES(NAME, T, VEC)                                                                      \
    SOFTMAX(NAME, T, VEC, 8)                                                                         \
    SOFTMAX(NAME, T, VEC, 16)                                                                        \
    SOFTMAX(NAME, T, VEC, 32)

#define FUSED_ATTENTION(NAME, T, D)                                                                  \
    extern "C" __global__ void fused_attention_##NAME##_d##D(const T* qkv, const T* bias, T* out,     \
                                                              unsigned seq, unsigned heads, float scale) { \
        fused_attention<T, D>(qkv, bias, out, seq, heads, scale);                                    \
    }

#define ATTENTION_OPS(NAME, T, WIDE)                                                                 \
    SOFTMAXES(NAME, T, 1)                                                                            \
    SOFTMAXES(NAME, T, WIDE)                                                                         \
    extern "C" __global__ void masked_softmax_long_##NAME(T* scores, const T* bias, float scale,     \
                                                          unsigned rows, unsigned cols,               \
                                                          unsigned rows_per_batch, unsigned half_window) { \
        masked_softmax_long<T>(scores, bias, scale, rows, cols, rows_per_batch, half_window);        \
    }                                                                                                \
    FUSED_ATTENTION(NAME, T, 32)                                                                     \
    FUSED_ATTENTION(NAME, T, 64)

// 16-byte vectors: 4 floats, 8 halves.
ATTENTION_OPS(f32, float, 4)
ATTENTION_OPS(f16, __half, 8)
ATTENTION_OPS(bf16, __nv_bfloat16, 8)
