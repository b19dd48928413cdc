#include "model/attention/sdpa_core.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include "host/runtime/error.hpp"

namespace attnscope {

namespace {

double ceil_div(int n, int m) { return double((n + m - 1) / m); }

// Keys of the longest score chunk whose rows fit in free_bytes (a multiple of the tile
// width; 0 when not even one tile fits).
int max_chunk_keys(size_t free_bytes, const SdpaTiles& t) {
  const size_t keys = free_bytes / (sizeof(float) * t.block_rows());
  if (keys < 1) return 0;
  return int(std::min<size_t>((keys - 1) / t.block_cols(), INT_MAX / 2 / t.block_cols())) *
         t.block_cols();
}

// The chunk a forward launch over T positions uses: never longer than the whole row.
int used_chunk(const SdpaPlan& plan, int T) {
  return std::min(plan.chunk_keys, int(round_up(T, plan.forward.block_cols())));
}

// Column tiles (of K or V) the forward stages per (batch, head): per query block, the
// causal row's tiles for QKᵀ (twice on the chunked path) and for PV.
double forward_tile_visits(const SdpaPlan& plan, int T) {
  const SdpaTiles& t = plan.forward;
  const int chunk = used_chunk(plan, T);
  double tiles = 0;
  for (int q0 = 0; q0 < T; q0 += t.block_rows()) {
    const int keys = std::min(T, q0 + t.block_rows());
    tiles += ceil_div(keys, t.block_cols()) * (keys <= chunk ? 2 : 3);
  }
  return tiles;
}

// Column tiles each backward kernel visits per (batch, head): dq walks the keys of each
// query block's causal row, dkv the queries from each key block's first key on.
struct BackwardTileVisits {
  double dq = 0, dkv = 0;
};
BackwardTileVisits backward_tile_visits(const SdpaTiles& t, int T) {
  BackwardTileVisits n;
  for (int r0 = 0; r0 < T; r0 += t.block_rows()) {
    n.dq += ceil_div(std::min(T, r0 + t.block_rows()), t.block_cols());
    n.dkv += ceil_div(T - r0, t.block_cols());
  }
  return n;
}

// FLOPs of one tile product (block rows × tile columns × head size) over all (b, h).
double tile_product_flops(const SdpaTiles& t, const AttentionDims& dims) {
  return 2.0 * dims.B * dims.H * t.block_rows() * t.block_cols() * dims.head_size();
}

// Halves columns per work-item, then rows per work-item, until `fits`; threads_row first
// comes down to the device's work-group limit.
template <typename Fits>
SdpaTiles shrink_to_fit(SdpaTiles t, size_t max_work_group_size, const std::string& kernel,
                        int head_size, size_t local_bytes, Fits fits) {
  while (size_t(t.work_group_size()) > max_work_group_size && t.threads_row > 1) t.threads_row /= 2;
  while (size_t(t.work_group_size()) > max_work_group_size || !fits(t)) {
    if (t.cols_per_thread > 1) {
      t.cols_per_thread /= 2;
    } else if (t.rows_per_thread > 1) {
      t.rows_per_thread /= 2;
    } else {
      throw Error("sdpa: " + kernel + " for head size " + std::to_string(head_size) +
                  " does not fit " + std::to_string(local_bytes) +
                  " bytes of __local memory and " + std::to_string(max_work_group_size) +
                  " work-items per group even with tiles " + t.label() +
                  " (lower SdpaTuning's threads_row/threads_col)");
    }
  }
  return t;
}

size_t kernel_work_group_limit(const cl::Kernel& kernel, const cl::Device& device) {
  return kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(device);
}

void check_work_group(const cl::Kernel& kernel, const char* name, const SdpaTiles& tiles,
                      const DeviceInfo& device) {
  const size_t limit = kernel_work_group_limit(kernel, device.device);
  if (limit < size_t(tiles.work_group_size()))
    throw Error(std::string("sdpa: kernel ") + name + " allows " + std::to_string(limit) +
                " work-items per group on " + device.short_label() + ", its tiles " +
                tiles.label() + " need " + std::to_string(tiles.work_group_size()) +
                " (lower SdpaTuning's threads_row/threads_col)");
}

}  // namespace

std::string SdpaTiles::build_options(int head_size) const {
  return "-DHEAD_SIZE=" + std::to_string(head_size) + " -DTHREADS_ROW=" +
         std::to_string(threads_row) + " -DTHREADS_COL=" + std::to_string(threads_col) +
         " -DROWS_PER_THREAD=" + std::to_string(rows_per_thread) +
         " -DCOLS_PER_THREAD=" + std::to_string(cols_per_thread);
}

std::string SdpaTiles::label() const {
  return std::to_string(block_rows()) + "x" + std::to_string(block_cols()) + "/" +
         std::to_string(threads_row) + "x" + std::to_string(threads_col);
}

size_t SdpaTiles::forward_local_bytes(int head_size) const {
  // q_tile, kv_tile (rows padded by one), partial (one float per item and row)
  return sizeof(float) * (size_t(block_rows() + block_cols()) * (head_size + 1) +
                          size_t(block_rows()) * threads_col);
}

size_t SdpaTiles::backward_local_bytes(int head_size) const {
  // sdpa_backward_dkv: k, v, q, dO tiles, P and dS tiles, lse and D of a query tile
  // (sdpa_backward_dq needs one score tile fewer and no row statistics).
  return sizeof(float) * (2 * size_t(block_rows() + block_cols()) * (head_size + 1) +
                          2 * size_t(block_rows()) * (block_cols() + 1) + 2 * size_t(block_cols()));
}

size_t SdpaTiles::score_bytes(int keys) const {
  return sizeof(float) * size_t(block_rows()) * (size_t(keys) + 1);  // rows padded by one
}

SdpaPlan plan_sdpa(size_t local_mem_bytes, size_t max_work_group_size, int head_size,
                   const SdpaTuning& tuning) {
  SdpaPlan plan;
  plan.forward = shrink_to_fit(
      tuning.tiles, max_work_group_size, "sdpa_forward", head_size, local_mem_bytes,
      [&](const SdpaTiles& t) {
        const size_t own = t.forward_local_bytes(head_size);
        return own < local_mem_bytes && max_chunk_keys(local_mem_bytes - own, t) > 0;
      });
  plan.backward = shrink_to_fit(tuning.tiles, max_work_group_size, "sdpa_backward_dkv",
                                head_size, local_mem_bytes, [&](const SdpaTiles& t) {
                                  return t.backward_local_bytes(head_size) <= local_mem_bytes;
                                });
  plan.chunk_keys =
      max_chunk_keys(local_mem_bytes - plan.forward.forward_local_bytes(head_size), plan.forward);
  return plan;
}

double sdpa_forward_flops(const SdpaPlan& plan, const AttentionDims& dims) {
  return forward_tile_visits(plan, dims.T) * tile_product_flops(plan.forward, dims);
}

double sdpa_backward_flops(const SdpaPlan& plan, const AttentionDims& dims) {
  const BackwardTileVisits n = backward_tile_visits(plan.backward, dims.T);
  const double delta_flops = 2.0 * dims.B * dims.T * dims.C;
  // dq: S, dP, dQ per tile; dkv: S, dP, dV, dK per tile
  return (3 * n.dq + 4 * n.dkv) * tile_product_flops(plan.backward, dims) + delta_flops;
}

double exact_attention_model_flops_forward(const AttentionDims& dims) {
  const double causal_pairs = 0.5 * double(dims.T) * (dims.T + 1);
  return 2.0 * 2.0 * dims.B * dims.H * causal_pairs * dims.head_size();  // QKᵀ and PV
}

SdpaPlan typical_gpu_sdpa_plan(int head_size) {
  return plan_sdpa(48 * 1024, 1024, head_size, SdpaTuning{});
}

SdpaCore::SdpaCore(Runtime& runtime, const std::string& kernel_file, int head_size,
                   const SdpaTuning& tuning)
    : rt_(runtime), head_size_(head_size) {
  const DeviceInfo& device = rt_.device();
  size_t local_bytes = device.local_mem_bytes;
  if (tuning.local_mem_limit > 0) local_bytes = std::min(local_bytes, tuning.local_mem_limit);
  plan_ = plan_sdpa(local_bytes, device.max_work_group_size, head_size, tuning);

  const std::string forward_options = plan_.forward.build_options(head_size);
  const std::string backward_options = plan_.backward.build_options(head_size);
  forward_ = rt_.kernel(kernel_file, "sdpa_forward", forward_options);
  delta_ = rt_.kernel(kernel_file, "sdpa_backward_delta", backward_options);
  dq_ = rt_.kernel(kernel_file, "sdpa_backward_dq", backward_options);
  dkv_ = rt_.kernel(kernel_file, "sdpa_backward_dkv", backward_options);
  check_work_group(forward_, "sdpa_forward", plan_.forward, device);
  check_work_group(dq_, "sdpa_backward_dq", plan_.backward, device);
  check_work_group(dkv_, "sdpa_backward_dkv", plan_.backward, device);

  // The compiler may need __local memory of its own beside our arrays: the score rows get
  // what is really left.
  const size_t own = std::max<size_t>(
      plan_.forward.forward_local_bytes(head_size),
      forward_.getWorkGroupInfo<CL_KERNEL_LOCAL_MEM_SIZE>(device.device));
  plan_.chunk_keys = own < local_bytes ? max_chunk_keys(local_bytes - own, plan_.forward) : 0;
  if (plan_.chunk_keys == 0)
    throw Error("sdpa: sdpa_forward uses " + std::to_string(own) + " of " +
                std::to_string(local_bytes) + " bytes of __local memory on " +
                device.short_label() + ", leaving none for a tile of scores");
}

void SdpaCore::check_dims(const AttentionDims& dims) const {
  if (dims.head_size() != head_size_ || dims.C != dims.H * head_size_)
    throw Error("sdpa: built for head size " + std::to_string(head_size_) + ", called with C=" +
                std::to_string(dims.C) + " H=" + std::to_string(dims.H));
  if (double(dims.B) * dims.T * dims.H >= double(INT_MAX))
    throw Error("sdpa: B·T·H = " + std::to_string(double(dims.B) * dims.T * dims.H) +
                " exceeds the kernels' 32-bit row indexing");
}

void SdpaCore::forward(const AttentionDims& dims, const DeviceHeads& out, const cl::Buffer& lse,
                       const DeviceHeads& q, const DeviceHeads& k, const DeviceHeads& v) {
  check_dims(dims);
  const SdpaTiles& t = plan_.forward;
  const int B = dims.B, T = dims.T, H = dims.H, chunk = used_chunk(plan_, T);
  const float scale = 1.0f / std::sqrt(float(head_size_));
  set_args(forward_, out.buffer, out.offset, out.row_stride, lse, q.buffer, q.offset,
           q.row_stride, k.buffer, k.offset, k.row_stride, v.buffer, v.offset, v.row_stride, T,
           scale, chunk, cl::Local(t.score_bytes(chunk)));
  // Q read and O written once, L written, each staged K or V tile read.
  const double tile_floats = double(B) * H * t.block_cols() * head_size_;
  const double bytes = sizeof(float) * (2.0 * B * T * dims.C + double(B) * H * T +
                                        forward_tile_visits(plan_, T) * tile_floats);
  const size_t blocks = (T + t.block_rows() - 1) / t.block_rows();
  rt_.launch(forward_, cl::NDRange(blocks * t.work_group_size(), H, B),
             cl::NDRange(t.work_group_size(), 1, 1), KernelCost{sdpa_forward_flops(plan_, dims), bytes});
}

void SdpaCore::backward(const AttentionDims& dims, const DeviceHeads& dq, const DeviceHeads& dk,
                        const DeviceHeads& dv, const cl::Buffer& delta,
                        const DeviceHeads& dout, const DeviceHeads& out,
                        const cl::Buffer& lse, const DeviceHeads& q, const DeviceHeads& k,
                        const DeviceHeads& v) {
  check_dims(dims);
  const SdpaTiles& t = plan_.backward;
  const int B = dims.B, T = dims.T, H = dims.H;
  const double activation_bytes = sizeof(float) * double(B) * T * dims.C;  // one (B,T,C)
  const double stat_bytes = sizeof(float) * double(B) * H * T;             // one (B,H,T)
  const float scale = 1.0f / std::sqrt(float(head_size_));

  const int rows = B * T * H;
  set_args(delta_, delta, dout.buffer, dout.offset, dout.row_stride, out.buffer, out.offset,
           out.row_stride, T, H, rows);
  rt_.launch(delta_, cl::NDRange(round_up(rows, 64)), cl::NDRange(64),
             KernelCost{2.0 * B * T * dims.C, 2 * activation_bytes + stat_bytes});

  // Each tile stages two vector tiles (K and V, or Q and dO) of every (b, h).
  const BackwardTileVisits tiles = backward_tile_visits(t, T);
  const double tile_bytes = 2.0 * sizeof(float) * B * H * t.block_cols() * head_size_;
  const double tile_stat_bytes = 2.0 * sizeof(float) * B * H * t.block_cols();  // L, D (dkv)
  const double tile_flops = tile_product_flops(t, dims);
  const size_t blocks = (T + t.block_rows() - 1) / t.block_rows();
  const cl::NDRange global(blocks * t.work_group_size(), H, B), local(t.work_group_size(), 1, 1);

  set_args(dq_, dq.buffer, dq.offset, dq.row_stride, dout.buffer, dout.offset, dout.row_stride,
           lse, delta, q.buffer, q.offset, q.row_stride, k.buffer, k.offset, k.row_stride,
           v.buffer, v.offset, v.row_stride, T, scale);
  rt_.launch(dq_, global, local,
             KernelCost{3 * tiles.dq * tile_flops,
                        3 * activation_bytes + 2 * stat_bytes + tiles.dq * tile_bytes});

  set_args(dkv_, dk.buffer, dk.offset, dk.row_stride, dv.buffer, dv.offset, dv.row_stride,
           dout.buffer, dout.offset, dout.row_stride, lse, delta, q.buffer, q.offset,
           q.row_stride, k.buffer, k.offset, k.row_stride, v.buffer, v.offset, v.row_stride, T,
           scale);
  rt_.launch(dkv_, global, local,
             KernelCost{4 * tiles.dkv * tile_flops,
                        4 * activation_bytes + tiles.dkv * (tile_bytes + tile_stat_bytes)});
}

}  // namespace attnscope
