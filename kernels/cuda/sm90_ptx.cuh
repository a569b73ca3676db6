// Thin wrappers over the sm_90a PTX of the Hopper attention kernels: warpgroup tensor-core MMAs
// (wgmma) reading shared memory through matrix descriptors, tensor-memory-accelerator (TMA) tile
// loads, and the mbarriers through which a producer thread hands tiles to consumer warpgroups. Layouts are the PTX
// ISA's: a wgmma accumulator of 64 x N is, per warp of the warpgroup, 16 rows laid out exactly like
// N/8 mma.sync m16n8 accumulators (mma_ptx.cuh), and a register A operand of 64 x 16 is, per warp,
// one mma.sync m16n8k16 A fragment.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace tessera::cuda::sm90 {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Tiles of 16-bit values live in shared memory the way TMA's and wgmma's 128-byte swizzle mode
// store and read them: panels of 64 columns one after another, each row of a panel 128 bytes,
// 16-byte chunk c of row r stored at chunk c ^ (r % 8) so that the 8 rows of a chunk column fall
// in different banks. A panel starts on a 1024-byte boundary (the swizzle works on address bits).
constexpr int kPanelCols = 64;

// A descriptor of a 128-byte-swizzled operand starting at `start`: 8-row groups 1024 bytes
// apart. `panel_bytes` is the distance between 64-column panels, read only for operands whose
// contiguous (MN-major) dimension spans more than one panel.
__device__ __forceinline__ uint64_t descriptor(const void* start, uint32_t panel_bytes = 16) {
  return uint64_t((smem_address(start) & 0x3FFFF) >> 4) | uint64_t((panel_bytes >> 4) & 0x3FFF) << 16 |
         uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}

// Orders this thread's earlier register writes (accumulators, A fragments) before the wgmmas
// that follow; required before the first wgmma of a batch.
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Keeps the compiler from moving reads or writes of v across the asynchronous wgmmas.
__device__ __forceinline__ void pin(float& v) { asm volatile("" : "+f"(v)::"memory"); }
__device__ __forceinline__ void pin(uint32_t& v) { asm volatile("" : "+r"(v)::"memory"); }
// Tells the compiler that v's value is dead from here (as a product that overwrites it will be):
// an accumulator array that carries a product from one loop iteration into the next would
// otherwise stay live, holding its registers, through the whole iteration.
__device__ __forceinline__ void forget(float& v) { asm volatile("" : "=f"(v)); }

#define TS_WGMMA_D4(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define TS_WGMMA_D32(i)                                                                                     \
  TS_WGMMA_D4(i), TS_WGMMA_D4(i + 4), TS_WGMMA_D4(i + 8), TS_WGMMA_D4(i + 12), TS_WGMMA_D4(i + 16), \
      TS_WGMMA_D4(i + 20), TS_WGMMA_D4(i + 24), TS_WGMMA_D4(i + 28)
#define TS_WGMMA_LIST32                                                                                       \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define TS_WGMMA_LIST64                                                                                       \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "    \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
// d (+)= A B with A and B read through descriptors; operands after the accumulators: a, b, accumulate, trans a, trans b.
#define TS_WGMMA_SS(SHAPE, TYPE, LIST, A, B, ACC, TA, TB)                                               \
  "{\n.reg .pred p;\nsetp.ne.b32 p, " ACC ", 0;\nwgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE \
  " " LIST ", " A ", " B ", p, 1, 1, " TA ", " TB ";\n}\n"
// d (+)= A B with A in four registers per thread and B read through a descriptor.
#define TS_WGMMA_RS(SHAPE, TYPE, LIST, A0, B, ACC, TB)                                                   \
  "{\n.reg .pred p;\nsetp.ne.b32 p, " ACC ", 0;\nwgmma.mma_async.sync.aligned." SHAPE ".f32." TYPE "." TYPE \
  " " LIST ", " A0 ", " B ", p, 1, 1, " TB ";\n}\n"

