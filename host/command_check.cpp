// `attnscope check`: every attention variant's device forward and backward against its
// CPU reference on the user's own device (OpenCL drivers differ), one line per case.
#include <iostream>
#include <memory>
#include <string>

#include "host/commands.hpp"
#include "host/options.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/runtime.hpp"
#include "model/ops.hpp"
#include "model/registry.hpp"
#include "model/variant_check.hpp"

namespace attnscope {

namespace {

struct CheckOptions {
  std::string variants = "all";
  std::string device;
  std::string dump_dir;
  std::vector<int> shape;     // B,T,C,H: one case at the user's own size instead of the standard ones
  AttentionOptions attention;  // for that case
  Precision precision = Precision::fp32;
};

std::vector<VariantCheckCase> cases_to_check(const CheckOptions& o) {
  if (o.shape.empty()) return standard_check_cases();
  VariantCheckCase c;
  c.dims = {o.shape[0], o.shape[1], o.shape[2], o.shape[3]};
  if (c.dims.C % c.dims.H != 0)
    throw UsageError("--shape: C (" + std::to_string(c.dims.C) + ") must be a multiple of H (" +
                     std::to_string(c.dims.H) + ")");
  c.options = o.attention;
  return {c};
}

// "<dump>/<variant>/<case index>_B2_T37_C64_H4", or "" without --dump.
std::string case_dump_dir(const CheckOptions& o, const std::string& variant, size_t index,
                          const VariantCheckCase& c) {
  if (o.dump_dir.empty()) return "";
  std::string label = c.label();
  for (char& ch : label)
    if (ch == ' ') ch = '_';
  return o.dump_dir + "/" + variant + "/" + std::to_string(index) + "_" + label;
}

// One case; an exception (a kernel that does not build, a variant that rejects the
// shape) is that case's failure, reported on its line, and the other cases still run.
bool check_one(Ops& ops, const CheckOptions& o, const std::string& variant, size_t index,
               const VariantCheckCase& c) {
  try {
    VariantCheckResult r = check_variant(ops, variant, c, case_dump_dir(o, variant, index, c));
    std::cout << format_check_result(r) << std::endl;
    return r.passed;
  } catch (const std::exception& e) {
    std::cout << variant << "  " << c.label() << "  error: " << e.what() << "  FAIL" << std::endl;
    return false;
  }
}

void run_check(const CheckOptions& o) {
  const std::vector<std::string> variants = parse_variant_list(o.variants);
  const auto cases = cases_to_check(o);
  Runtime rt(o.device, /*profiling=*/false);
  Ops ops(rt, o.precision);
  // The limits the tiles were sized from: a failure on one device but not another often
  // comes down to them.
  std::cout << "checking on " << rt.device().short_label() << " (" << rt.device().version << "; "
            << (rt.device().local_mem_bytes >> 10) << " KiB local memory, work-groups up to "
            << rt.device().max_work_group_size << "), " << precision_name(o.precision)
            << ", tolerance " << (o.precision == Precision::tf32 ? "5e-3" : "1e-4")
            << " relative to the CPU reference"
            << std::endl;
  size_t failed = 0, total = 0;
  for (const auto& variant : variants)
    for (size_t i = 0; i < cases.size(); ++i, ++total)
      if (!check_one(ops, o, variant, i, cases[i])) ++failed;
  if (!o.dump_dir.empty()) std::cout << "tensors written under " << o.dump_dir << std::endl;
  if (failed > 0)
    throw Error(std::to_string(failed) + " of " + std::to_string(total) +
                " variant checks failed on " + rt.device().short_label());
  std::cout << "all " << total << " checks passed" << std::endl;
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto options = std::make_shared<CheckOptions>();
  auto* cmd = app.add_subcommand(
      "check", "Check each attention variant's kernels against the CPU reference on this device");
  cmd->add_option("--variant", options->variants, "variant name, a,b,c or all")
      ->capture_default_str();
  cmd->add_option("--device", options->device,
                  "OpenCL device: P:D or part of its name (default: first GPU, else CPU)");
  cmd->add_option("--dump", options->dump_dir,
                  "write each case's tensors (.npy) and index.json under this directory");
  cmd->add_option("--shape", options->shape,
                  "B,T,C,H: check one case of this size (e.g. the benchmark's) instead of the "
                  "standard small cases; the CPU reference costs O(B·T²·C)")
      ->delimiter(',')
      ->expected(4)
      ->check(kSize);
  add_attention_options(cmd, options->attention);
  add_precision_option(cmd, options->precision);
  cmd->callback([options] { run_check(*options); });
}

}  // namespace attnscope
