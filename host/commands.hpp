// Each subcommand registers itself on the CLI app; its callback does the work and
// throws attnscope::Error on failure (main prints one line and picks the exit code).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace attnscope {

void add_devices_command(CLI::App& app);
void add_variants_command(CLI::App& app);
void add_telemetry_command(CLI::App& app);
void add_train_command(CLI::App& app);
// command_line: the whole invocation, recorded in the results manifest.
void add_bench_command(CLI::App& app, const std::string& command_line);
void add_merge_command(CLI::App& app);
void add_check_command(CLI::App& app);
void add_gemm_command(CLI::App& app);
void add_data_command(CLI::App& app);

}  // namespace attnscope