// d (+)= A B for a 64 x kN x 16 product, A (64 x 16) and B (16 x kN) in shared memory. Without
// kTrans, A is stored row-major (K contiguous) and B as its transpose [kN][16] (K contiguous);
// with kTrans the operand is stored with its M/N dimension contiguous. `accumulate` false
// overwrites d.
template <typename T, int kN, int kTransA = 0, int kTransB = 0>
__device__ __forceinline__ void mma_ss(float (&d)[kN / 2], uint64_t a, uint64_t b, bool accumulate) {
  static_assert(kN == 64 || kN == 128, "wgmma wrappers exist for N = 64 and 128");
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  static_assert(kBf16 || std::is_same_v<T, __half>, "wgmma takes bf16 or f16");
  const int acc = accumulate;
  if constexpr (kN == 64 && kBf16) {
    asm volatile(TS_WGMMA_SS("m64n64k16", "bf16", TS_WGMMA_LIST32, "%32", "%33", "%34", "%35", "%36")
                 : TS_WGMMA_D32(0)
                 : "l"(a), "l"(b), "r"(acc), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kN == 64) {
    asm volatile(TS_WGMMA_SS("m64n64k16", "f16", TS_WGMMA_LIST32, "%32", "%33", "%34", "%35", "%36")
                 : TS_WGMMA_D32(0)
                 : "l"(a), "l"(b), "r"(acc), "n"(kTransA), "n"(kTransB));
  } else if constexpr (kBf16) {
    asm volatile(TS_WGMMA_SS("m64n128k16", "bf16", TS_WGMMA_LIST64, "%64", "%65", "%66", "%67", "%68")
                 : TS_WGMMA_D32(0), TS_WGMMA_D32(32)
                 : "l"(a), "l"(b), "r"(acc), "n"(kTransA), "n"(kTransB));
  } else {
    asm volatile(TS_WGMMA_SS("m64n128k16", "f16", TS_WGMMA_LIST64, "%64", "%65", "%66", "%67", "%68")
                 : TS_WGMMA_D32(0), TS_WGMMA_D32(32)
                 : "l"(a), "l"(b), "r"(acc), "n"(kTransA), "n"(kTransB));
  }
}

// d (+)= A B for a 64 x kN x 16 product, A from registers (this warp's 16 x 16 fragment, the
// mma.sync A layout) and B in shared memory as for mma_ss.
template <typename T, int kN, int kTransB = 0>
__device__ __forceinline__ void mma_rs(float (&d)[kN / 2], const uint32_t (&a)[4], uint64_t b, bool accumulate) {
  static_assert(kN == 64 || kN == 128, "wgmma wrappers exist for N = 64 and 128");
  constexpr bool kBf16 = std::is_same_v<T, __nv_bfloat16>;
  static_assert(kBf16 || std::is_same_v<T, __half>, "wgmma takes bf16 or f16");
  const int acc = accumulate;
  if constexpr (kN == 64 && kBf16) {
    asm volatile(TS_WGMMA_RS("m64n64k16", "bf16", TS_WGMMA_LIST32, "{%32, %33, %34, %35}", "%36", "%37", "%38")
                 : TS_WGMMA_D32(0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc), "n"(kTransB));
  } else if constexpr (kN == 64) {
    asm volatile(TS_WGMMA_RS("m64n64k16", "f16", TS_WGMMA_LIST32, "{%32, %33, %34, %35}", "%36", "%37", "%38")
                 : TS_WGMMA_D32(0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc), "n"(kTransB));
  } else if constexpr (kBf16) {
    asm volatile(TS_WGMMA_RS("m64n128k16", "bf16", TS_WGMMA_LIST64, "{%64, %65, %66, %67}", "%68", "%69", "%70")
                 : TS_WGMMA_D32(0), TS_WGMMA_D32(32)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc), "n"(kTransB));
  } else {
    asm volatile(TS_WGMMA_RS("m64n128k16", "f16", TS_WGMMA_LIST64, "{%64, %65, %66, %67}", "%68", "%69", "%70")
                 : TS_WGMMA_D32(0), TS_WGMMA_D32(32)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(acc), "n"(kTransB));
  }
}

#undef TS_WGMMA_D4
#undef TS_WGMMA_D32
#undef TS_WGMMA_LIST32
#undef TS_WGMMA_LIST64
#undef TS_WGMMA_SS
#undef TS_WGMMA_RS

// Makes this thread's ordinary stores to shared memory visible to the async proxy through which
// wgmma reads its operands (needed before a wgmma reads data the threads wrote).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Sets this warpgroup's register budget per thread (raising it takes registers freed by another
// warpgroup's lowering); all threads of the warpgroup execute it.
template <int kRegisters, bool kIncrease>
__device__ __forceinline__ void set_max_registers() {
  if constexpr (kIncrease)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
  else
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}

// An mbarrier in shared memory: a phase completes when `count` threads have arrived.
__device__ __forceinline__ void barrier_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint64_t* bar) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smem_address(bar))
               : "memory");
}
// Arrives and tells the barrier to expect `bytes` more from TMA loads before the phase completes.
__device__ __forceinline__ void barrier_arrive_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes)
               : "memory");
}
// Waits until the phase with this parity (0 for the first, 1 for the second, ...) has completed.
__device__ __forceinline__ void barrier_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n@!done bra WAIT;\n}\n" ::"r"(
          smem_address(bar)),
      "r"(parity)
      : "memory");
}

// Loads the box at coordinates (c0 innermost .. c3) of a 4-D tensor map into shared memory; the
// bytes count towards `bar`'s expected transaction bytes. `map` is a __grid_constant__ parameter.
__device__ __forceinline__ void tma_load_4d(void* dst, const void* map, int c0, int c1, int c2, int c3,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(smem_address(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_address(bar))
      : "memory");
}

// Adds the box at `src` in shared memory into the box at coordinates (c0 innermost .. c3) of a
// 4-D tensor map, element by element in the map's type, as one asynchronous bulk operation of
// this thread's current bulk group. The threads that wrote `src` must have run
// fence_proxy_async() and synchronised with this one first.
__device__ __forceinline__ void tma_reduce_add_4d(const void* map, const void* src, int c0, int c1, int c2, int c3) {
  asm volatile(
      "cp.reduce.async.bulk.tensor.4d.global.shared::cta.add.tile.bulk_group [%0, {%1, %2, %3, %4}], [%5];\n" ::"l"(
          reinterpret_cast<uint64_t>(map)),
      "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_address(src))
      : "memory");
}
// Closes this thread's current bulk group.
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
// Waits until at most kPending of this thread's bulk groups are still reading shared memory
// (their sources may then be overwritten).
template <int kPending>
__device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(kPending) : "memory");
}
// Waits until at most kPending of this thread's bulk groups are still running.
template <int kPending>
__device__ __forceinline__ void bulk_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace tessera::cuda::sm90
