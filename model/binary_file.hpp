// Reading and atomically writing the binary files attnscope exchanges with llm.c (token
// shards, checkpoints). Every error is one line naming the kind of file and its path:
// "<what> <path>: <problem>".
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

namespace attnscope {

// The header both llm.c formats start with.
constexpr int kLlmcHeaderInts = 256;
constexpr size_t kLlmcHeaderBytes = kLlmcHeaderInts * sizeof(int32_t);

// "<what> <path>: <problem>", the one-line form of every file error.
std::string file_message(const std::string& what, const std::string& path, const std::string& problem);

// Opens path for binary reading. UsageError (the user named it) when it is missing, not a
// regular file, or unreadable. `size` receives the file size in bytes.
std::ifstream open_binary_input(const std::string& what, const std::string& path, uint64_t* size);

// Reads exactly `bytes` bytes; Error when the read fails.
void read_bytes(std::ifstream& in, void* dst, uint64_t bytes, const std::string& what,
                const std::string& path);

// Writes header and body through an OutputFile (host/runtime/output_file.hpp): a crash
// leaves either the old file or the new one, never a partial file. UsageError for a
// destination that cannot take the file, Error naming the cause when writing fails (the
// temporary file is removed).
void write_file_atomically(const std::string& what, const std::string& path,
                           const void* header, uint64_t header_bytes,
                           const void* body, uint64_t body_bytes);

}  // namespace attnscope
