#include "model/binary_file.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"

namespace attnscope {

namespace fs = std::filesystem;

std::string file_message(const std::string& what, const std::string& path, const std::string& problem) {
  return what + " " + path + ": " + problem;
}

std::ifstream open_binary_input(const std::string& what, const std::string& path, uint64_t* size) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw UsageError(file_message(what, path, "no such file"));
  if (!fs::is_regular_file(status)) throw UsageError(file_message(what, path, "not a regular file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(file_message(what, path, std::string("cannot open: ") + std::strerror(errno)));
  *size = fs::file_size(path, ec);
  if (ec) throw UsageError(file_message(what, path, "cannot read its size: " + ec.message()));
  if (*size == 0 && in.peek() != std::ifstream::traits_type::eof())
    throw UsageError(file_message(what, path, "not a regular file: its size reads 0 but it holds data "
                                              "(as files under /proc do); copy it to a regular file"));
  return in;
}

void read_bytes(std::ifstream& in, void* dst, uint64_t bytes, const std::string& what,
                const std::string& path) {
  in.read(static_cast<char*>(dst), std::streamsize(bytes));
  if (uint64_t(in.gcount()) != bytes)
    throw Error(file_message(what, path, "read failed after " + std::to_string(in.gcount()) +
                                             " of " + std::to_string(bytes) + " bytes"));
}

void write_file_atomically(const std::string& what, const std::string& path,
                           const void* header, uint64_t header_bytes,
                           const void* body, uint64_t body_bytes) {
  OutputFile file(what, path);
  file.write(header, header_bytes);
  file.write(body, body_bytes);
  file.commit();
}

}  // namespace attnscope
