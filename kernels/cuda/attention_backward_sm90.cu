// Tensor-core attention backward for Hopper (sm_90a), FlashAttention-3 style: a CTA owns 128
// keys of one kv head, two consumer warpgroups of 64 keys each, and walks every (query head of the
// group, query tile at or after the diagonal) pair. A producer thread loads K and V once and
// each pair's Q and dO with TMA into a ring of two or three stages. Per pair a warpgroup computes
// with wgmma
//   S^T = K Q^T and dP^T = V dO^T            (both operands from shared memory),
//   P^T = exp(scale S^T - lse), dS^T = P^T (dP^T - delta)   (on the accumulators),
//   dV += P^T dO and dK += dS^T Q             (P^T, dS^T straight from registers),
// then both warpgroups write dS^T to shared memory, and dQ = scale dS K over all 128 keys is added
// into an fp32 buffer, each warpgroup taking a 64 x 64 block of it (by atomics, or as whole tiles
// through TMA: DqAdd).
#include "kernels/cuda/attention_tiles.cuh"
#include "kernels/cuda/sm90_ptx.cuh"
#include "kernels/cuda/tma_map.h"

namespace tessera::cuda::attn {

namespace {

constexpr int kKeysPerGroup = 64;  // keys of one consumer warpgroup (the wgmma M)
constexpr int kGroups = 2;
constexpr int kBlockN = kGroups * kKeysPerGroup;  // keys per CTA
static_assert(kBlockN == kBlockRows, "heaviest_first orders blocks of kBlockRows keys");
// Queries per work item: 128 at head dim 64 (twice the work between synchronisations, and the
// wgmmas run at N = 128), 64 at 128, where dK and dV already take 128 registers per thread.
template <int kD>
constexpr int kBlockM = kD == 64 ? 128 : 64;
// How a warpgroup's 64 x 64 block of dQ goes into the fp32 buffer: atomics of two or four values,
// or (Tiles) written to shared memory and added as whole tiles by TMA. With OwnTiles each
// warpgroup adds, as tiles, the dQ of its own 64 keys for all the item's queries (two 64 x 64
// blocks): twice the additions, but the warpgroups never wait for each other's dS.
enum class DqAdd { Pairs, Quads, Tiles, OwnTiles };
template <DqAdd kAdd>
constexpr bool kDqTiles = kAdd == DqAdd::Tiles || kAdd == DqAdd::OwnTiles;
template <DqAdd kAdd>
constexpr int kDqBlocks = kAdd == DqAdd::OwnTiles ? 2 : 1;  // 64 x 64 dQ blocks per warpgroup
// Key rows of one warpgroup's dS^T buffer: all the block's keys, or with OwnTiles its own.
template <DqAdd kAdd>
constexpr int kDsRows = kAdd == DqAdd::OwnTiles ? kKeysPerGroup : kBlockN;
// Stages of the Q/dO ring: three at head dim 64, where shared memory has room (not with the dQ
// tiles).
template <int kD, DqAdd kAdd>
constexpr int kStages = kD == 64 && !kDqTiles<kAdd> ? 3 : 2;
constexpr int kConsumerThreads = kGroups * 128;
constexpr int kThreads = kConsumerThreads + 128;  // plus the producer warpgroup
constexpr int kProducerRegisters = 40, kConsumerRegisters = 232;
constexpr int kDsReadyBarrier = 1;  // named barrier of the consumer threads
constexpr int kGroupBarrier = 2;    // named barriers 2, 3: one per consumer warpgroup
constexpr int kDqCols = 64;         // dQ columns of a warpgroup's block (and its rows)
constexpr int kDqBoxCols = 32;      // fp32 columns of one 128-byte-swizzled TMA box
// The consumer warpgroups' code, each step adding to the one before. Plain: P^T through the mask
// arithmetic in every item; dV and dK issued together once dS^T is packed, then dQ, all waited
// for before dQ goes into its buffer. FastP: items that need no mask take P^T = exp2 alone, and
// the row statistics in pairs. DvDq: dV issued as soon as P^T is packed (dS^T's arithmetic runs
// under it) and dK after dQ (dQ's way into the buffer runs under dK). NextS: the next item's S^T
// issued before that way, so that the tensor cores have it while dQ is stored and the warpgroups
// meet at the barriers.
enum class Consumer { Plain, FastP, DvDq, NextS };

struct Maps {
  CUtensorMap q, dout, k, v, dq_accum;  // dq_accum only with tiles of dQ (kDqTiles)
};

template <int kD, DqAdd kAdd>
struct Smem {
  static constexpr int kM = kBlockM<kD>, kS = kStages<kD, kAdd>;
  static constexpr uint32_t kKvBytes = kBlockN * kD * 2;  // K or V
  static constexpr uint32_t kQBytes = kM * kD * 2;        // Q or dO of one stage
  static constexpr uint32_t kDs = 2 * kKvBytes + 2 * kS * kQBytes;
  // after two dS^T [keys][queries] (one per item parity, or with OwnTiles one per warpgroup)
  static constexpr uint32_t kDq = kDs + 2 * kDsRows<kAdd> * kM * 2;
  static constexpr uint32_t kDqBytes = kDqBlocks<kAdd> * kDqCols * kDqCols * 4;  // a warpgroup's fp32 dQ
  static constexpr uint32_t kRowStats = kDq + (kDqTiles<kAdd> ? kGroups * kDqBytes : 0);
  static constexpr uint32_t kBarriers = kRowStats + kS * 2 * kM * 4;  // per stage: lse2, delta
  static constexpr size_t kBytes = kBarriers + (2 * kS + 1) * sizeof(uint64_t) + 1024;  // + alignment slack
};

__device__ __forceinline__ void consumers_sync(int barrier) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(barrier), "n"(kConsumerThreads) : "memory");
}
__device__ __forceinline__ void group_sync(int group) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(kGroupBarrier + group) : "memory");
}

