#include "host/runtime/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

std::string message(const std::string& what, const std::string& path, const std::string& problem) {
  return what + " " + path + ": " + problem;
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// UsageError when the path is empty or names something other than a regular file (through
// a symlink too: a link to a FIFO is refused, not replaced).
void refuse_unless_regular_or_missing(const std::string& what, const std::string& path) {
  if (path.empty()) throw UsageError(what + ": an empty path names no file");
  struct stat st{};
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw UsageError(message(what, path, std::string("exists and is ") + kind_of(st.st_mode) +
                                             "; give the path of a regular file"));
}

// A new file beside path, created exclusively: an existing file or a symlink at a candidate
// name is skipped, never opened. Its name goes to *name.
int create_temporary(const std::string& what, const std::string& path, std::string* name) {
  const std::string stem = path + "." + std::to_string(getpid()) + ".";
  for (int n = 0; n < 1000; ++n) {
    *name = stem + std::to_string(n) + ".tmp";
    const int fd = open(name->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
      const int cause = errno;
      const std::string dir = directory_of(path);
      if (cause == ENOENT || cause == ENOTDIR)
        throw UsageError(message(what, path, "its directory " + dir + " does not exist"));
      throw UsageError(message(what, path, "cannot create a file in " + dir + ": " + std::strerror(cause)));
    }
  }
  throw UsageError(message(what, path, "cannot create a temporary file beside it (1000 names taken)"));
}

// 0, or the errno of the write that failed.
int write_all(int fd, const char* data, size_t bytes, off_t offset) {
  while (bytes > 0) {
    const ssize_t n = pwrite(fd, data, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    data += n;
    bytes -= size_t(n);
    offset += n;
  }
  return 0;
}

[[noreturn]] void throw_write_failure(const std::string& what, const std::string& path, int cause,
                                      const std::string& aftermath = "") {
  throw Error(message(what, path, std::string("write failed: ") + std::strerror(cause) + aftermath));
}

// Renames the finished temporary over path; the target is checked again just before.
void put_in_place(const std::string& what, const std::string& temporary, const std::string& path) {
  refuse_unless_regular_or_missing(what, path);
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    throw Error(message(what, path, "cannot rename " + temporary + " into place: " + std::strerror(errno)));
  // The rename itself on disk; a directory that cannot be synced changes nothing above.
  const int dir = open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
}

}  // namespace

void check_output_path(const std::string& what, const std::string& path) {
  refuse_unless_regular_or_missing(what, path);
  std::string temporary;
  close(create_temporary(what, path, &temporary));
  unlink(temporary.c_str());
}

void prepare_output_directory(const std::string& what, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw UsageError(what + ": cannot create the directory: " + ec.message());
  if (!std::filesystem::is_directory(dir) || access(dir.c_str(), W_OK) != 0)
    throw UsageError(what + ": not a writable directory");
}

OutputFile::OutputFile(std::string what, std::string path)
    : what_(std::move(what)), path_(std::move(path)) {
  refuse_unless_regular_or_missing(what_, path_);
  fd_ = create_temporary(what_, path_, &temporary_);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temporary_.empty()) unlink(temporary_.c_str());
}

void OutputFile::write(const void* data, size_t bytes) {
  if (const int cause = write_all(fd_, static_cast<const char*>(data), bytes, off_t(size_)))
    throw_write_failure(what_, path_, cause);
  size_ += (long long)bytes;
}

void OutputFile::commit() {
  if (fsync(fd_) != 0) throw_write_failure(what_, path_, errno);
  const int closed = close(fd_);
  fd_ = -1;
  if (closed != 0) throw_write_failure(what_, path_, errno);
  put_in_place(what_, temporary_, path_);
  temporary_.clear();
}

void write_output_file(const std::string& what, const std::string& path, std::string_view contents) {
  OutputFile file(what, path);
  file.write(contents);
  file.commit();
}

RowFile::RowFile(std::string what, std::string path, std::string_view header)
    : what_(std::move(what)), path_(std::move(path)) {
  refuse_unless_regular_or_missing(what_, path_);
  std::string temporary;
  fd_ = create_temporary(what_, path_, &temporary);
  try {
    if (const int cause = write_all(fd_, header.data(), header.size(), 0))
      throw_write_failure(what_, path_, cause);
    if (fsync(fd_) != 0) throw_write_failure(what_, path_, errno);
    put_in_place(what_, temporary, path_);  // the rows go on through the same descriptor
  } catch (...) {
    ::close(fd_);
    unlink(temporary.c_str());
    throw;
  }
  size_ = (long long)header.size();
}

RowFile::~RowFile() {
  if (fd_ >= 0) ::close(fd_);
}

void RowFile::append(std::string_view rows) {
  if (fd_ < 0) throw Error(message(what_, path_, "appended to after it was closed"));
  if (const int cause = write_all(fd_, rows.data(), rows.size(), off_t(size_))) {
    // Cut back to the last whole row; shrinking a file needs no space.
    const bool cut = ftruncate(fd_, off_t(size_)) == 0;
    throw_write_failure(what_, path_, cause, cut ? "" : "; the last row may be incomplete");
  }
  size_ += (long long)rows.size();
}

void RowFile::close() {
  const bool synced = fsync(fd_) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  if (!synced) throw_write_failure(what_, path_, sync_errno);
  if (!closed) throw_write_failure(what_, path_, errno);
}

}  // namespace attnscope
