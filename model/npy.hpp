// A minimal NumPy .npy writer (format v1.0, little-endian, C order): enough for
// `attnscope check --dump` to hand tensors to NumPy / PyTorch (numpy.load reads them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnscope {

// Writes data (product of shape elements) as '<f4' / '<i4'. Throws Error naming the path
// when the file cannot be written or the data does not match the shape.
void write_npy(const std::string& path, const std::vector<size_t>& shape,
               const std::vector<float>& data);
void write_npy(const std::string& path, const std::vector<size_t>& shape,
               const std::vector<int32_t>& data);

}  // namespace attnscope