// Adds row r (0: g, 1: g + 8) of this lane's 16 x 64 block of dq (m16n8 accumulators), times
// `scale`, into the fp32 rows dq_rows[r], two values per atomic; rows[r] null past the sequence end.
__device__ __forceinline__ void add_dq_pairs(const float (&dq)[kDqCols / 8][4], float scale,
                                             float* const (&dq_rows)[2]) {
  const int t = threadIdx.x % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (!dq_rows[r]) continue;
#pragma unroll
    for (int nt = 0; nt < kDqCols / 8; ++nt)
      atomicAdd(reinterpret_cast<float2*>(dq_rows[r] + nt * 8 + 2 * t),
                make_float2(dq[nt][2 * r] * scale, dq[nt][2 * r + 1] * scale));
  }
}

// The same, four values per atomic: lanes t and t ^ 1 swap halves so that the even one holds 4
// adjacent columns of row g and the odd one 4 of row g + 8.
__device__ __forceinline__ void add_dq_quads(const float (&dq)[kDqCols / 8][4], float scale,
                                             float* const (&dq_rows)[2]) {
  // Selects, not indices: a runtime index would put dq and dq_rows in local memory.
  const int t = threadIdx.x % 4;
  const bool odd = t % 2;
  float* row = odd ? dq_rows[1] : dq_rows[0];
#pragma unroll
  for (int nt = 0; nt < kDqCols / 8; ++nt) {
    // Even lanes keep row g (elements 0, 1) and send row g + 8; odd lanes the other way round.
    const float got0 = __shfl_xor_sync(0xffffffffu, odd ? dq[nt][0] : dq[nt][2], 1);
    const float got1 = __shfl_xor_sync(0xffffffffu, odd ? dq[nt][1] : dq[nt][3], 1);
    const float4 quad =
        odd ? make_float4(got0, got1, dq[nt][2], dq[nt][3]) : make_float4(dq[nt][0], dq[nt][1], got0, got1);
    if (row)
      atomicAdd(reinterpret_cast<float4*>(row + nt * 8 + 2 * (t - odd)),
                make_float4(quad.x * scale, quad.y * scale, quad.z * scale, quad.w * scale));
  }
}

// Writes this lane's part of its warpgroup's 64 x 64 dq block, times `scale`, into `tile`: two
// boxes of 64 rows x 32 fp32 columns, 128-byte swizzled as the TMA map of the fp32 buffer reads
// them (16-byte chunk c of row r at chunk c ^ (r % 8)).
__device__ __forceinline__ void store_dq_tile(float* tile, const float (&dq)[kDqCols / 8][4], float scale) {
  const int warp = (threadIdx.x / 32) % 4, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < kDqCols / 8; ++nt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp * 16 + g + 8 * r, col = (nt % 4) * 8 + 2 * t;  // col within box nt / 4
      float* box = tile + (nt / 4) * kDqCols * kDqBoxCols;
      *reinterpret_cast<float2*>(box + row * kDqBoxCols + ((col / 4) ^ (row % 8)) * 4 + col % 4) =
          make_float2(dq[nt][2 * r] * scale, dq[nt][2 * r + 1] * scale);
    }
}

