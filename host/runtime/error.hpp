// Errors carry their context to one place (main) that prints them on one line and
// chooses the exit code: 2 for bad input (options, environment, malformed input files; the
// table in README.md), 3 for device out-of-memory, 4 for a run whose memory plan does not
// fit the device, 128 + N for a run stopped by signal N (host/interrupt.hpp), 1 for
// everything else.
#pragma once
#include <stdexcept>
#include <string>

namespace attnscope {

enum class ExitCode : int { kFailure = 1, kUsage = 2, kDeviceOutOfMemory = 3,
                      kInsufficientMemory = 4, kInterrupted = 130 };

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad input: command line, config, option combination, environment variable, or an input
// file the user named that is missing or malformed.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message, ExitCode::kUsage) {}
};

// The device could not allocate a buffer or ran out of resources while running.
class DeviceOutOfMemory : public Error {
 public:
  explicit DeviceOutOfMemory(const std::string& message)
      : Error(message, ExitCode::kDeviceOutOfMemory) {}
};

// A run's planned device memory (model/memory_plan.hpp) exceeds what the device has:
// refused before anything is allocated.
class InsufficientDeviceMemory : public Error {
 public:
  explicit InsufficientDeviceMemory(const std::string& message)
      : Error(message, ExitCode::kInsufficientMemory) {}
};

// Symbolic name of an OpenCL status code (CL_OUT_OF_RESOURCES, ...).
std::string cl_status_name(int status);

// The first non-blank line of a build log inside Runtime::program's message ("building ...
// failed on ...:\n<log>"), or the message itself when it has no log: for one-line reasons.
std::string first_log_line(const std::string& message);

// Turns a cl::Error into an attnscope::Error, adding what we were doing.
[[noreturn]] void rethrow_cl_error(int status, const std::string& call, const std::string& context);

}  // namespace attnscope
