// The check the mock's wire tests share: a response with the expected status whose body follows
// a definition of the published spec (the facts are in unit/lib/azure/arm_schema.h).
#pragma once

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "unit/azure-mock/fakes.h"
#include "unit/lib/azure/arm_schema.h"

namespace vnetipam::azuremock::testing {

inline void expectConforms(const ArmResponse& r, const std::string& definition, int status = 200) {
  EXPECT_EQ(r.status, status) << r.body;
  const nlohmann::json body = parsed(r);
  ASSERT_FALSE(body.is_discarded()) << r.body;
  const auto problems = azure::testing::schemaProblems(body, definition);
  EXPECT_TRUE(problems.empty()) << definition << ": " << ::testing::PrintToString(problems) << "\n"
                                << r.body;
}

}  // namespace vnetipam::azuremock::testing
