// Name → attention variant. `attnscope variants` prints this table.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/attention_variant.hpp"

namespace attnscope {

struct RegistryEntry {
  std::string name;
  std::function<std::unique_ptr<AttentionVariant>(const AttentionOptions&)> make;
};

const std::vector<RegistryEntry>& attention_registry();
std::vector<std::string> variant_names();
// Throws UsageError listing the known names when `name` is unknown.
std::unique_ptr<AttentionVariant> make_variant(const std::string& name,
                                               const AttentionOptions& options);
// "all" or "a,b,c" → names, each checked.
std::vector<std::string> parse_variant_list(const std::string& list);

}  // namespace attnscope