// kEarlySegmentTest, kAdd, kBounds, kConsumer, heavy_first and tiles_outer: see the backward
// variants in attention_common.cuh.
template <typename T, int kD, bool kEarlySegmentTest, DqAdd kAdd, bool kBounds, Consumer kConsumer>
__global__ void __launch_bounds__(kThreads, 1) backward_kernel(const __grid_constant__ Maps maps, const Params p,
                                                               bool heavy_first, bool tiles_outer) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __trap();  // compiled for another architecture; sm90_supports() keeps launches away
#else
  using L = Smem<kD, kAdd>;
  constexpr int kM = L::kM, kS = L::kS;
  constexpr int kPanels = kD / sm90::kPanelCols, kPanel = sm90::kPanelCols;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  T* k_tile = reinterpret_cast<T*>(smem);
  T* v_tile = reinterpret_cast<T*>(smem + L::kKvBytes);
  auto q_tile = [&](int stage) { return reinterpret_cast<T*>(smem + 2 * L::kKvBytes + stage * L::kQBytes); };
  auto do_tile = [&](int stage) {
    return reinterpret_cast<T*>(smem + 2 * L::kKvBytes + (kS + stage) * L::kQBytes);
  };
  // dS^T alternates between two buffers: a warpgroup writes item n's while the other may still
  // read item n - 1's (it cannot be further behind: both meet at every item's kDsReadyBarrier).
  auto ds_of = [&](int64_t n) { return reinterpret_cast<T*>(smem + L::kDs) + (n % 2) * kBlockN * kM; };
  // Per stage and query: lse * log2(e) (inf past the sequence end, so that P = 0 there) and delta.
  auto lse2_of = [&](int stage) { return reinterpret_cast<float*>(smem + L::kRowStats) + stage * 2 * kM; };
  auto delta_of = [&](int stage) { return lse2_of(stage) + kM; };
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + L::kBarriers);
  uint64_t* empty = full + kS;
  uint64_t* kv_full = empty + kS;

  BlockWork work;
  if (kBounds && p.order) {
    work = ordered_work(p.order, cta_index(), launch_grid());
  } else {
    const CtaWork w = cta_work(heavy_first, cta_index(), launch_grid());
    work = {w.rank, w.head, w.batch};
  }
  const int64_t kb = work.block, kvh = work.head, b = work.batch;
  const int64_t k0 = kb * kBlockN, last_key = min(k0 + kBlockN, p.s) - 1;
  // kBounds: no query after the document end of the block's last key sees a key here (ids do not
  // decrease); where they decrease (-1) every tile from the diagonal on is visited, ids compared.
  const int32_t doc_end = kBounds ? p.doc_last(b, last_key) : 0;
  const bool compare_ids = kBounds && p.segments && (doc_end < 0 || !p.doc_bounds);
  const int64_t last_query = kBounds && !compare_ids ? doc_end : p.s - 1;
  // Work items: (query head, query tile) pairs; query tiles before the block's first key never
  // see its keys, and segment ids can rule out a whole tile (Params::tiles_disjoint works on
  // 64-row tiles), or with kBounds every tile after last_query. Heads outer, or with tiles_outer
  // tiles outer, so that one test rules out a tile for all heads of the group at once.
  const int64_t first_qt = k0 / kM, per_head = last_query / kM + 1 - first_qt;
  const int64_t items = p.group * per_head;
  const int64_t first_kt = k0 / kTile, last_kt = last_key / kTile;
  auto item_head = [&](int64_t it) { return kvh * p.group + (tiles_outer ? it % p.group : it / per_head); };
  auto item_q0 = [&](int64_t it) { return (first_qt + (tiles_outer ? it / p.group : it % per_head)) * kM; };
  auto disjoint = [&](int64_t q0) {
    for (int64_t sub = q0 / kTile; sub <= (min(q0 + kM, p.s) - 1) / kTile; ++sub)
      if (!p.tiles_disjoint(b, first_kt, last_kt, sub)) return false;
    return true;
  };
  auto next_item = [&](int64_t it) {
    if (kBounds) return it + 1;
    if (tiles_outer) {
      ++it;
      if (it % p.group == 0)  // a new tile
        while (it < items && disjoint(item_q0(it))) it += p.group;
      return it;
    }
    do ++it;
    while (it < items && disjoint(item_q0(it)));
    return it;
  };

  if (threadIdx.x == 0) {
    for (int s = 0; s < kS; ++s) {
      sm90::barrier_init(&full[s], kM);  // the producer's query threads
      sm90::barrier_init(&empty[s], kConsumerThreads);
    }
    sm90::barrier_init(kv_full, 1);
  }
  __syncthreads();

  if (threadIdx.x >= kConsumerThreads) {  // the producer: thread j < kM handles query j of each tile
    sm90::set_max_registers<kProducerRegisters, false>();
    const int j = threadIdx.x - kConsumerThreads;
    if (j >= kM) return;
    if (j == 0) {
      sm90::barrier_arrive_expect(kv_full, 2 * L::kKvBytes);
      for (int panel = 0; panel < kPanels; ++panel) {
        sm90::tma_load_4d(k_tile + panel * kBlockN * kPanel, &maps.k, panel * kPanel, int(kvh), int(k0), int(b),
                          kv_full);
        sm90::tma_load_4d(v_tile + panel * kBlockN * kPanel, &maps.v, panel * kPanel, int(kvh), int(k0), int(b),
                          kv_full);
      }
    }
    int64_t n = 0;
    for (int64_t it = next_item(-1); it < items; it = next_item(it), ++n) {
      const int stage = n % kS;
      if (n >= kS) sm90::barrier_wait(&empty[stage], (n / kS + 1) % 2);
      const int64_t h = item_head(it), q0 = item_q0(it), i = q0 + j;
      lse2_of(stage)[j] = i < p.s ? p.lse_in[p.row_offset(b, h, i)] * kLog2e : INFINITY;
      delta_of(stage)[j] = i < p.s ? p.delta[p.row_offset(b, h, i)] : 0.0f;
      if (j > 0) {
        sm90::barrier_arrive(&full[stage]);
        continue;
      }
      sm90::barrier_arrive_expect(&full[stage], 2 * L::kQBytes);
      for (int panel = 0; panel < kPanels; ++panel) {
        sm90::tma_load_4d(q_tile(stage) + panel * kM * kPanel, &maps.q, panel * kPanel, int(h), int(q0), int(b),
                          &full[stage]);
        sm90::tma_load_4d(do_tile(stage) + panel * kM * kPanel, &maps.dout, panel * kPanel, int(h), int(q0),
                          int(b), &full[stage]);
      }
    }
    return;
  }

  sm90::set_max_registers<kConsumerRegisters, true>();
  constexpr int kQueryBlocks = kM / 8, kDimBlocks = kD / 8;
  const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  const int key_row0 = group * kKeysPerGroup + warp * 16;  // this warp's first key, relative to k0
  int64_t keys[2];
  int32_t seg_keys[2], key_last[2];  // key_last: kBounds, the document end of each key
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    keys[r] = k0 + key_row0 + g + 8 * r;
    seg_keys[r] = keys[r] < p.s ? p.segment(b, keys[r]) : 0;
    key_last[r] = kBounds && !compare_ids && keys[r] < p.s ? p.doc_last(b, keys[r]) : int32_t(p.s - 1);
  }
  const int32_t lane_last = min(key_last[0], key_last[1]);
  const float scale2 = p.scale * kLog2e;
  float dk[kDimBlocks][4] = {}, dv[kDimBlocks][4] = {};
  auto& dk_flat = reinterpret_cast<float(&)[kD / 2]>(dk);
  auto& dv_flat = reinterpret_cast<float(&)[kD / 2]>(dv);
  const T* k_group = k_tile + group * kKeysPerGroup * kPanel;
  const T* v_group = v_tile + group * kKeysPerGroup * kPanel;

  constexpr bool kFastP = kConsumer >= Consumer::FastP, kEarlyDv = kConsumer >= Consumer::DvDq,
                 kNextS = kConsumer == Consumer::NextS;
  // With NextS, S^T of an item is issued in the item before it: into these registers.
  float st_carried[kNextS ? kQueryBlocks : 1][4];
  // d = A B^T over the head dims, A this warpgroup's 64 key rows, B the tile's query rows; 16
  // head dims per step, at byte 32 * step of a panel row.
  auto key_query_product = [&](float(&d)[kM / 2], const T* a, const T* bt) {
    if constexpr (kNextS)
#pragma unroll
      for (int i = 0; i < kM / 2; ++i) sm90::forget(d[i]);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const int panel = kk / 4, col = (kk % 4) * 16;
      sm90::mma_ss<T, kM>(d, sm90::descriptor(a + panel * kBlockN * kPanel + col),
                          sm90::descriptor(bt + panel * kM * kPanel + col), kk > 0);
    }
    sm90::commit();
  };
  auto wait_full = [&](int64_t n) { sm90::barrier_wait(&full[n % kS], (n / kS) % 2); };

  sm90::barrier_wait(kv_full, 0);
  int64_t n = 0;
  const int64_t first = next_item(-1);
  if constexpr (kNextS)
    if (first < items) {
      wait_full(0);
      sm90::fence();
      key_query_product(reinterpret_cast<float(&)[kM / 2]>(st_carried), k_group, q_tile(0));
    }
  int64_t next = 0;  // NextS: the item after this one
  for (int64_t it = first; it < items; it = kNextS ? next : next_item(it), ++n) {
    if constexpr (kNextS) next = next_item(it);
    const int stage = n % kS;
    const int64_t h = item_head(it), q0 = item_q0(it);
    if constexpr (!kNextS) wait_full(n);  // with NextS, waited for when its S^T was issued
    const T* qs = q_tile(stage);
    const T* dos = do_tile(stage);
    const float* lse2 = lse2_of(stage);
    const float* delta = delta_of(stage);
    auto across_documents = [&] {
      return !p.one_segment(b, q0 / kTile, (min(q0 + kM, p.s) - 1) / kTile, first_kt, last_kt);
    };
    bool by_segment = false;
    if constexpr (kBounds)
      by_segment = compare_ids;
    else if constexpr (kEarlySegmentTest)
      by_segment = p.segments != nullptr && across_documents();

    // S^T = K Q^T (then P^T in place) and dP^T = V dO^T for this warpgroup's 64 keys and the
    // tile's queries.
    float st_local[kNextS ? 1 : kQueryBlocks][4], dpt[kQueryBlocks][4];
    auto& st = *[&] {
      if constexpr (kNextS)
        return &st_carried;
      else
        return &st_local;
    }();
    auto& st_flat = reinterpret_cast<float(&)[kM / 2]>(st);
    auto& dpt_flat = reinterpret_cast<float(&)[kM / 2]>(dpt);
    sm90::fence();
    if constexpr (!kNextS) key_query_product(st_flat, k_group, qs);
    key_query_product(dpt_flat, v_group, dos);

    // P^T while dP^T is still being computed. Element e of block nt: key keys[e / 2], query
    // q0 + 8 nt + 2t + e % 2. Only tiles reaching below a warp's last key need the causal test (keys
    // past the end are after every query, and queries past the end have P = 0 through lse2 = inf),
    // and only tiles across a document boundary the segment test.
    sm90::wait<1>();
#pragma unroll
    for (int i = 0; i < kM / 2; ++i) sm90::pin(st_flat[i]);
    if constexpr (!kEarlySegmentTest) by_segment = across_documents();
    const bool after_documents = kBounds && q0 + kM - 1 > lane_last;
    const bool masked = by_segment || after_documents || k0 + key_row0 + 15 > q0;
    // Row statistics of the lane's two queries of block nt (8-byte aligned: 2t is even).
    auto pair_of = [&](const float* stats, int nt) {
      return *reinterpret_cast<const float2*>(stats + nt * 8 + 2 * t);
    };
    // Plain: P^T and its mask in one pass. FastP: P^T = exp2 alone, then only items that need the
    // mask zero what it hides (the same values).
    auto mask_pass = [&](bool with_exp) {
#pragma unroll
      for (int nt = 0; nt < kQueryBlocks; ++nt) {
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int col = nt * 8 + 2 * t + c;
          const int64_t i = q0 + col;
          const int32_t seg_i = by_segment && i < p.s ? p.segment(b, i) : 0;
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const float prob =
                with_exp ? ptx::exp2_approx(fmaf(st[nt][2 * r + c], scale2, -lse2[col])) : st[nt][2 * r + c];
            const bool hidden =
                keys[r] > i || (by_segment && seg_keys[r] != seg_i) || (after_documents && i > key_last[r]);
            st[nt][2 * r + c] = masked && hidden ? 0.0f : prob;
          }
        }
      }
    };
    if constexpr (kFastP) {
#pragma unroll
      for (int nt = 0; nt < kQueryBlocks; ++nt) {
        const float2 l = pair_of(lse2, nt);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          st[nt][2 * r] = ptx::exp2_approx(fmaf(st[nt][2 * r], scale2, -l.x));
          st[nt][2 * r + 1] = ptx::exp2_approx(fmaf(st[nt][2 * r + 1], scale2, -l.y));
        }
      }
      if (masked) mask_pass(false);
    } else {
      mask_pass(true);
    }
    // dV += P^T dO and dK += dS^T Q, from the packed P^T and dS^T: the B operands have their N
    // (head dim) contiguous. With kEarlyDv dV is issued before dS^T exists (its arithmetic runs
    // under dV), and dK after dQ (below).
    uint32_t pa[kM / 16][4], da[kM / 16][4];
    auto pack_p = [&] {
#pragma unroll
      for (int ks = 0; ks < kM / 16; ++ks) accumulators_as_a<T>(pa[ks], st, ks);
    };
    auto issue_dv = [&] {
#pragma unroll
      for (int ks = 0; ks < kM / 16; ++ks)
        sm90::mma_rs<T, kD, 1>(dv_flat, pa[ks], sm90::descriptor(dos + ks * 16 * kPanel, kM * 128), true);
    };
    auto issue_dk = [&] {
#pragma unroll
      for (int ks = 0; ks < kM / 16; ++ks)
        sm90::mma_rs<T, kD, 1>(dk_flat, da[ks], sm90::descriptor(qs + ks * 16 * kPanel, kM * 128), true);
    };
    if constexpr (kEarlyDv) {
      pack_p();
      sm90::fence();
      issue_dv();
      sm90::commit();
      sm90::wait<1>();  // dP^T; dV may still run
    } else {
      sm90::wait<0>();
    }
    // dS^T = P^T (dP^T - delta), in place. With kEarlyDv P^T comes from its packed A fragments
    // (rounded as dV takes it), so that st need not live on beside them.
