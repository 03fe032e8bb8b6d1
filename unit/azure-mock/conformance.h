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

// An error answer: `status`, a body that follows `definition`, and error.code `code`.
inline void expectError(const ArmResponse& r, const std::string& definition, int status,
                        const std::string& code) {
  expectConforms(r, definition, status);
  EXPECT_EQ(parsed(r)["error"].value("code", ""), code) << r.body;
}

// What a Compute route of the mock refuses, each answer a Compute CloudError: no api-version, one
// that is not a version (`notAVersion`), one Compute does not have, and a write (the mock serves
// none). `resource`: the route's path, without a query.
inline void expectComputeRefusals(MockFixture& m, const std::string& resource,
                                  const std::string& notAVersion) {
  expectError(m.call("GET", resource), "ComputeCloudError", 400, "MissingApiVersionParameter");
  expectError(m.call("GET", resource + "?api-version=" + notAVersion), "ComputeCloudError", 400,
              "InvalidApiVersionParameter");
  expectError(m.call("GET", resource + "?api-version=2024-05-01"), "ComputeCloudError", 400,
              "NoRegisteredProviderFound");
  expectError(m.call("PUT", resource + "?api-version=2023-09-01", "{}"), "ComputeCloudError", 405,
              "MethodNotAllowed");
}

}  // namespace vnetipam::azuremock::testing
