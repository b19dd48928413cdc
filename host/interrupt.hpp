// Ctrl-C handling: the first SIGINT/SIGTERM sets a flag that long loops poll between
// steps, so the current step finishes, results are written and the run ends cleanly; a
// second signal kills the process the default way.
#pragma once

namespace attnscope {

void install_interrupt_handler();
bool interrupted();

}  // namespace attnscope