#pragma unroll
    for (int i = 0; i < kM / 2; ++i) sm90::pin(dpt_flat[i]);
#pragma unroll
    for (int nt = 0; nt < kQueryBlocks; ++nt) {
      const float2 dl = kFastP ? pair_of(delta, nt) : float2{};
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float prob = st[nt][e];
        if constexpr (kEarlyDv) {
          const float2 pair = ptx::unpack2<T>(pa[nt / 2][2 * (nt % 2) + e / 2]);
          prob = e % 2 ? pair.y : pair.x;
        }
        const float row_delta = kFastP ? (e % 2 ? dl.y : dl.x) : delta[nt * 8 + 2 * t + e % 2];
        dpt[nt][e] = prob * (dpt[nt][e] - row_delta);
      }
    }
    if constexpr (!kEarlyDv) pack_p();
#pragma unroll
    for (int ks = 0; ks < kM / 16; ++ks) accumulators_as_a<T>(da[ks], dpt, ks);
    if constexpr (!kEarlyDv) {
      sm90::fence();
      issue_dv();
      issue_dk();
      sm90::commit();
    }

    // dS^T to shared memory, for dQ = dS K: the packed A fragments hold it already (da[nt / 2][2
    // (nt % 2) + r] is row g + 8r of 8-query block nt). All the block's keys in the buffer of the
    // item's parity, or with OwnTiles this warpgroup's keys in its own buffer (free again: its
    // last dQ product has been waited for).
    constexpr bool kOwn = kAdd == DqAdd::OwnTiles;
    constexpr int kRows = kDsRows<kAdd>;
    T* ds_tile = kOwn ? reinterpret_cast<T*>(smem + L::kDs) + group * kKeysPerGroup * kM : ds_of(n);
