#include "model/registry.hpp"

#include <algorithm>
#include <sstream>

#include "host/runtime/error.hpp"

namespace attnscope {

// Each variant's factory, defined at the end of model/attention/<name>.cpp.
std::unique_ptr<AttentionVariant> make_baseline(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_sdpa(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_flash(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_gqa(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_mla(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_linear(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_sliding_window(const AttentionOptions&);
std::unique_ptr<AttentionVariant> make_lsh(const AttentionOptions&);

// In the order of `attnscope variants` and of `--variants all`.
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
    if (std::find(names.begin(), names.end(), item) != names.end())
      throw UsageError("variant '" + item + "' appears twice in the list '" + list + "'");
    names.push_back(item);
  }
  if (names.empty()) throw UsageError("empty variant list");
  return names;
}

std::vector<SharedOption> variant_options() {
  std::vector<SharedOption> shared;
  for (const auto& entry : attention_registry())
    for (const VariantOption& o : entry.make(AttentionOptions{})->info().options) {
      auto same = std::find_if(shared.begin(), shared.end(),
                               [&](const SharedOption& s) { return s.spec.name == o.name; });
      if (same == shared.end()) {
        shared.push_back({o, {{entry.name, o.help}}});
        continue;
      }
      if (same->spec.default_value != o.default_value || same->spec.minimum != o.minimum)
        throw Error(entry.name + " declares " + o.flag() +
                    " with another default or minimum than " + same->uses.front().first);
      same->uses.emplace_back(entry.name, o.help);
    }
  return shared;
}

std::map<std::string, int> option_values(const AttentionOptions& options) {
  std::map<std::string, int> values = options.values;
  for (const SharedOption& o : variant_options()) values.emplace(o.spec.name, o.spec.default_value);
  return values;
}

}  // namespace attnscope
