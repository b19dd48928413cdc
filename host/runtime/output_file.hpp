// The one way attnscope writes a file (checkpoints, CSVs, manifest.json, power.csv, merged
// results, tuning tables, dumps). A file is written into a temporary beside its target,
// created exclusively (a unique name, O_EXCL|O_NOFOLLOW: nothing planted there is written
// through), every write, sync and close checked (the message names the cause, e.g. "No space
// left on device"), then renamed over the target. A target that exists and is not a regular
// file (a directory, FIFO, device, socket) is refused, never replaced; a symlink at the target
// is replaced by the new file, never written through.
//
// OutputFile: a whole file, which appears at its target complete or not at all.
// RowFile: a file that grows row by row during a run (steps.csv, power.csv): the header is
// in place at once, every row lands whole or not at all (a failed write is cut back to the
// last whole row), so a run stopped by anything, a full disk included, leaves whole rows.
#pragma once
#include <string>
#include <string_view>

namespace attnscope {

// UsageError (exit 2) unless `path` could be written: not empty, its directory exists and
// takes a new file, and the target is missing or a regular file. Creates and removes a
// temporary beside the target to find out. `what` names the file for the message, e.g.
// "--save". Call before a long run so that a bad destination is found at once.
void check_output_path(const std::string& what, const std::string& path);

// UsageError (exit 2) unless `dir` is a writable directory; creates it and its parents when
// missing. `what` names it for the message, e.g. "--dump out". For destinations of many
// files (dumps), checked before any work.
void prepare_output_directory(const std::string& what, const std::string& dir);

class OutputFile {
 public:
  // Checks the target and creates the temporary. UsageError for a bad destination.
  OutputFile(std::string what, std::string path);
  ~OutputFile();  // removes the temporary unless committed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Error naming the file and the cause when the write fails.
  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Syncs, closes and renames the temporary over the target.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string what_, path_, temporary_;
  int fd_ = -1;
  long long size_ = 0;  // bytes written
};

// A whole file in one call: OutputFile, write, commit.
void write_output_file(const std::string& what, const std::string& path, std::string_view contents);

class RowFile {
 public:
  // Writes `header` (the first row, with its newline) and puts the file in place.
  RowFile(std::string what, std::string path, std::string_view header);
  ~RowFile();
  RowFile(const RowFile&) = delete;
  RowFile& operator=(const RowFile&) = delete;

  // One or more whole rows, each ending in a newline. Error (the file cut back to its
  // rows before the call) when they cannot all be written.
  void append(std::string_view rows);
  // Syncs and closes the file, checked (Error naming the cause); the destructor of a file
  // not closed so closes it unchecked.
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string what_, path_;
  int fd_ = -1;
  long long size_ = 0;  // bytes of whole rows written
};

}  // namespace attnscope
