// What the kernel files (encoder_ops.cu, attention_ops.cu) share: storage-type loads and stores
// (arithmetic is float32 whatever the storage type, as in candle's own kernels), warp
// reductions, grid-stride indexing and packed vector access.
#pragma once

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
