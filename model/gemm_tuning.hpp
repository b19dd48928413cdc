// The GEMM tuning database (like CLBlast's src/database): for a device (by its OpenCL
// name), a precision and a shape class (model/gemm.hpp), the configuration and K split
// that `attnscope gemm --tune` measured fastest there. The committed table,
// model/gemm_tuning.json, is compiled into the binary; ATTNSCOPE_GEMM_TUNING=FILE reads
// another at run time. Devices without an entry get the planner's defaults.
#pragma once
#include <string>
#include <vector>

#include "model/gemm.hpp"
#include "model/tf32.hpp"

namespace attnscope {

struct GemmTuningEntry {
  std::string device;       // CL_DEVICE_NAME, matched exactly
  std::string precision;    // "fp32", "tf32" or "3xtf32"
  std::string shape_class;  // gemm_shape_class()
  GemmConfig config;       // precision fp32: matmul.cl's tiles
  Tf32GemmConfig tf32;     // precision tf32 or 3xtf32: matmul_tf32.cl's tiles (split for 3xtf32)
  bool on_tensor_cores() const { return precision == "tf32" || precision == "3xtf32"; }
  int k_splits = 1;
  // Provenance, for the reader: the driver, the shape it was tuned on, its TFLOP/s there
  // and the date.
  std::string driver, shape, date;
  double tflops = 0;
};

class GemmTuningTable {
 public:
  // Throws Error naming `origin` if the text is not a valid table.
  static GemmTuningTable parse(const std::string& json_text, const std::string& origin);
  std::string to_json() const;

  const GemmTuningEntry* find(const std::string& device, const std::string& precision,
                              const std::string& shape_class) const;
  // Adds the entries, replacing any with the same device, precision and shape class.
  void merge(const std::vector<GemmTuningEntry>& entries);
  const std::vector<GemmTuningEntry>& entries() const { return entries_; }

 private:
  std::vector<GemmTuningEntry> entries_;
};

// The table in use: $ATTNSCOPE_GEMM_TUNING if set, else the compiled-in one. Read once.
const GemmTuningTable& gemm_tuning_table();

}  // namespace attnscope
