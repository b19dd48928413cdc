#include "host/stats.hpp"

#include <algorithm>
#include <cmath>

namespace attnscope {

std::optional<double> quantile(std::vector<double> values, double q) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const double pos = q * double(values.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - double(lo)) * (values[hi] - values[lo]);
}

std::optional<double> iqr(const std::vector<double>& values) {
  auto q75 = quantile(values, 0.75), q25 = quantile(values, 0.25);
  if (!q75 || !q25) return std::nullopt;
  return *q75 - *q25;
}

}  // namespace attnscope
