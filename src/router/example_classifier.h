// A softmax (multinomial logistic) classifier over query embeddings, trained
// on the models' example queries when the router starts.
//
// Why: nearest-example similarity treats every example alike; a linear model
// learns which directions of the embedding space separate the domains
// (measured in bench/RESULTS.md against description, kNN and combined).
// Training is full-batch gradient descent with L2 regularisation: a few
// hundred examples of 100 dimensions train in milliseconds.
#pragma once

#include <cstddef>
#include <vector>

namespace calm {

class ExampleClassifier {
 public:
  struct Options {
    int epochs = 1000;
    double learning_rate = 2.0;
    double l2 = 1e-4;
  };

  // samples[i] has label labels[i] in [0, classes). Deterministic.
  static ExampleClassifier train(const std::vector<std::vector<float>>& samples,
                                 const std::vector<size_t>& labels, size_t classes,
                                 const Options& options);
  static ExampleClassifier train(const std::vector<std::vector<float>>& samples,
                                 const std::vector<size_t>& labels, size_t classes) {
    return train(samples, labels, classes, Options{});
  }

  // Probability of each class for x. Thread-safe (read-only).
  std::vector<double> probabilities(const std::vector<float>& x) const;
  size_t classes() const { return bias_.size(); }

 private:
  size_t dimension_ = 0;
  std::vector<double> weights_;  // classes x dimension, row-major
  std::vector<double> bias_;
};

}  // namespace calm
