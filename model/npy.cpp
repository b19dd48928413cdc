#include "model/npy.hpp"

#include <cstring>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"

namespace attnscope {

namespace {

// The header dict, padded with spaces and a newline so magic + lengths + dict is a
// multiple of 64 bytes (the v1.0 format asks for 16; NumPy itself writes 64).
std::string npy_header(const std::string& descr, const std::vector<size_t>& shape) {
  std::string dims;  // Python tuple syntax: "2, 3" but "5," for 1-D
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - preamble - dict.size() - 1, ' ');
  dict += '\n';
  return dict;
}

bool little_endian_host() {
  const uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

void write_raw(const std::string& path, const std::string& descr, const std::vector<size_t>& shape,
               const void* data, size_t count, size_t element_bytes) {
  size_t expected = 1;
  for (size_t s : shape) expected *= s;
  if (expected != count)
    throw Error("writing " + path + ": " + std::to_string(count) +
                " elements do not match the shape's " + std::to_string(expected));
  if (!little_endian_host()) throw Error("writing " + path + ": big-endian hosts are not supported");
  std::string header = npy_header(descr, shape);
  OutputFile out("npy file", path);
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const unsigned char length[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                   static_cast<unsigned char>(header.size() >> 8)};
  out.write(magic, sizeof magic);
  out.write(length, sizeof length);
  out.write(header);
  out.write(data, count * element_bytes);
  out.commit();
}

}  // namespace

void write_npy(const std::string& path, const std::vector<size_t>& shape,
               const std::vector<float>& data) {
  write_raw(path, "<f4", shape, data.data(), data.size(), sizeof(float));
}

void write_npy(const std::string& path, const std::vector<size_t>& shape,
               const std::vector<int32_t>& data) {
  write_raw(path, "<i4", shape, data.data(), data.size(), sizeof(int32_t));
}

}  // namespace attnscope