#pragma unroll
    for (int nt = 0; nt < kQueryBlocks; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = (kOwn ? warp * 16 : key_row0) + g + 8 * r, col = (nt % 8) * 8 + 2 * t;  // in panel nt / 8
        *reinterpret_cast<uint32_t*>(ds_tile + (nt / 8) * kRows * kPanel + row * kPanel +
                                     (((col / 8) ^ (row % 8)) * 8) + col % 8) = da[nt / 2][2 * (nt % 2) + r];
      }
    sm90::fence_proxy_async();
    if constexpr (kOwn)
      group_sync(group);
    else
      consumers_sync(kDsReadyBarrier);

    // dQ = dS K in 64 x 64 blocks: one per warpgroup over all the block's keys (the query rows split
    // at head dim 64, the head dims at 128), or with OwnTiles the item's kM x kD (two blocks) over
    // this warpgroup's keys. A is a panel of dS^T read transposed (queries contiguous), B is K with
    // its head dims contiguous; 16 keys per step.
    constexpr int kRowBlocks = kM / 64, kBlocks = kDqBlocks<kAdd>;
    static_assert(kRowBlocks * kD == kGroups * 64, "dQ of an item is two 64 x 64 blocks");
    auto dq_row0 = [&](int blk) { return 64 * ((kOwn ? blk : group) % kRowBlocks); };
    auto dq_col0 = [&](int blk) { return 64 * ((kOwn ? blk : group) / kRowBlocks); };
    const T* k_rows = kOwn ? k_group : k_tile;  // the first key of the sum
    float dq[kBlocks][kPanel / 8][4];
    auto& dq_flat = reinterpret_cast<float(&)[kBlocks][kPanel / 2]>(dq);
    sm90::fence();
