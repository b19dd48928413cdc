#include <iostream>

#include "host/commands.hpp"
#include "host/runtime/device_info.hpp"

namespace attnscope {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List every OpenCL platform and device");
  cmd->callback([] { std::cout << describe_devices(list_devices()); });
}

}  // namespace attnscope
