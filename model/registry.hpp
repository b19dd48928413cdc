// Name → attention variant. `attnscope variants` prints this table; the command line
// offers the options its variants declare.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
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
// "all" or "a,b,c" → names, each checked (known, named once).
std::vector<std::string> parse_variant_list(const std::string& list);

// One command-line option and the variants that declare it, each with its own help (linear
// and lsh both declare chunk). Throws Error when two declarations of one name disagree on
// the default or the minimum.
struct SharedOption {
  VariantOption spec;  // the first declaration
  std::vector<std::pair<std::string, std::string>> uses;  // (variant, its help)
};
// Every declared option once, in registry order.
std::vector<SharedOption> variant_options();
// options.values with every declared option's default filled in where none was given.
std::map<std::string, int> option_values(const AttentionOptions& options);

}  // namespace attnscope
