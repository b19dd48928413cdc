#include "telemetry/sysfs_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace attnscope {
namespace {

std::string read_error(const std::filesystem::path& path, int error_number) {
  return "cannot read " + path.string() + ": " + std::strerror(error_number);
}

}  // namespace

FileValue<std::string> read_text_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int open_errno = errno;
    return {std::nullopt, read_error(path, open_errno), open_errno};
  }
  // sysfs attributes are at most one page; a longer file is not a sysfs value.
  char buffer[4096];
  ssize_t n;
  do {
    n = ::read(fd, buffer, sizeof buffer);
  } while (n < 0 && errno == EINTR);
  int read_errno = errno;
  ::close(fd);
  if (n < 0) return {std::nullopt, read_error(path, read_errno), read_errno};
  std::string text(buffer, size_t(n));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return {text, {}, 0};
}

FileValue<uint64_t> read_unsigned_file(const std::filesystem::path& path) {
  FileValue<std::string> text = read_text_file(path);
  if (!text.value) return {std::nullopt, text.error, text.error_number};
  const std::string& s = *text.value;
  bool all_digits = !s.empty() && s.size() <= 20 &&
                    s.find_first_not_of("0123456789") == std::string::npos;
  if (!all_digits) return {std::nullopt, path.string() + " does not hold an unsigned integer: '" + s + "'"};
  errno = 0;
  uint64_t value = std::strtoull(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return {std::nullopt, path.string() + " holds a value beyond 64 bits: " + s};
  return {value, {}, 0};
}

std::filesystem::path resolve_sysfs_dir(const std::string& root) {
  std::error_code ignored;
  std::filesystem::path base(root.empty() ? "/" : root);
  if (std::filesystem::is_directory(base / "sys" / "class", ignored)) return base / "sys";
  if (std::filesystem::is_directory(base / "class", ignored)) return base;
  return base / "sys";
}

}  // namespace attnscope
