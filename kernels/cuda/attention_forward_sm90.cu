// Tensor-core attention forward for Hopper (sm_90a), FlashAttention-3 style: a CTA takes 128
// queries of one head. One producer thread loads Q once and then the K/V tiles of 128 keys with TMA
// into a two-stage ring; two consumer warpgroups of 64 queries each compute S = Q K^T with wgmma
// from shared memory, run the mask and the online softmax on the accumulators in registers, and
// accumulate O += P V with P taken straight from registers. mbarriers hand each stage from the
// producer to the consumers and back, so the warpgroups are not in lockstep: one's softmax runs
// while the other's products keep the tensor cores busy. In the persistent form a CTA stays on its
// SM and takes query blocks in turn, its producer loading the next block while this one finishes.
#include <algorithm>

#include "kernels/cuda/attention_softmax.cuh"
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/sm90_ptx.cuh"
#include "kernels/cuda/tma_map.h"

namespace tessera::cuda::attn {

namespace {

constexpr int kRowsPerGroup = 64;  // query rows of one consumer warpgroup (the wgmma M)
constexpr int kGroups = 2;
constexpr int kBlockM = kGroups * kRowsPerGroup;  // queries per CTA
constexpr int kBlockN = 128;                      // keys per tile
constexpr int kSubTiles = kBlockN / kTile;        // the 64-row tiles of Params' segment ranges in one
static_assert(kBlockM == kBlockRows, "heaviest_first orders blocks of kBlockRows queries");
constexpr int kStages = 2;
constexpr int kConsumerThreads = kGroups * 128;
constexpr int kThreads = kConsumerThreads + 128;  // plus the producer warpgroup
// Registers per thread, moved from the producer (which needs few) to the consumers: 128 x 40 +
// 256 x 232 fits the 64K of an SM.
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;

struct Maps {
  CUtensorMap q, k, v;
};

template <int kD, bool kPersistent>
struct Smem {
  static constexpr int kQStages = kPersistent ? 2 : 1;  // the next block's Q loads during this one's
  static constexpr uint32_t kQBytes = kBlockM * kD * 2;
  static constexpr uint32_t kKvBytes = kBlockN * kD * 2;  // one K or V tile
  static constexpr uint32_t kKv = kQStages * kQBytes;
  static constexpr uint32_t kBarriers = kKv + 2 * kStages * kKvBytes;
  static constexpr size_t kBytes = kBarriers + (2 * kStages + 2 * kQStages) * sizeof(uint64_t) + 1024;  // + alignment slack
};

// True when segment ids rule out every pair of this CTA's queries and the keys of key tile kb
// (Params::tiles_disjoint works on 64-row tiles).
__device__ bool key_tile_disjoint(const Params& p, int64_t b, int64_t q0, int64_t last_row, int64_t kb) {
  const int64_t tiles = (p.s + kTile - 1) / kTile;
  for (int64_t sub = kb * kSubTiles; sub < min((kb + 1) * kSubTiles, tiles); ++sub)
    if (!p.tiles_disjoint(b, q0 / kTile, last_row / kTile, sub)) return false;
  return true;
}

// A block of kBlockM queries of one head and the key tiles it visits: [first_tile, key_tiles).
struct QueryBlock {
  int64_t h, b, q0, last_row, key_tiles, first_tile;
  bool compare_ids;  // kBounds where the row's ids decrease: every tile, ids compared
};

// kEarlySegmentTest, kSkipLoads, kOverlap, kBounds, kPersistent and heavy_first: see the forward
// variants in attention_common.cuh (kOverlap comes only with the first two, kBounds only with the
// first, kPersistent only with kBounds).
template <typename T, int kD, bool kEarlySegmentTest, bool kSkipLoads, bool kOverlap, bool kBounds, bool kPersistent>
__global__ void __launch_bounds__(kThreads, 1) forward_kernel(const __grid_constant__ Maps maps, const Params p,
                                                              bool heavy_first) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __trap();  // compiled for another architecture; sm90_supports() keeps launches away
#else
  using L = Smem<kD, kPersistent>;
  constexpr int kPanels = kD / sm90::kPanelCols, kQStages = L::kQStages;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  auto q_tile = [&](int stage) { return reinterpret_cast<T*>(smem + stage * L::kQBytes); };
  auto k_tile = [&](int stage) { return reinterpret_cast<T*>(smem + L::kKv + stage * L::kKvBytes); };
  auto v_tile = [&](int stage) { return reinterpret_cast<T*>(smem + L::kKv + (kStages + stage) * L::kKvBytes); };
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L::kBarriers);  // tile landed
  uint64_t* empty = full + kStages;                                     // consumers done with it
  uint64_t* q_full = empty + kStages;
  uint64_t* q_empty = q_full + kQStages;  // kPersistent: the consumers' last S = Q K^T of a block done

