// The correctness harness of the attention variants, shared by the tests and by
// `attnscope check` (which runs it on the user's own device, because OpenCL drivers
// differ): a variant's device forward and backward against its CPU reference on fresh
// random inputs, every output poisoned first so an unwritten element shows as NaN.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/attention_variant.hpp"
#include "model/ops.hpp"

namespace attnscope {

struct VariantCheckCase {
  AttentionDims dims;
  AttentionOptions options;
  uint64_t seed = 1;  // draws x, the weights, dout
  int64_t step = 0;   // StepContext of the run (LSH's rotations depend on it)
  std::string label() const;  // "B2 T37 C64 H4"
};

struct VariantCheckResult {
  std::string variant;
  std::string options;  // the variant's describe_options() after resolve()
  VariantCheckCase c;
  double out_error = 0, dx_error = 0;  // ‖device − reference‖ / ‖reference‖
  std::vector<std::pair<std::string, double>> dparam_errors;  // in parameters() order
  double tolerance = 1e-4;
  bool passed = false;
  double max_error() const;
};

// Host copies of one check's inputs: x (B,T,C), each parameter tensor, dout (B,T,C).
struct VariantInputs {
  std::vector<float> x, dout;
  std::vector<std::vector<float>> params;
};
// Results of one forward + backward: out, dx, and each parameter's gradient (from zero).
struct VariantOutputs {
  std::vector<float> out, dx;
  std::vector<std::vector<float>> dparams;
};

// Inputs drawn from seed: x, dout ~ N(0,1); matrices N(0, 1/√fan_in) so scores have
// std ≈ 1 (softmax far from uniform and far from one-hot at any C); vectors N(0, 0.1).
VariantInputs random_variant_inputs(const AttentionVariant& variant, const AttentionDims& dims,
                                    uint64_t seed);

// Device forward then backward of a resolved variant. out and dx are poisoned with NaN
// first; gradients start from known random values (they accumulate) that are subtracted
// afterwards, so an overwrite instead of += shows. seed draws those starting values.
VariantOutputs run_variant_on_device(Ops& ops, AttentionVariant& variant,
                                     const AttentionDims& dims, const StepContext& step,
                                     const VariantInputs& inputs, uint64_t seed = 7);
// The same through reference_forward/backward.
VariantOutputs run_variant_reference(const AttentionVariant& variant, const AttentionDims& dims,
                                     const StepContext& step, const VariantInputs& inputs);

// The relative error a check allows at this precision (fp32 and 3xtf32 1e-4, tf32 5e-3):
// `check`'s variants and `gemm`'s products alike.
double check_tolerance(Precision precision);

// Device against reference for one variant and case. With dump_dir, writes there (created
// if needed) x, every weight, dout, and the reference out, dx and dparams as .npy, the
// variant's debug_tensors(), and index.json naming them, for replay in another framework.
VariantCheckResult check_variant(Ops& ops, const std::string& name, const VariantCheckCase& c,
                                 const std::string& dump_dir = "");

// Shapes every variant is checked at: T = 1, T not a multiple of any tile (37, 70), head
// sizes 16..128, batch > 1; options scaled down (window 8, chunk 8/16, buckets 4,
// kv_heads 2) so windows, chunks and buckets are exercised at small T.
std::vector<VariantCheckCase> standard_check_cases();

// One line: variant, shape, options, errors, PASS/FAIL.
std::string format_check_result(const VariantCheckResult& r);

}  // namespace attnscope
