// Randomness as the mock sees it: injected, so tests choose the sequence and every fault decision,
// etag and request id is reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace vnetipam::azuremock {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // 64 uniformly distributed bits. Not thread-safe: callers serialise (ArmHandler holds its lock).
  virtual std::uint64_t next() = 0;

  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // True with the given probability; never for p <= 0, always for p >= 1.
  bool chance(double p) { return p > 0 && (p >= 1 || unit() < p); }
  // A random version-4 GUID in lowercase 8-4-4-4-12 form, as ARM prints request ids and etags.
  std::string guid();
};

class Mt19937RandomImpl final : public RandomSource {
 public:
  explicit Mt19937RandomImpl(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t next() override { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

}  // namespace vnetipam::azuremock