#pragma unroll
    for (int blk = 0; blk < kBlocks; ++blk)
#pragma unroll
      for (int ks = 0; ks < kRows / 16; ++ks)
        sm90::mma_ss<T, kPanel, 1, 1>(
            dq_flat[blk], sm90::descriptor(ds_tile + (dq_row0(blk) / kPanel) * kRows * kPanel + ks * 16 * kPanel),
            sm90::descriptor(k_rows + (dq_col0(blk) / kPanel) * kBlockN * kPanel + ks * 16 * kPanel), ks > 0);
    sm90::commit();
    // Wait groups now: [dV] dQ, then with kEarlyDv dK, and with NextS the next S^T.
    const bool next_s = kNextS && next < items;
    if constexpr (kEarlyDv) {  // dQ's way into the buffer runs under dK
      issue_dk();
      sm90::commit();
    }
    if constexpr (kNextS) {
      sm90::wait<2>();  // dV, whose A fragments then go, so that the next S^T has their registers
#pragma unroll
      for (int ks = 0; ks < kM / 16; ++ks)
#pragma unroll
        for (int i = 0; i < 4; ++i) sm90::pin(pa[ks][i]);
      if (next_s) {
        wait_full(n + 1);
        sm90::fence();
        key_query_product(st_flat, k_group, q_tile((n + 1) % kS));
        sm90::wait<2>();
      } else {
        sm90::wait<1>();
      }
    } else if constexpr (kEarlyDv) {
      sm90::wait<1>();
    } else {
      sm90::wait<0>();
    }