  // Work items: the query blocks of every head and batch row, heaviest first. A CTA takes the one
  // of its index, or with kPersistent (a CTA per SM) every gridDim.x-th from its index on.
  const WorkGrid items{(p.s + kBlockM - 1) / kBlockM, p.hq, p.b};
  const int64_t total = items.blocks * items.heads * items.batch;
  const int64_t first_item = kPersistent ? int64_t(blockIdx.x) : cta_index();
  const int64_t item_step = kPersistent ? int64_t(gridDim.x) : total;
  auto query_block = [&](int64_t item) {
    BlockWork w;
    if (kBounds && p.order) {
      w = ordered_work(p.order, item, items);
    } else {
      const CtaWork c = cta_work(heavy_first, item, items);
      w = {items.blocks - 1 - c.rank, c.head, c.batch};
    }
    QueryBlock qb{.h = w.head, .b = w.batch, .q0 = w.block * kBlockM};
    qb.last_row = min(qb.q0 + kBlockM, p.s) - 1;
    qb.key_tiles = qb.last_row / kBlockN + 1;
    // kBounds: no query here sees a key before the document start of the first (ids do not
    // decrease, so later rows start no earlier); where they decrease (-1) every tile is visited.
    const int32_t doc_start = kBounds ? p.doc_first(qb.b, qb.q0) : 0;
    qb.compare_ids = kBounds && p.segments && (doc_start < 0 || !p.doc_bounds);
    qb.first_tile = kBounds && !qb.compare_ids ? doc_start / kBlockN : 0;
    return qb;
  };
  // The key tile after kb that block qb works on. With kSkipLoads, tiles whose documents no query
  // there shares are neither loaded nor waited for; without, every tile up to the diagonal comes
  // through the ring and the consumers pass over the disjoint ones. With kBounds, the tiles from
  // first_tile on.
  auto next_tile = [&](const QueryBlock& qb, int64_t kb) -> int64_t {
    if constexpr (kBounds) {
      return max(kb + 1, qb.first_tile);
    } else {
      do ++kb;
      while (kSkipLoads && kb < qb.key_tiles && key_tile_disjoint(p, qb.b, qb.q0, qb.last_row, kb));
      return kb;
    }
  };
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      sm90::barrier_init(&full[s], 1);
      sm90::barrier_init(&empty[s], kConsumerThreads);
    }
    for (int s = 0; s < kQStages; ++s) {
      sm90::barrier_init(&q_full[s], 1);
      sm90::barrier_init(&q_empty[s], kConsumerThreads);
    }
  }
  __syncthreads();

  if (threadIdx.x >= kConsumerThreads) {  // the producer
    sm90::set_max_registers<kProducerRegisters, false>();
    if (threadIdx.x != kConsumerThreads) return;
    int64_t n = 0, u = 0;  // tiles and query blocks loaded so far
    for (int64_t item = first_item; item < total; item += item_step, ++u) {
      const QueryBlock qb = query_block(item);
      const int kvh = int(qb.h / p.group), qs = u % kQStages;
      if (u >= kQStages) sm90::barrier_wait(&q_empty[qs], (u / kQStages + 1) % 2);
      sm90::barrier_arrive_expect(&q_full[qs], L::kQBytes);
      for (int panel = 0; panel < kPanels; ++panel)
        sm90::tma_load_4d(q_tile(qs) + panel * kBlockM * sm90::kPanelCols, &maps.q, panel * sm90::kPanelCols,
                          int(qb.h), int(qb.q0), int(qb.b), &q_full[qs]);
      for (int64_t kb = next_tile(qb, -1); kb < qb.key_tiles; kb = next_tile(qb, kb), ++n) {
        const int stage = n % kStages;
        if (n >= kStages) sm90::barrier_wait(&empty[stage], (n / kStages + 1) % 2);
        sm90::barrier_arrive_expect(&full[stage], 2 * L::kKvBytes);
        for (int panel = 0; panel < kPanels; ++panel) {
          const int col = panel * sm90::kPanelCols, row = int(kb * kBlockN);
          sm90::tma_load_4d(k_tile(stage) + panel * kBlockN * sm90::kPanelCols, &maps.k, col, kvh, row, int(qb.b),
                            &full[stage]);
          sm90::tma_load_4d(v_tile(stage) + panel * kBlockN * sm90::kPanelCols, &maps.v, col, kvh, row, int(qb.b),
                            &full[stage]);
        }
      }
    }
    return;
  }

  sm90::set_max_registers<kConsumerRegisters, true>();
  const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, g = (threadIdx.x % 32) / 4;
  constexpr int kKeyBlocks = kBlockN / 8, kDimBlocks = kD / 8;
  int64_t n = 0, u = 0;  // tiles and query blocks received so far
  for (int64_t item = first_item; item < total; item += item_step, ++u) {
    const QueryBlock qb = query_block(item);
    const int64_t b = qb.b, q0 = qb.q0, last_row = qb.last_row, key_tiles = qb.key_tiles;
    const int64_t warp_row0 = q0 + group * kRowsPerGroup + warp * 16;
    int64_t rows[2];
    int32_t seg_rows[2], row_first[2];  // row_first: kBounds, the document start of each row
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[r] = warp_row0 + g + 8 * r;
      seg_rows[r] = rows[r] < p.s ? p.segment(b, rows[r]) : 0;
      row_first[r] = kBounds && !qb.compare_ids && rows[r] < p.s ? p.doc_first(b, rows[r]) : 0;
    }
    const int32_t lane_first = max(row_first[0], row_first[1]);
    RowSoftmax<kKeyBlocks> softmax{.scale2 = p.scale * kLog2e};
    float o[kDimBlocks][4] = {};
    auto& o_flat = reinterpret_cast<float(&)[kD / 2]>(o);
    const int qs = u % kQStages;
    const T* q_group = q_tile(qs) + group * kRowsPerGroup * sm90::kPanelCols;

    // S = Q K^T for the tile in `stage`, 16 head dims per step (a step's 16 columns sit at byte
    // 32 * step of a panel row); issued, not waited for.
    auto issue_scores = [&](float(&s_flat)[kBlockN / 2], int stage) {
      sm90::fence();
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        const int panel = kk / 4, col = (kk % 4) * 16;
        sm90::mma_ss<T, kBlockN>(s_flat, sm90::descriptor(q_group + panel * kBlockM * sm90::kPanelCols + col),
                                 sm90::descriptor(k_tile(stage) + panel * kBlockN * sm90::kPanelCols + col), kk > 0);
      }
      sm90::commit();
    };
    // O += P V for the tile in `stage`, 16 keys per step: V is the B operand with its N (head dim)
    // contiguous, 16 rows of 128 bytes per step, panels kBlockN rows apart; issued, not waited for.
    auto issue_values = [&](const uint32_t(&pa)[kBlockN / 16][4], int stage) {
      sm90::fence();
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks)
        sm90::mma_rs<T, kD, 1>(o_flat, pa[ks],
                               sm90::descriptor(v_tile(stage) + ks * 16 * sm90::kPanelCols, kBlockN * 128), true);
      sm90::commit();
    };
    // After the wait for O += P V: keeps the compiler from touching o or reusing pa's registers earlier.
    auto pin_values = [&](uint32_t(&pa)[kBlockN / 16][4]) {
#pragma unroll
      for (int ks = 0; ks < kBlockN / 16; ++ks)
#pragma unroll
        for (int i = 0; i < 4; ++i) sm90::pin(pa[ks][i]);
#pragma unroll
      for (int i = 0; i < kD / 2; ++i) sm90::pin(o_flat[i]);
    };
    // Only tiles across a document boundary need the segment test.
    auto across_documents = [&](int64_t kb) {
      return !p.one_segment(b, q0 / kTile, last_row / kTile, kb * kSubTiles, kb * kSubTiles + kSubTiles - 1);
    };
    // The tile's scores, masked where needed (only the diagonal tile reaches past a warp's first
    // row and holds the keys past the end), become probabilities; alpha as RowSoftmax::update says.
    auto probabilities = [&](float(&s)[kKeyBlocks][4], int64_t kb, bool by_segment, float(&alpha)[2]) {
      if (by_segment || kb * kBlockN + kBlockN - 1 > warp_row0)
        mask_scores(s, p, b, kb * kBlockN, rows, seg_rows, by_segment);
      if (kBounds && kb * kBlockN < lane_first) mask_before_documents(s, kb * kBlockN, row_first);
      softmax.update(s, alpha);
    };

    sm90::barrier_wait(&q_full[qs], (u / kQStages) % 2);
    if constexpr (kOverlap) {
      static_assert(kSkipLoads && kEarlySegmentTest, "the overlapped loop receives only tiles it works on");
      // Tile kb's S = Q K^T is issued before the previous tile's O += P V, whose stage stays held
      // until then, so that the softmax of kb runs while the tensor cores work on that product.
      uint32_t pa[kBlockN / 16][4];
      int pending_stage = -1;  // the stage of the tile whose O += P V waits to be issued
      for (int64_t kb = next_tile(qb, -1); kb < key_tiles; kb = next_tile(qb, kb), ++n) {
        const int stage = n % kStages;
        sm90::barrier_wait(&full[stage], (n / kStages) % 2);
        const bool by_segment = p.segments != nullptr && across_documents(kb);
        float s[kKeyBlocks][4];
        auto& s_flat = reinterpret_cast<float(&)[kBlockN / 2]>(s);
        float alpha[2];
        // Each branch ends with no product in flight: ptxas serialises every wgmma of the kernel
        // when it cannot prove that on every path.
        if (pending_stage < 0) {
          issue_scores(s_flat, stage);
          sm90::wait<0>();
#pragma unroll
          for (int i = 0; i < kBlockN / 2; ++i) sm90::pin(s_flat[i]);
          probabilities(s, kb, by_segment, alpha);
        } else {
          issue_scores(s_flat, stage);
          issue_values(pa, pending_stage);
          sm90::wait<1>();  // the scores; the older group
#pragma unroll
          for (int i = 0; i < kBlockN / 2; ++i) sm90::pin(s_flat[i]);
          probabilities(s, kb, by_segment, alpha);
          sm90::wait<0>();
          pin_values(pa);
          sm90::barrier_arrive(&empty[pending_stage]);
        }
        rescale(o, alpha);
#pragma unroll
        for (int ks = 0; ks < kBlockN / 16; ++ks) accumulators_as_a<T>(pa[ks], s, ks);
        pending_stage = stage;
      }
      if (pending_stage >= 0) {
        issue_values(pa, pending_stage);
        sm90::wait<0>();
        pin_values(pa);
        sm90::barrier_arrive(&empty[pending_stage]);
      }
    } else {
      for (int64_t kb = next_tile(qb, -1); kb < key_tiles; kb = next_tile(qb, kb), ++n) {
        const int stage = n % kStages;
        sm90::barrier_wait(&full[stage], (n / kStages) % 2);
        if (kSkipLoads || kBounds || !key_tile_disjoint(p, b, q0, last_row, kb)) {
          bool by_segment = false;
          if constexpr (kBounds)
            by_segment = qb.compare_ids;
          else if constexpr (kEarlySegmentTest)
            by_segment = p.segments != nullptr && across_documents(kb);
          float s[kKeyBlocks][4];
          auto& s_flat = reinterpret_cast<float(&)[kBlockN / 2]>(s);
          issue_scores(s_flat, stage);
          sm90::wait<0>();
#pragma unroll
          for (int i = 0; i < kBlockN / 2; ++i) sm90::pin(s_flat[i]);
          if constexpr (!kEarlySegmentTest) by_segment = across_documents(kb);
          float alpha[2];
          probabilities(s, kb, by_segment, alpha);
          rescale(o, alpha);
          uint32_t pa[kBlockN / 16][4];
#pragma unroll
          for (int ks = 0; ks < kBlockN / 16; ++ks) accumulators_as_a<T>(pa[ks], s, ks);
          issue_values(pa, stage);
          sm90::wait<0>();
          pin_values(pa);
        }
        sm90::barrier_arrive(&empty[stage]);
      }
    }
    if constexpr (kPersistent) sm90::barrier_arrive(&q_empty[qs]);  // every S = Q K^T of the block is done
    softmax.template store<T>(o, p, b, qb.h, rows);
  }
