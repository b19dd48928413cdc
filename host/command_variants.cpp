#include <iomanip>
#include <iostream>

#include "host/commands.hpp"
#include "model/registry.hpp"

namespace attnscope {
namespace {

// "--hashes (2), --buckets (max(2, T/64)), --chunk (64)", or "none".
std::string options_line(const std::vector<VariantOption>& options) {
  std::string line;
  for (const VariantOption& o : options)
    line += (line.empty() ? "" : ", ") + o.flag() + " (" + o.default_label() + ")";
  return line.empty() ? "none" : line;
}

}  // namespace

void add_variants_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("variants", "List the attention variants");
  cmd->callback([] {
    for (const auto& entry : attention_registry()) {
      VariantInfo info = entry.make(AttentionOptions{})->info();
      std::cout << std::left << std::setw(16) << info.name << info.summary << "\n"
                << std::setw(16) << "" << "cost: " << info.complexity
                << "; options: " << options_line(info.options) << "\n"
                << std::setw(16) << "" << "paper: " << info.paper << "\n";
    }
  });
}

}  // namespace attnscope
