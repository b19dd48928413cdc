#include "host/gemm_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <tuple>
#include <random>

#include "host/runtime/error.hpp"
#include "model/gemm_spec.hpp"
#include "model/tf32.hpp"
#include "model/variant_check.hpp"  // check_tolerance

namespace attnscope {

namespace {

// A product with contiguous slices (batch > 1: one per (b, h)).
Ops::GemmSpec product(int M, int N, int K, bool trans_a, bool trans_b, int batch = 1) {
  Ops::GemmSpec s;
  s.M = M, s.N = N, s.K = K, s.trans_a = trans_a, s.trans_b = trans_b, s.batch = batch;
  if (batch > 1)
    s.stride_a = size_t(M) * K, s.stride_b = size_t(K) * N, s.stride_c = size_t(M) * N;
  return s;
}

}  // namespace

std::vector<GemmShape> gpt2_gemm_shapes(const ModelConfig& config, int B, int T) {
  const int BT = B * T, C = config.n_embd, L = config.n_layer;
  struct Layer {
    const char* name;
    int in, out;
    bool bias;
    int per_step;
  };
  const Layer layers[] = {{"qkv", C, 3 * C, true, L},
                          {"attproj", C, C, true, L},
                          {"fc", C, 4 * C, true, L},
                          {"fcproj", 4 * C, C, true, L},
                          {"classifier", C, config.padded_vocab_size, false, 1}};
  std::vector<GemmShape> shapes;
  for (const auto& l : layers) {  // out = inp·Wᵀ (+ b); dinp = dout·W; dW += doutᵀ·inp
    shapes.push_back({"projections", std::string(l.name) + " forward",
                      product(BT, l.out, l.in, false, true), l.bias, l.per_step});
    shapes.push_back({"projections", std::string(l.name) + " dinp",
                      product(BT, l.in, l.out, false, false), false, l.per_step});
    Ops::GemmSpec dweight = product(l.out, l.in, BT, true, false);
    dweight.beta = 1.f;
    shapes.push_back({"projections", std::string(l.name) + " dweight", dweight, false, l.per_step});
  }
  // The baseline attention's per-head products (model/attention/baseline.cpp).
  const int d = config.head_size(), heads = B * config.n_head;
  const float scale = float(1.0 / std::sqrt(double(d)));
  Ops::GemmSpec scores = product(T, T, d, false, true, heads), dq = product(T, d, T, false, false, heads),
                dk = product(T, d, T, true, false, heads);
  scores.alpha = dq.alpha = dk.alpha = scale;
  shapes.push_back({"attention", "scores QK^T", scores, false, L});
  shapes.push_back({"attention", "output PV", product(T, d, T, false, false, heads), false, L});
  shapes.push_back({"attention", "dP = dO V^T", product(T, T, d, false, true, heads), false, L});
  shapes.push_back({"attention", "dV = P^T dO", product(T, d, T, true, false, heads), false, L});
  shapes.push_back({"attention", "dQ = dS K", dq, false, L});
  shapes.push_back({"attention", "dK = dS^T Q", dk, false, L});
  return shapes;
}

namespace {

// Device operands of one product, filled with uniform random values in [-1, 1]; C starts
// random where the product accumulates (beta ≠ 0) and NaN elsewhere, so an element the
// kernel does not write fails the check.
struct Operands {
  std::vector<float> a, b, c, bias;
  DeviceBuffer da, db, dc, dbias, scratch;
};

size_t operand_floats(size_t offset, size_t stride, int batch, size_t rows_by_cols) {
  return offset + size_t(batch - 1) * stride + rows_by_cols;
}

Operands make_operands(Runtime& rt, const GemmShape& shape) {
  const auto& s = shape.spec;
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(rng);
    return v;
  };
  Operands o;
  o.a = random(operand_floats(s.offset_a, s.stride_a, s.batch, size_t(s.M) * s.K));
  o.b = random(operand_floats(s.offset_b, s.stride_b, s.batch, size_t(s.K) * s.N));
  const size_t c_floats = operand_floats(s.offset_c, s.stride_c, s.batch, size_t(s.M) * s.N);
  auto upload = [&](const std::vector<float>& host, const char* label) {
    DeviceBuffer buffer = rt.alloc_floats(host.size(), label);
    rt.upload(buffer, host.data(), host.size() * sizeof(float));
    return buffer;
  };
  o.da = upload(o.a, "gemm A");
  o.db = upload(o.b, "gemm B");
  if (s.beta != 0.f) {
    o.c = random(c_floats);
    o.dc = upload(o.c, "gemm C");
  } else {
    o.dc = rt.alloc_floats(c_floats, "gemm C");
    rt.fill(o.dc, std::numeric_limits<float>::quiet_NaN(), c_floats);
  }
  if (shape.bias) {
    o.bias = random(size_t(s.N));
    o.dbias = upload(o.bias, "gemm bias");
  }
  return o;
}

void launch(Runtime& rt, const GemmShape& shape, const GemmChoice& choice, Operands& o) {
  GemmScratch scratch = [&](size_t bytes) -> const cl::Buffer& {
    if (o.scratch.bytes() < bytes) o.scratch = rt.alloc(bytes, "gemm split-K partials");
    return o.scratch.buffer();
  };
  const cl::Buffer* bias = shape.bias ? &o.dbias.buffer() : nullptr;
  if (on_tensor_cores(choice.precision))
    return launch_gemm_tf32_plan(rt, choice.tf32, shape.spec, o.da, o.db, o.dc, bias, scratch);
  launch_gemm(rt, choice.fp32, shape.spec, o.da, o.db, o.dc, bias, scratch);
}

// op(A)[m, k] and op(B)[k, n] of slice z, from the host copies.
double op_a(const Ops::GemmSpec& s, const std::vector<float>& a, int z, int m, int k) {
  const size_t base = s.offset_a + size_t(z) * s.stride_a;
  return a[base + (s.trans_a ? size_t(k) * s.M + m : size_t(m) * s.K + k)];
}
double op_b(const Ops::GemmSpec& s, const std::vector<float>& b, int z, int k, int n) {
  const size_t base = s.offset_b + size_t(z) * s.stride_b;
  return b[base + (s.trans_b ? size_t(n) * s.K + k : size_t(k) * s.N + n)];
}

// ‖got − want‖ / ‖want‖ over `samples` elements of C (the four corners of the first and
// last slice, the rest at random), each against a double-precision dot product.
double sampled_error(Runtime& rt, const GemmShape& shape, const Operands& o, int samples) {
  const auto& s = shape.spec;
  std::mt19937 rng(std::random_device{}());
  std::vector<std::array<int, 3>> points = {{0, 0, 0},
                                            {0, s.M - 1, s.N - 1},
                                            {s.batch - 1, 0, s.N - 1},
                                            {s.batch - 1, s.M - 1, 0}};
  while (int(points.size()) < samples)
    points.push_back({int(rng() % s.batch), int(rng() % s.M), int(rng() % s.N)});
  double diff = 0, norm = 0;
  for (const auto& [z, m, n] : points) {
    double want = 0;
    for (int k = 0; k < s.K; ++k) want += op_a(s, o.a, z, m, k) * op_b(s, o.b, z, k, n);
    want *= s.alpha;
    if (shape.bias) want += o.bias[n];
    const size_t index = s.offset_c + size_t(z) * s.stride_c + size_t(m) * s.N + n;
    if (s.beta != 0.f) want += double(s.beta) * o.c[index];
    float got = 0;
    rt.download(o.dc, &got, sizeof(float), index * sizeof(float));
    if (!std::isfinite(got)) return std::numeric_limits<double>::infinity();
    diff += (got - want) * (got - want);
    norm += want * want;
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Device time of one launch, ms: the median of `repeats` launches, each timed by its
// profiling events (a split-K launch is its kernels together).
double timed_ms(Runtime& rt, const GemmShape& shape, const GemmChoice& choice, Operands& o,
                int repeats) {
  std::vector<double> ms;
  rt.profiler().set_enabled(true);
  for (int r = 0; r < repeats; ++r) {
    rt.profiler().reset();
    launch(rt, shape, choice, o);
    rt.finish();
    ms.push_back(rt.profiler().collect() * 1e-6);
  }
  rt.profiler().set_enabled(false);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

std::string GemmChoice::label() const {
  return on_tensor_cores(precision) ? precision_name(precision) + " " + tf32.config.label()
                                    : fp32.config.label();
}

GemmChoice planned_choice(const DeviceInfo& device, const GemmShape& shape, Precision precision) {
  GemmChoice choice;
  choice.precision = precision;
  if (on_tensor_cores(precision))
    choice.tf32 = plan_gemm_tf32(device, shape.spec, shape.bias, precision);
  else
    choice.fp32 = plan_gemm(device, shape.spec, shape.bias);
  return choice;
}

GemmMeasurement measure_gemm(Runtime& rt, const GemmShape& shape, const GemmChoice& choice,
                             int repeats, int samples) {
  Operands o = make_operands(rt, shape);
  GemmMeasurement m{shape, choice};
  launch(rt, shape, choice, o);
  rt.finish();
  m.relative_error = sampled_error(rt, shape, o, samples);
  m.ms = timed_ms(rt, shape, choice, o, repeats);
  m.tflops = shape.flops() / (m.ms * 1e-3) * 1e-12;
  return m;
}

namespace {

std::string today() {
  std::time_t now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

// Likely winners first, so a sweep cut short by its time limit has tried them: 256
// work-items, then 128; 64 accumulators per work-item, then 32; then larger tiles.
void order_by_promise(std::vector<GemmConfig>& space) {
  auto rank = [](const GemmConfig& c) {
    const size_t wg = c.work_group_size();
    const int acc = c.wpt_m * c.wpt_n;
    return std::make_tuple(wg == 256 ? 0 : wg == 128 ? 1 : 2, acc == 64 ? 0 : acc == 32 ? 1 : 2,
                           -(c.tile_m * c.tile_n), c.tile_k == 8 ? 0 : c.tile_k == 16 ? 1 : 2);
  };
  std::stable_sort(space.begin(), space.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
}

// tf32: the recommended configurations first, then the rest of the space, work-groups of
// 4 warps before 2 and before more (every class's winner on the H200 on 2026-12-01 had 4),
// larger tiles first within each.
std::vector<Tf32GemmConfig> tf32_in_order_of_promise(const DeviceInfo& device, bool split) {
  std::vector<Tf32GemmConfig> space = tf32_tuning_space(device, split), ordered;
  for (const auto& c : tf32_recommended_configs(split))
    if (std::find(space.begin(), space.end(), c) != space.end()) ordered.push_back(c);
  auto rank = [](const Tf32GemmConfig& c) {
    const int warps = c.warps_m * c.warps_n;
    return std::make_tuple(warps == 4 ? 0 : warps == 2 ? 1 : 2, -(c.tile_m * c.tile_n), c.tile_k);
  };
  std::stable_sort(space.begin(), space.end(),
                   [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  for (const auto& c : space)
    if (std::find(ordered.begin(), ordered.end(), c) == ordered.end()) ordered.push_back(c);
  return ordered;
}

// The choices tried for a shape class: every configuration of the precision's space, and
// where every product of the class may split K, each with 2–16 slices of at least 256.
std::vector<GemmChoice> candidate_choices(const DeviceInfo& device, Precision precision,
                                          const std::vector<const GemmShape*>& shapes) {
  bool splittable = true;
  int shortest_k = std::numeric_limits<int>::max();
  for (const GemmShape* s : shapes) {
    splittable = splittable && gemm_splittable(s->spec, s->bias);
    shortest_k = std::min(shortest_k, s->spec.K);
  }
  std::vector<GemmChoice> choices;
  auto add_splits = [&](GemmChoice c) {
    for (int splits : {1, 2, 4, 8, 16})
      if (splits == 1 || (splittable && shortest_k / splits >= 256)) {
        c.fp32.k_splits = c.tf32.k_splits = splits;
        choices.push_back(c);
      }
  };
  GemmChoice c;
  c.precision = precision;
  c.fp32.source = c.tf32.source = "tuning";
  if (on_tensor_cores(precision)) {
    for (const auto& config : tf32_in_order_of_promise(device, precision == Precision::tf32x3))
      c.tf32.config = config, add_splits(c);
  } else {
    std::vector<GemmConfig> space = gemm_tuning_space(device);
    order_by_promise(space);
    for (const auto& config : space) c.fp32.config = config, add_splits(c);
  }
  return choices;
}

// The program (file and build options) and kernel a choice launches for `spec`: exactly the
// one launch() builds (for tf32, VECTOR_IO where the rows are aligned, as
// launch_gemm_tf32 decides), so that the batch compiled in parallel is what gets timed.
struct ChoiceProgram {
  std::string file, options, kernel;
  size_t work_group_size;
};
ChoiceProgram program_of(const GemmChoice& c, const Ops::GemmSpec& spec) {
  if (on_tensor_cores(c.precision))
    return {kTf32KernelFile,
            c.tf32.config.build_options(spec.trans_a, spec.trans_b, false, gemm_rows_aligned(spec)),
            "gemm_tf32", c.tf32.config.work_group_size()};
  return {kGemmKernelFile, gemm_build_options(c.fp32.config, spec), "gemm",
          c.fp32.config.work_group_size()};
}

// The class's products run as `plan`, each once to warm up and then timed, weighted by
// launches per step; nothing if the compiler rejects the configuration or allows fewer
// work-items than it needs (registers).
std::optional<double> weighted_ms(Runtime& rt, const std::vector<const GemmShape*>& members,
                                  std::vector<Operands>& operands, const GemmChoice& choice) {
  try {
    const ChoiceProgram p = program_of(choice, members[0]->spec);
    cl::Kernel kernel = rt.kernel(p.file, p.kernel, p.options);
    if (p.work_group_size > kernel.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(rt.device().device))
      return std::nullopt;
    double ms = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      launch(rt, *members[i], choice, operands[i]);
      ms += members[i]->per_step * timed_ms(rt, *members[i], choice, operands[i], 2);
    }
    return ms;
  } catch (const Error&) {
    return std::nullopt;
  }
}


}  // namespace

GemmTuneResult tune_gemm(Runtime& rt, const std::vector<GemmShape>& shapes, double seconds,
                         Precision precision) {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::map<std::string, std::vector<const GemmShape*>> classes;
  std::vector<std::string> order;
  for (const auto& s : shapes) {
    const std::string c = gemm_shape_class(s.spec);
    if (!classes.count(c)) order.push_back(c);
    classes[c].push_back(&s);
  }
  GemmTuneResult result;
  for (size_t c = 0; c < order.size(); ++c) {
    const std::string& shape_class = order[c];
    const auto& members = classes[shape_class];
    const auto plans = candidate_choices(rt.device(), precision, members);
    // Each class gets an equal share of the time that is left, and at least its first batch
    // (the most promising plans), so a class that overran cannot starve the ones after it;
    // the sweep may outlast `seconds` by a batch per class.
    const auto now = Clock::now();
    const auto left = std::max(decltype(end - now)::zero(), end - now);
    const auto deadline = now + left / int(order.size() - c);
    std::vector<Operands> operands;
    for (const GemmShape* s : members) operands.push_back(make_operands(rt, *s));
    std::vector<GemmTuneResult::Trial> trials;
    // Compiled a batch at a time (in parallel), so the time limit also bounds compilation.
    constexpr size_t kBatch = 8;
    for (size_t first = 0; first < plans.size(); first += kBatch) {
      const size_t last = std::min(plans.size(), first + kBatch);
      if (first > 0 && Clock::now() >= deadline) {
        result.skipped += plans.size() - first;
        break;
      }
      std::vector<std::string> options;
      for (size_t i = first; i < last; ++i) options.push_back(program_of(plans[i], members[0]->spec).options);
      rt.build_programs(program_of(plans[first], members[0]->spec).file, options);
      for (size_t i = first; i < last; ++i)
        if (auto ms = weighted_ms(rt, members, operands, plans[i]))
          trials.push_back({shape_class, plans[i], *ms});
    }
    operands.clear();
    std::sort(trials.begin(), trials.end(),
              [](const auto& x, const auto& y) { return x.ms < y.ms; });
    for (const auto& t : trials) {  // the fastest that computes the right thing
      const GemmShape& first = *members[0];
      GemmMeasurement check = measure_gemm(rt, first, t.choice, 3);
      if (!(check.relative_error < check_tolerance(precision))) continue;
      GemmTuningEntry e;
      e.device = rt.device().name, e.precision = precision_name(precision);
      e.shape_class = shape_class;
      e.config = t.choice.fp32.config, e.tf32 = t.choice.tf32.config;
      e.k_splits = t.choice.k_splits();
      e.driver = rt.device().driver_version, e.date = today();
      e.shape = gemm_profile_name(first.spec), e.tflops = check.tflops;
      result.winners.push_back(e);
      break;
    }
    result.trials.insert(result.trials.end(), trials.begin(), trials.end());
  }
  return result;
}

}  // namespace attnscope