#pragma unroll
    for (int blk = 0; blk < kBlocks; ++blk)
#pragma unroll
      for (int i = 0; i < kPanel / 2; ++i) sm90::pin(dq_flat[blk][i]);
    if constexpr (kDqTiles<kAdd>) {
      // The previous item's tiles must have been read out before they are overwritten; TMA leaves
      // rows past the sequence end out.
      float* tile = reinterpret_cast<float*>(smem + L::kDq + group * L::kDqBytes);
      constexpr int kBlockFloats = kDqCols * kDqCols;
      const bool leader = threadIdx.x % 128 == 0;
      if (leader) sm90::bulk_wait_read<0>();
      group_sync(group);
#pragma unroll
      for (int blk = 0; blk < kBlocks; ++blk) store_dq_tile(tile + blk * kBlockFloats, dq[blk], p.scale);
      sm90::fence_proxy_async();
      group_sync(group);
      if (leader) {
        for (int blk = 0; blk < kBlocks; ++blk)
          for (int box = 0; box < kDqCols / kDqBoxCols; ++box)
            sm90::tma_reduce_add_4d(&maps.dq_accum, tile + blk * kBlockFloats + box * kDqCols * kDqBoxCols,
                                    dq_col0(blk) + box * kDqBoxCols, int(h), int(q0 + dq_row0(blk)), int(b));
        sm90::bulk_commit();
      }
    } else {
      float* dq_rows[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t i = q0 + dq_row0(0) + warp * 16 + g + 8 * r;
        dq_rows[r] = i < p.s ? p.dq_accum + p.q_offset(b, i, h) + dq_col0(0) : nullptr;
      }
      if constexpr (kAdd == DqAdd::Quads)
        add_dq_quads(dq[0], p.scale, dq_rows);
      else
        add_dq_pairs(dq[0], p.scale, dq_rows);
    }
    // dK, before its A fragments go.
    if constexpr (kNextS) {
      if (next_s)
        sm90::wait<1>();
      else
        sm90::wait<0>();
    } else if constexpr (kEarlyDv) {
      sm90::wait<0>();
    }
