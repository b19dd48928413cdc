#include "telemetry/sysfs_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
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

const char* file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

FileValue<std::string> read_text_file(const std::filesystem::path& path) {
  // Non-blocking, so that opening a FIFO planted where a counter should be returns at
  // once; sysfs attributes are regular files, and nothing else is read.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int open_errno = errno;
    return {std::nullopt, read_error(path, open_errno), open_errno};
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) return {std::nullopt, read_error(path, EISDIR), EISDIR};
    return {std::nullopt, "cannot read " + path.string() + ": not a regular file (" + file_kind(st.st_mode) + ")",
            EINVAL};
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
