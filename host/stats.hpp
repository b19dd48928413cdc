// Order statistics for run summaries.
#pragma once
#include <optional>
#include <vector>

namespace attnscope {

// Linear-interpolated quantile (q in [0,1]) of the values; empty input → nullopt.
std::optional<double> quantile(std::vector<double> values, double q);
inline std::optional<double> median(const std::vector<double>& v) { return quantile(v, 0.5); }
// Interquartile range q75 − q25.
std::optional<double> iqr(const std::vector<double>& values);

}  // namespace attnscope
