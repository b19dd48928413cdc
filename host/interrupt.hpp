// Stopping a long run cleanly: the first SIGINT (Ctrl-C) or SIGTERM sets a flag that long
// loops (training and validation steps, the benchmark's runs) poll, so the work in flight
// ends, results are written and the run ends; a second signal kills the process the
// default way. SIGPIPE is ignored: a write to a closed standard output (`bench | head`)
// fails instead, and interrupted() reports that too, so the run stops and saves as for
// Ctrl-C. The exit status says which came: 130 SIGINT, 143 SIGTERM, 141 closed stdout.
#pragma once
#include <string>

#include "host/runtime/error.hpp"

namespace attnscope {

void install_interrupt_handler();
// True once a signal came or a write to standard output failed.
bool interrupted();
// What stopped the run, e.g. "SIGTERM" or "Ctrl-C (SIGINT)"; empty while not interrupted.
std::string interrupt_reason();
// 128 + the signal's number (141 for a closed standard output, as SIGPIPE would have).
ExitCode interrupt_exit_code();

}  // namespace attnscope
