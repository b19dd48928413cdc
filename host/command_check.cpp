// `attnscope check`: every attention variant's device forward and backward against its
// CPU reference on the user's own device (OpenCL drivers differ), one line per case.
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "host/commands.hpp"
#include "host/options.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
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
  AttentionBackward attention_backward = AttentionBackward::automatic;
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

// What the cases came to: a case either compared (passed or not) or could not run (its
// kernel did not build, an allocation failed, its dump could not be written).
struct CheckTally {
  size_t total = 0, mismatched = 0, could_not_run = 0, dumped = 0;
  std::string first_problem;
  ExitCode first_problem_code = ExitCode::kFailure;
};

// One case, reported on its line; the other cases still run after a failure.
void check_one(Ops& ops, const CheckOptions& o, const std::string& variant, size_t index,
               const VariantCheckCase& c, CheckTally& tally) {
  ++tally.total;
  auto could_not_run = [&](const std::string& message, ExitCode code) {
    std::cout << variant << "  " << c.label() << "  error: " << message << "  FAIL" << std::endl;
    if (tally.could_not_run++ == 0) {
      tally.first_problem = variant + " " + c.label() + ": " + message;
      tally.first_problem_code = code;
    }
  };
  try {
    VariantCheckResult r = check_variant(ops, variant, c, case_dump_dir(o, variant, index, c));
    std::cout << format_check_result(r) << std::endl;
    if (!o.dump_dir.empty()) ++tally.dumped;
    if (!r.passed) ++tally.mismatched;
  } catch (const Error& e) {
    could_not_run(e.what(), e.code());
  } catch (const std::exception& e) {
    could_not_run(e.what(), ExitCode::kFailure);
  }
}

// One line per program a variant's checks launched: its file, build options (the tiles;
// for matmul.cl the GEMM plan's configuration) and the launches' names (a GEMM split into
// K-slices is named ..._splitN), so the output shows what ran on this device.
void print_programs_run(const std::string& variant, const std::vector<Runtime::LaunchRecord>& log) {
  std::map<std::pair<std::string, std::string>, std::set<std::string>> programs;
  for (const auto& launch : log) programs[{launch.file, launch.options}].insert(launch.name);
  for (const auto& [program, names] : programs) {
    std::cout << variant << "  ran " << program.first;
    if (!program.second.empty()) std::cout << " " << program.second;
    std::cout << ":";
    for (const auto& name : names) std::cout << " " << name;
    std::cout << "\n";
  }
}

// Usage errors before anything runs: the variant options against the --shape case, and a
// --dump directory that cannot be created.
void check_usage(const CheckOptions& o, const std::vector<std::string>& variants,
                 const std::vector<VariantCheckCase>& cases) {
  if (!o.shape.empty())
    for (const auto& variant : variants) make_variant(variant, cases[0].options)->resolve(cases[0].dims);
  if (!o.dump_dir.empty()) prepare_output_directory("--dump " + o.dump_dir, o.dump_dir);
}

// With the fused backward: that the tiled attention's dQ is not bitwise reproducible, and
// which atomics the device got (and why not the vendor's).
std::string attention_backward_note(const Ops& ops) {
  if (ops.attention_backward() != AttentionBackward::fused) return "";
  const AtomicAddPath& atomics = ops.atomic_add();
  return ", fused attention backward (dQ by float atomics, not bitwise reproducible: " +
         atomics_probe_result(atomics) + ")";
}

void run_check(const CheckOptions& o) {
  const std::vector<std::string> variants = parse_variant_list(o.variants);
  const auto cases = cases_to_check(o);
  check_usage(o, variants, cases);
  Runtime rt(o.device, /*profiling=*/false);
  Ops ops(rt, o.precision, o.attention_backward);
  // The limits the tiles were sized from: a failure on one device but not another often
  // comes down to them.
  const DeviceInfo& device = rt.device();
  std::cout << "checking on " << device.short_label() << " (" << device.version << "; "
            << device.type_name() << ", " << device.compute_units << " compute units, "
            << (device.local_mem_bytes >> 10) << " KiB local memory, work-groups up to "
            << device.max_work_group_size << ", GEMM tuning '" << device.tuning_key() << "'), "
            << precision_name(o.precision) << attention_backward_note(ops)
            << ", tolerance " << std::setprecision(0) << std::scientific
            << check_tolerance(o.precision) << std::defaultfloat << std::setprecision(6)
            << " relative to the CPU reference"
            << std::endl;
  CheckTally tally;
  for (const auto& variant : variants) {
    std::vector<Runtime::LaunchRecord> launches;
    rt.set_launch_log(&launches);
    for (size_t i = 0; i < cases.size(); ++i) check_one(ops, o, variant, i, cases[i], tally);
    rt.set_launch_log(nullptr);
    print_programs_run(variant, launches);
  }
  if (tally.dumped > 0)
    std::cout << "tensors of " << tally.dumped << " cases written under " << o.dump_dir << std::endl;
  const std::string of_total = " of " + std::to_string(tally.total) + " variant checks ";
  const std::string on_device = " on " + rt.device().short_label();
  if (tally.could_not_run > 0)
    throw Error(std::to_string(tally.could_not_run) + of_total + "could not run" + on_device +
                    (tally.mismatched ? " (and " + std::to_string(tally.mismatched) + " failed their comparison)" : "") +
                    "; the first: " + tally.first_problem,
                tally.first_problem_code);
  if (tally.mismatched > 0)
    throw Error(std::to_string(tally.mismatched) + of_total + "failed" + on_device);
  std::cout << "all " << tally.total << " checks passed" << std::endl;
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
  add_attention_backward_option(cmd, options->attention_backward);
  cmd->callback([options] { run_check(*options); });
}

}  // namespace attnscope
