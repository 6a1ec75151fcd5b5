#include "router/example_classifier.h"

#include <algorithm>
#include <cmath>

namespace calm {
namespace {

void softmax(std::vector<double>& z) {
  const double max = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (auto& v : z) sum += (v = std::exp(v - max));
  for (auto& v : z) v /= sum;
}

}  // namespace

ExampleClassifier ExampleClassifier::train(const std::vector<std::vector<float>>& samples,
                                           const std::vector<size_t>& labels, size_t classes,
                                           const Options& options) {
  ExampleClassifier c;
  c.dimension_ = samples.empty() ? 0 : samples.front().size();
  c.weights_.assign(classes * c.dimension_, 0.0);
  c.bias_.assign(classes, 0.0);
  if (samples.empty() || classes == 0) return c;

  const double n = static_cast<double>(samples.size());
  std::vector<double> grad_w(c.weights_.size()), grad_b(classes);
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    std::fill(grad_w.begin(), grad_w.end(), 0.0);
    std::fill(grad_b.begin(), grad_b.end(), 0.0);
    for (size_t i = 0; i < samples.size(); ++i) {
      std::vector<double> p = c.probabilities(samples[i]);
      p[labels[i]] -= 1.0;  // d(cross-entropy)/d(logit)
      for (size_t k = 0; k < classes; ++k) {
        grad_b[k] += p[k];
        double* g = &grad_w[k * c.dimension_];
        for (size_t d = 0; d < c.dimension_; ++d) g[d] += p[k] * samples[i][d];
      }
    }
    for (size_t j = 0; j < c.weights_.size(); ++j) {
      c.weights_[j] -= options.learning_rate * (grad_w[j] / n + options.l2 * c.weights_[j]);
    }
    for (size_t k = 0; k < classes; ++k) c.bias_[k] -= options.learning_rate * grad_b[k] / n;
  }
  return c;
}

std::vector<double> ExampleClassifier::probabilities(const std::vector<float>& x) const {
  std::vector<double> z(bias_);
  if (x.size() != dimension_)
    return std::vector<double>(bias_.size(), 1.0 / std::max<size_t>(1, bias_.size()));
  for (size_t k = 0; k < z.size(); ++k) {
    const double* w = &weights_[k * dimension_];
    for (size_t d = 0; d < dimension_; ++d) z[k] += w[d] * x[d];
  }
  softmax(z);
  return z;
}

}  // namespace calm
