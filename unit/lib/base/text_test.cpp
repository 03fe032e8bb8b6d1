#include "lib/base/text.h"

#include <gtest/gtest.h>

namespace vnetipam::text {
namespace {

TEST(PercentEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(percentEncode("a-b_c.d~9"), "a-b_c.d~9");
  EXPECT_EQ(percentEncode("k in (a,b)"), "k%20in%20%28a%2Cb%29");
  EXPECT_EQ(percentEncode("spec.nodeName=n/1"), "spec.nodeName%3Dn%2F1");
  EXPECT_EQ(percentEncode("https://management.azure.com/.default"),
            "https%3A%2F%2Fmanagement.azure.com%2F.default");
  EXPECT_EQ(percentEncode("\xff\x01"), "%FF%01")
      << "bytes above 0x7f are escaped, not sign-extended";
}

TEST(Text, IequalsAndTrimOws) {
  EXPECT_TRUE(iequals("Content-Type", "content-type"));
  EXPECT_FALSE(iequals("Content-Type", "content-typ"));
  EXPECT_EQ(trimOws(" \tvalue\t "), "value");
}

}  // namespace
}  // namespace vnetipam::text