#endif
}

// The SMs of the current device: the persistent grid's CTAs.
int sm_count() {
  int device = 0, count = 0;
  TS_CUDA_CHECK(cudaGetDevice(&device));
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

template <typename T, int kD, bool kEarlySegmentTest, bool kSkipLoads, bool kOverlap, bool kBounds = false,
          bool kPersistent = false>
void launch(const Params& p, DType dtype, cudaStream_t stream, bool heavy_first) {
  constexpr size_t smem = Smem<kD, kPersistent>::kBytes;
  static_assert(smem <= 227 * 1024, "the forward's shared memory exceeds an SM's 227 KiB");
  const Maps maps{.q = head_rows_map(p.q, dtype, p.b, p.s, p.hq, kD, kBlockM),
                  .k = head_rows_map(p.k, dtype, p.b, p.s, p.hkv, kD, kBlockN),
                  .v = head_rows_map(p.v, dtype, p.b, p.s, p.hkv, kD, kBlockN)};
  auto* kernel = forward_kernel<T, kD, kEarlySegmentTest, kSkipLoads, kOverlap, kBounds, kPersistent>;
  TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int64_t blocks = (p.s + kBlockM - 1) / kBlockM;
  const dim3 grid = kPersistent ? dim3(unsigned(std::min<int64_t>(blocks * p.hq * p.b, sm_count())))
                                : dim3(unsigned(blocks), unsigned(p.hq), unsigned(p.b));
  kernel<<<grid, kThreads, smem, stream>>>(maps, p, heavy_first);
  check_launch();
}

}  // namespace

bool sm90_supports(int64_t head_dim) {
#if defined(TESSERA_SM90A)
  if (head_dim != 64 && head_dim != 128) return false;
  int device = 0, major = 0;
  TS_CUDA_CHECK(cudaGetDevice(&device));
  TS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major == 9;
#else
  return false;
#endif
}

void sm90_forward(const Params& p, DType dtype, cudaStream_t stream, int variant) {
  dispatch_sm90(dtype, p.d, [&](auto* tag, auto dim) {
    using T = std::remove_pointer_t<decltype(tag)>;
    constexpr int kD = decltype(dim)::value;
    if (variant == 1)
      launch<T, kD, false, false, false>(p, dtype, stream, false);
    else if (variant <= 3)
      launch<T, kD, true, false, false>(p, dtype, stream, variant == 3);
    else if (variant == 4)
      launch<T, kD, true, true, false>(p, dtype, stream, true);
    else if (variant == 5)
      launch<T, kD, true, true, true>(p, dtype, stream, true);
    else if (variant == 6)
      launch<T, kD, true, false, false, true>(p, dtype, stream, true);
    else
      launch<T, kD, true, false, false, true, true>(p, dtype, stream, true);
  });
}

}  // namespace tessera::cuda::attn
