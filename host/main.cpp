// attnscope: trains GPT-2 from OpenCL kernels and measures what each attention variant
// costs. main() only parses the command line and maps errors to exit codes.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "host/commands.hpp"
#include "host/options.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/opencl.hpp"
#include "telemetry/telemetry_error.hpp"

namespace {

// "" when argv names a known command or starts with an option, else the error line
// ("unknown command 'frobnicate' (commands: devices, variants, ...)").
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return "";
  std::string names;
  for (const CLI::App* command : app.get_subcommands(std::function<bool(CLI::App*)>{})) {
    if (command->get_name() == argv[1]) return "";
    names += (names.empty() ? "" : ", ") + command->get_name();
  }
  return "unknown command '" + std::string(argv[1]) + "' (commands: " + names + ")";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace attnscope;
  CLI::App app{"attnscope: GPT-2 training from OpenCL kernels, measured per attention variant"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("attnscope ") + ATTNSCOPE_GIT_COMMIT);
  add_devices_command(app);
  add_variants_command(app);
  add_telemetry_command(app);
  add_train_command(app);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  add_bench_command(app, command_line);
  add_merge_command(app);
  add_check_command(app);
  add_gemm_command(app);
  add_data_command(app);
  apply_number_rules(app);
  if (std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    std::cerr << "attnscope: error: " << unknown << "\n";
    return int(ExitCode::kUsage);
  }
  // A closed standard output (`attnscope telemetry | head -3`) fails writes instead of
  // killing the process without a word; train and bench stop on it and save (interrupt.hpp),
  // every other command finishes and says so below.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const bool no_command = app.get_subcommands().empty() && e.get_name() == "RequiredError";
    std::cerr << "attnscope: error: " << (no_command ? "a command is required" : e.what()) << " (see --help)\n";
    return int(ExitCode::kUsage);
  } catch (const Error& e) {
    std::cerr << "attnscope: error: " << e.what() << "\n";
    return int(e.code());
  } catch (const TelemetryError& e) {
    std::cerr << "attnscope: error: " << e.what() << "\n";
    return int(e.bad_setting() ? ExitCode::kUsage : ExitCode::kFailure);
  } catch (const cl::Error& e) {
    std::cerr << "attnscope: error: OpenCL call " << e.what() << " failed with "
              << cl_status_name(e.err()) << "\n";
    return int(ExitCode::kFailure);
  } catch (const std::exception& e) {
    std::cerr << "attnscope: error: " << e.what() << "\n";
    return int(ExitCode::kFailure);
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout) || std::cout.fail()) {
    std::cerr << "attnscope: error: standard output was closed before the command's output was written\n";
    return 128 + SIGPIPE;
  }
  return 0;
}
