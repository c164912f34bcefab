// Order statistics of benchmark samples.
#pragma once

#include <algorithm>
#include <vector>

namespace moat::bench {

// The sample at fraction `p` of the sorted samples (0.5: the median, 0.99: p99).
inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

inline double median(std::vector<double> v) { return percentile(std::move(v), 0.5); }

}  // namespace moat::bench
