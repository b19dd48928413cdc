#include "model/variant_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
#include "model/npy.hpp"
#include "model/registry.hpp"

namespace attnscope {

double check_tolerance(Precision precision) {
  // fp32 against the double-accumulation reference. TF32 keeps 10 of fp32's 23 mantissa
  // bits: each operand of a product is off by up to 2^-11 ≈ 4.9e-4 relative, so a variant
  // whose products run on tensor cores lands near 1e-3; 5e-3 leaves room for the softmax
  // and the backward chain without letting a wrong kernel (errors ≳ 1e-1) through. 3xtf32
  // claims fp32 accuracy, so it is held to fp32's tolerance.
  return precision == Precision::tf32 ? 5e-3 : 1e-4;
}

namespace {

std::vector<float> normal_vector(std::mt19937_64& rng, size_t n, float stddev) {
  std::normal_distribution<float> normal(0.f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// ‖a − b‖ / ‖b‖ in double; anything non-finite in a gives +inf (a poisoned element
// that was never written must fail, never compare equal).
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::vector<size_t> activation_shape(const AttentionDims& d) {
  return {size_t(d.B), size_t(d.T), size_t(d.C)};
}

std::vector<const float*> const_pointers(const std::vector<std::vector<float>>& tensors) {
  std::vector<const float*> p;
  for (const auto& t : tensors) p.push_back(t.data());
  return p;
}

DeviceBuffer upload_new(Runtime& rt, const std::vector<float>& host, const std::string& label) {
  DeviceBuffer buffer = rt.alloc_floats(host.size(), label);
  rt.upload(buffer, host.data(), host.size() * sizeof(float));
  return buffer;
}

DeviceBuffer poisoned_buffer(Runtime& rt, size_t floats, const std::string& label) {
  DeviceBuffer buffer = rt.alloc_floats(floats, label);
  rt.fill(buffer, std::numeric_limits<float>::quiet_NaN(), floats);
  return buffer;
}

}  // namespace

std::string VariantCheckCase::label() const {
  return "B" + std::to_string(dims.B) + " T" + std::to_string(dims.T) + " C" +
         std::to_string(dims.C) + " H" + std::to_string(dims.H);
}

double VariantCheckResult::max_error() const {
  double worst = std::max(out_error, dx_error);
  for (const auto& [name, error] : dparam_errors) worst = std::max(worst, error);
  return worst;
}

VariantInputs random_variant_inputs(const AttentionVariant& variant, const AttentionDims& dims,
                                    uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t activations = size_t(dims.B) * dims.T * dims.C;
  VariantInputs in;
  in.x = normal_vector(rng, activations, 1.f);
  for (const TensorSpec& spec : variant.parameters(dims)) {
    const float stddev =
        spec.shape.size() >= 2 ? float(1.0 / std::sqrt(double(spec.shape.back()))) : 0.1f;
    in.params.push_back(normal_vector(rng, spec.count(), stddev));
  }
  in.dout = normal_vector(rng, activations, 1.f);
  return in;
}

VariantOutputs run_variant_on_device(Ops& ops, AttentionVariant& variant,
                                     const AttentionDims& dims, const StepContext& step,
                                     const VariantInputs& inputs, uint64_t seed) {
  Runtime& rt = ops.runtime();
  const size_t activations = size_t(dims.B) * dims.T * dims.C;
  std::mt19937_64 rng(seed);
  std::vector<DeviceBuffer> param_buffers, grad_buffers;
  std::vector<cl::Buffer> params, grads;
  std::vector<std::vector<float>> grad_start;
  for (const auto& p : inputs.params) {
    param_buffers.push_back(upload_new(rt, p, "check parameter"));
    params.push_back(param_buffers.back());
    // Of the order of the gradients at these input scales, so subtracting loses little.
    grad_start.push_back(normal_vector(rng, p.size(), 1.f));
    grad_buffers.push_back(upload_new(rt, grad_start.back(), "check gradient"));
    grads.push_back(grad_buffers.back());
  }
  DeviceBuffer x = upload_new(rt, inputs.x, "check x");
  DeviceBuffer dout = upload_new(rt, inputs.dout, "check dout");
  DeviceBuffer out = poisoned_buffer(rt, activations, "check out");
  DeviceBuffer dx = poisoned_buffer(rt, activations, "check dx");

  auto acts = variant.allocate(ops, dims);
  const DeviceArgs args{ops, dims, step, params, x, *acts};
  variant.forward(args, out);
  variant.backward(args, {dout, dx, grads});

  VariantOutputs result;
  result.out = rt.download_vector<float>(out, activations);
  result.dx = rt.download_vector<float>(dx, activations);
  for (size_t i = 0; i < grads.size(); ++i) {
    std::vector<float> g = rt.download_vector<float>(grads[i], grad_start[i].size());
    for (size_t j = 0; j < g.size(); ++j) g[j] = float(double(g[j]) - grad_start[i][j]);
    result.dparams.push_back(std::move(g));
  }
  return result;
}

VariantOutputs run_variant_reference(const AttentionVariant& variant, const AttentionDims& dims,
                                     const StepContext& step, const VariantInputs& inputs) {
  const size_t activations = size_t(dims.B) * dims.T * dims.C;
  VariantOutputs result;
  result.out.assign(activations, 0.f);
  result.dx.assign(activations, 0.f);
  std::vector<float*> dparams;
  for (const auto& p : inputs.params) {
    result.dparams.emplace_back(p.size(), 0.f);
    dparams.push_back(result.dparams.back().data());
  }
  const auto params = const_pointers(inputs.params);
  const ReferenceArgs args{dims, step, params, inputs.x.data()};
  variant.reference_forward(args, result.out.data());
  variant.reference_backward(args, {inputs.dout.data(), result.dx.data(), dparams});
  return result;
}

namespace {

// Every variant's options as given (defaults where not), and the seed.
nlohmann::json options_json(const AttentionOptions& o) {
  nlohmann::json json = option_values(o);
  json["seed"] = o.seed;
  return json;
}

// Writes <prefix><name>.npy into dir; records files[name] = file and shapes[file] = shape.
void dump_tensor(const std::string& dir, const std::string& prefix, const std::string& name,
                 const std::vector<size_t>& shape, const std::vector<float>& data,
                 nlohmann::json& files, nlohmann::json& shapes) {
  const std::string file = prefix + name + ".npy";
  write_npy(dir + "/" + file, shape, data);
  files[name] = file;
  shapes[file] = shape;
}

void write_dump(const std::string& dir, const AttentionVariant& variant,
                const VariantCheckResult& result, const VariantInputs& in,
                const VariantOutputs& ref) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create dump directory " + dir + ": " + ec.message());
  const AttentionDims& dims = result.c.dims;
  const auto specs = variant.parameters(dims);
  nlohmann::json files, shapes, params, grads, debug;
  dump_tensor(dir, "", "x", activation_shape(dims), in.x, files, shapes);
  dump_tensor(dir, "", "dout", activation_shape(dims), in.dout, files, shapes);
  dump_tensor(dir, "", "out", activation_shape(dims), ref.out, files, shapes);
  dump_tensor(dir, "", "dx", activation_shape(dims), ref.dx, files, shapes);
  for (size_t i = 0; i < specs.size(); ++i) {
    dump_tensor(dir, "param_", specs[i].name, specs[i].shape, in.params[i], params, shapes);
    dump_tensor(dir, "grad_", specs[i].name, specs[i].shape, ref.dparams[i], grads, shapes);
  }
  for (const NamedTensor& t : variant.debug_tensors(dims, StepContext{result.c.step}))
    dump_tensor(dir, "debug_", t.name, t.shape, t.data, debug, shapes);
  nlohmann::json errors = {{"out", result.out_error}, {"dx", result.dx_error}};
  for (const auto& [name, error] : result.dparam_errors) errors["grad_" + name] = error;
  nlohmann::json index = {
      {"variant", result.variant},
      {"options", options_json(result.c.options)},
      {"resolved_options", result.options},
      {"dims", {{"B", dims.B}, {"T", dims.T}, {"C", dims.C}, {"H", dims.H}}},
      {"seed", result.c.seed},
      {"step", result.c.step},
      {"note", "out, dx and grad_* are the CPU reference's (double accumulation); "
               "grad_* are the gradients of sum(out * dout) accumulated from zero"},
      {"inputs", {{"x", files["x"]}, {"dout", files["dout"]}}},
      {"parameters", params},
      {"reference", {{"out", files["out"]}, {"dx", files["dx"]}, {"grads", grads}}},
      {"debug", debug},
      {"shapes", shapes},
      {"device_errors", errors},
      {"tolerance", result.tolerance},
      {"passed", result.passed}};
  write_output_file("dump index", dir + "/index.json", index.dump(2) + "\n");
}

}  // namespace

VariantCheckResult check_variant(Ops& ops, const std::string& name, const VariantCheckCase& c,
                                 const std::string& dump_dir) {
  auto variant = make_variant(name, c.options);
  variant->resolve(c.dims);
  const StepContext step{c.step};
  const VariantInputs inputs = random_variant_inputs(*variant, c.dims, c.seed);
  const VariantOutputs device = run_variant_on_device(ops, *variant, c.dims, step, inputs, c.seed + 1);
  const VariantOutputs ref = run_variant_reference(*variant, c.dims, step, inputs);

  VariantCheckResult r;
  r.variant = name;
  r.options = variant->describe_options();
  r.c = c;
  r.tolerance = check_tolerance(ops.precision());
  r.out_error = relative_error(device.out, ref.out);
  r.dx_error = relative_error(device.dx, ref.dx);
  const auto specs = variant->parameters(c.dims);
  for (size_t i = 0; i < specs.size(); ++i)
    r.dparam_errors.emplace_back(specs[i].name, relative_error(device.dparams[i], ref.dparams[i]));
  r.passed = r.max_error() < r.tolerance;  // NaN/inf errors compare false: a failure
  if (!dump_dir.empty()) write_dump(dump_dir, *variant, r, inputs, ref);
  return r;
}

std::vector<VariantCheckCase> standard_check_cases() {
  struct Shape {
    AttentionDims dims;
    int window, chunk, buckets, kv_heads;
  };
  // T = 1; T = 37 and 70, multiples of no tile; a tile-friendly T = 16; head sizes 16, 32,
  // 64 and 128; B = 2 twice. kv_heads 2 of 4 makes gqa share K/V across real groups.
  const Shape shapes[] = {
      {{1, 1, 32, 2}, 8, 8, 4, 0},    {{2, 37, 64, 4}, 8, 8, 4, 2},
      {{1, 70, 64, 2}, 16, 16, 4, 0}, {{2, 16, 128, 2}, 8, 8, 4, 1},
      {{1, 33, 128, 1}, 8, 16, 4, 0},
  };
  std::vector<VariantCheckCase> cases;
  for (const Shape& s : shapes) {
    VariantCheckCase c;
    c.dims = s.dims;
    c.options.values = {
        {"window", s.window}, {"chunk", s.chunk}, {"buckets", s.buckets}, {"kv_heads", s.kv_heads}};
    c.seed = 1000 + cases.size();
    c.options.seed = c.seed;
    c.step = int64_t(cases.size());
    cases.push_back(c);
  }
  return cases;
}

std::string format_check_result(const VariantCheckResult& r) {
  char errors[96];
  std::snprintf(errors, sizeof errors, "out %.1e  dx %.1e", r.out_error, r.dx_error);
  std::string line = r.variant + "  " + r.c.label();
  if (!r.options.empty()) line += " [" + r.options + "]";
  line += "  " + std::string(errors) + "  grads";
  for (const auto& [name, error] : r.dparam_errors) {
    char item[64];
    std::snprintf(item, sizeof item, " %s %.1e", name.c_str(), error);
    line += item;
  }
  return line + (r.passed ? "  PASS" : "  FAIL");
}

}  // namespace attnscope
