// Reading the small text files of sysfs (one value per file). A failed read carries the
// reason — the path and the system's error — because a source that cannot be read is
// reported as unavailable with exactly that reason.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace attnscope {

template <typename T>
struct FileValue {
  std::optional<T> value;
  std::string error;      // set when value is absent: "cannot read <path>: <strerror>"
  int error_number = 0;   // errno of a failed open or read, 0 for a malformed value
};

// The whole file, trailing whitespace removed. Anything but a regular file (a FIFO, a
// device, a directory) is an error, found without blocking.
FileValue<std::string> read_text_file(const std::filesystem::path& path);

// A file holding one non-negative decimal integer.
FileValue<uint64_t> read_unsigned_file(const std::filesystem::path& path);

// Where sysfs is, given the configured root: <root>/sys when that holds class/, else
// <root> itself when it does (the root named a sysfs mount, e.g. /host/sys), else
// <root>/sys (whose absence each source then reports).
std::filesystem::path resolve_sysfs_dir(const std::string& root);

}  // namespace attnscope
