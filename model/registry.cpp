#include "model/registry.hpp"

#include <sstream>

#include "host/error.hpp"
#include "model/attention/variants.hpp"

namespace attnscope {

const std::vector<RegistryEntry>& attention_registry() {
  static const std::vector<RegistryEntry> registry = {
      {"baseline", make_baseline},
      {"sdpa", make_sdpa},
      {"flash", make_flash},
      {"gqa", make_gqa},
      {"mla", make_mla},
      {"linear", make_linear},
      {"sliding_window", make_sliding_window},
      {"lsh", make_lsh},
  };
  return registry;
}

std::vector<std::string> variant_names() {
  std::vector<std::string> names;
  for (const auto& e : attention_registry()) names.push_back(e.name);
  return names;
}

std::unique_ptr<AttentionVariant> make_variant(const std::string& name,
                                               const AttentionOptions& options) {
  for (const auto& e : attention_registry())
    if (e.name == name) return e.make(options);
  std::string known;
  for (const auto& n : variant_names()) known += (known.empty() ? "" : ", ") + n;
  throw UsageError("unknown attention variant '" + name + "' (known: " + known + ")");
}

std::vector<std::string> parse_variant_list(const std::string& list) {
  if (list == "all") return variant_names();
  std::vector<std::string> names;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) throw UsageError("empty name in variant list '" + list + "'");
    make_variant(item, AttentionOptions{});  // throws on unknown names
    names.push_back(item);
  }
  if (names.empty()) throw UsageError("empty variant list");
  return names;
}

}  // namespace attnscope
