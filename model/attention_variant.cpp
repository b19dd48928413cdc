#include "model/attention_variant.hpp"

#include <algorithm>

#include "host/runtime/error.hpp"

namespace attnscope {

std::string VariantOption::flag() const {
  std::string spelled = name;
  std::replace(spelled.begin(), spelled.end(), '_', '-');
  return "--" + spelled;
}

std::string VariantOption::default_label() const {
  return default_value == 0 ? default_text : std::to_string(default_value);
}

int AttentionVariant::option(const std::string& name) const {
  const std::vector<VariantOption> declared = info().options;
  auto spec = std::find_if(declared.begin(), declared.end(),
                           [&](const VariantOption& o) { return o.name == name; });
  if (spec == declared.end()) throw Error(info().name + " declares no option '" + name + "'");
  auto given = options_.values.find(name);
  if (given != options_.values.end() && (given->second != 0 || spec->default_value != 0))
    return given->second;
  auto derived = derived_.find(name);
  return derived != derived_.end() ? derived->second : spec->default_value;
}

std::string AttentionVariant::describe_options() const {
  std::string text;
  for (const VariantOption& o : info().options)
    text += (text.empty() ? "" : " ") + o.name + "=" + std::to_string(option(o.name));
  return text;
}

std::vector<int> AttentionVariant::parameter_options() const {
  std::vector<int> values;
  for (const VariantOption& o : info().options)
    if (o.shapes_parameters) values.push_back(option(o.name));
  return values;
}

void ensure_floats(Runtime& rt, DeviceBuffer& buffer, size_t floats, const std::string& label) {
  if (buffer.floats() < floats) buffer = rt.alloc_floats(floats, label);
}

}  // namespace attnscope
