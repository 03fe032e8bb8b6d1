// A TokenCredential that hands out "tok-1", "tok-2", ... (a new one after each invalidate), for
// tests of code that uses a credential rather than of the credentials themselves.
#pragma once

#include <mutex>
#include <string>

#include "lib/azure/credentials.h"

namespace vnetipam::azure::testing {

class FakeCredential final : public TokenCredential {
 public:
  Result<std::string> token() override {
    std::lock_guard lock(mutex_);
    return "tok-" + std::to_string(generation_);
  }
  void invalidate() override {
    std::lock_guard lock(mutex_);
    ++generation_;
    ++invalidations_;
  }
  int invalidations() const {
    std::lock_guard lock(mutex_);
    return invalidations_;
  }

 private:
  mutable std::mutex mutex_;
  int generation_ = 1;
  int invalidations_ = 0;
};

}  // namespace vnetipam::azure::testing
