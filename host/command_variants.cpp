#include <iomanip>
#include <iostream>

#include "host/commands.hpp"
#include "model/registry.hpp"

namespace attnscope {

void add_variants_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("variants", "List the attention variants");
  cmd->callback([] {
    for (const auto& entry : attention_registry()) {
      VariantInfo info = entry.make(AttentionOptions{})->info();
      std::cout << std::left << std::setw(16) << info.name << info.summary << "\n"
                << std::setw(16) << "" << "cost: " << info.complexity
                << "; options: " << (info.options.empty() ? "none" : info.options) << "\n"
                << std::setw(16) << "" << "paper: " << info.paper << "\n";
    }
  });
}

}  // namespace attnscope
