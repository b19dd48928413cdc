#include "host/interrupt.hpp"

#include <csignal>
#include <cstdio>
#include <iostream>

namespace attnscope {
namespace {

volatile std::sig_atomic_t g_signal = 0;  // the first signal that came, 0 for none

void on_signal(int signal) {
  if (g_signal) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  g_signal = signal;
}

// Standard output is the progress stream: once a write to it failed (a closed pipe, most
// often), nobody reads the run any more.
bool stdout_failed() { return std::ferror(stdout) || std::cout.fail(); }

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() {
  if (!g_signal && stdout_failed()) g_signal = SIGPIPE;
  return g_signal != 0;
}

std::string interrupt_reason() {
  switch (g_signal) {
    case 0: return "";
    case SIGINT: return "Ctrl-C (SIGINT)";
    case SIGTERM: return "SIGTERM";
    case SIGPIPE: return "standard output closed";
    default: return "signal " + std::to_string(int(g_signal));
  }
}

ExitCode interrupt_exit_code() { return ExitCode(128 + int(g_signal)); }

}  // namespace attnscope
