#include "model/binary_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "host/runtime/error.hpp"

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

// fwrite + fsync; false on any failure (errno says why).
static bool write_and_sync(std::FILE* f, const void* header, uint64_t header_bytes,
                           const void* body, uint64_t body_bytes) {
  return std::fwrite(header, 1, header_bytes, f) == header_bytes &&
         std::fwrite(body, 1, body_bytes, f) == body_bytes && std::fflush(f) == 0 &&
         fsync(fileno(f)) == 0;
}

void write_file_atomically(const std::string& what, const std::string& path,
                           const void* header, uint64_t header_bytes,
                           const void* body, uint64_t body_bytes) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(file_message(what, tmp, std::string("cannot create: ") + std::strerror(errno)));
  bool ok = write_and_sync(f, header, header_bytes, body, body_bytes);
  ok = (std::fclose(f) == 0) && ok;
  std::error_code ec;
  if (!ok) {
    const std::string reason = std::strerror(errno);
    fs::remove(tmp, ec);
    throw Error(file_message(what, tmp, "write failed: " + reason));
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string reason = ec.message();
    fs::remove(tmp, ec);
    throw Error(file_message(what, path, "cannot rename " + tmp + " into place: " + reason));
  }
}

}  // namespace attnscope