#pragma unroll
    for (int ks = 0; ks < kM / 16; ++ks)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if constexpr (!kNextS) sm90::pin(pa[ks][i]);  // NextS: let go before the next S^T
        sm90::pin(da[ks][i]);
      }
    sm90::barrier_arrive(&empty[stage]);
  }

  if constexpr (kDqTiles<kAdd>)
    if (threadIdx.x % 128 == 0) sm90::bulk_wait<0>();  // before the CTA's shared memory goes
  store_key_grads<T>(dk, dv, p, b, kvh, keys);
#endif
}

template <typename T, int kD, bool kEarlySegmentTest, DqAdd kAdd, bool kBounds = false,
          Consumer kConsumer = Consumer::Plain>
void launch(const Params& p, DType dtype, cudaStream_t stream, bool heavy_first, bool tiles_outer) {
  constexpr size_t smem = Smem<kD, kAdd>::kBytes;
  static_assert(smem <= 227 * 1024, "the backward's shared memory exceeds an SM's 227 KiB");
  Maps maps{.q = head_rows_map(p.q, dtype, p.b, p.s, p.hq, kD, kBlockM<kD>),
            .dout = head_rows_map(p.dout, dtype, p.b, p.s, p.hq, kD, kBlockM<kD>),
            .k = head_rows_map(p.k, dtype, p.b, p.s, p.hkv, kD, kBlockN),
            .v = head_rows_map(p.v, dtype, p.b, p.s, p.hkv, kD, kBlockN),
            .dq_accum = {}};
  if constexpr (kDqTiles<kAdd>)
    maps.dq_accum = head_rows_map(p.dq_accum, DType::F32, p.b, p.s, p.hq, kD, kDqCols);
  auto* kernel = backward_kernel<T, kD, kEarlySegmentTest, kAdd, kBounds, kConsumer>;
  TS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const dim3 grid((p.s + kBlockN - 1) / kBlockN, p.hkv, p.b);
  kernel<<<grid, kThreads, smem, stream>>>(maps, p, heavy_first, tiles_outer);
  check_launch();
}

}  // namespace

void sm90_backward(const Params& p, DType dtype, cudaStream_t stream, int variant) {
  dispatch_sm90(dtype, p.d, [&](auto* tag, auto dim) {
    using T = std::remove_pointer_t<decltype(tag)>;
    constexpr int kD = decltype(dim)::value;
    if (variant == 1)
      launch<T, kD, false, DqAdd::Pairs>(p, dtype, stream, false, false);
    else if (variant <= 3)
      launch<T, kD, true, DqAdd::Pairs>(p, dtype, stream, variant == 3, false);
    else if (variant == 4)
      launch<T, kD, true, DqAdd::Quads>(p, dtype, stream, true, false);
    else if (variant <= 6)
      launch<T, kD, true, DqAdd::Tiles>(p, dtype, stream, true, variant == 6);
    else if (variant == 7 || (variant == 8 && kD != 64))
      launch<T, kD, true, DqAdd::Tiles, true>(p, dtype, stream, true, false);
    else if (variant == 8) {
      if constexpr (kD == 64)  // at 128 the two dQ blocks would serialise the wgmmas (registers)
        launch<T, kD, true, DqAdd::OwnTiles, true>(p, dtype, stream, true, false);
    } else if (variant == 9) {
      launch<T, kD, true, DqAdd::Tiles, false, Consumer::FastP>(p, dtype, stream, true, true);
    } else if (variant == 10) {
      launch<T, kD, true, DqAdd::Tiles, false, Consumer::DvDq>(p, dtype, stream, true, true);
    } else if (variant == 11) {
      launch<T, kD, true, DqAdd::Tiles, false, Consumer::NextS>(p, dtype, stream, true, true);
    } else {
      launch<T, kD, true, DqAdd::Tiles, true, Consumer::DvDq>(p, dtype, stream, true, false);
    }
  });
}

}  // namespace tessera::cuda::attn
