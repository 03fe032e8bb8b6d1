// The socket protocol: every message round-trips, and malformed input is refused with an error
// naming the field.
#include "node-agent/protocol.h"

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unit/node-agent/memory_usage.h"

namespace vnetipam::agent {
namespace {

ipam::IPAddress ip(std::string_view text) { return *ipam::IPAddress::parse(text); }
ipam::Prefix cidr(std::string_view text) { return *ipam::Prefix::parse(text); }

TEST(ProtocolTest, RequestsRoundTrip) {
  std::vector<Request> requests = {
      {.op = Op::kAllocate,
       .owner = {.containerID = "c1", .ifName = "eth0"},
       .podNamespace = "ns",
       .podName = "p"},
      {.op = Op::kAllocate,
       .owner = {.containerID = "c2", .ifName = "eth0"},
       .podNamespace = "ns",
       .podName = "web-0",
       .podUID = "0d2c6f3e-uid"},
      {.op = Op::kRelease, .owner = {.containerID = "c1", .ifName = "eth0"}},
      {.op = Op::kCheck,
       .owner = {.containerID = "c3", .ifName = "net1"},
       .podName = "p\"quoted\"\\"},
      {.op = Op::kList},
      {.op = Op::kStatus},
      {.op = Op::kGc, .validAttachments = {{"a", "eth0"}, {"b", "eth1"}}},
      {.op = Op::kGc},
      {.op = Op::kAllocate,
       .network = "vnet-ipam",
       .owner = {.containerID = "c4", .ifName = "eth0"}},
      {.op = Op::kRelease, .network = "net-b", .owner = {.containerID = "c4", .ifName = "net1"}},
      {.op = Op::kCheck, .network = "net-b", .owner = {.containerID = "c4", .ifName = "net1"}},
      {.op = Op::kGc, .network = "net-b", .validAttachments = {{"c4", "net1"}}},
  };
  for (const Request& r : requests) {
    const std::string line = encode(r);
    ASSERT_EQ(line.back(), '\n');
    ASSERT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
    auto decoded = decodeRequest(line);
    ASSERT_TRUE(decoded) << line << ": " << decoded.error().message;
    EXPECT_EQ(*decoded, r) << line;
  }
}

TEST(ProtocolTest, ResponsesRoundTrip) {
  Response allocated;
  allocated.allocations.push_back(Allocation{.owner = {.containerID = "c1", .ifName = "eth0"},
                                             .podNamespace = "ns",
                                             .podName = "p",
                                             .address = ip("10.240.0.17"),
                                             .block = cidr("10.240.0.16/28"),
                                             .blockName = "pods-10-240-0-16-28"});
  allocated.allocations.push_back(Allocation{.owner = {.containerID = "c2", .ifName = "eth0"},
                                             .podNamespace = "ns",
                                             .podName = "web-0",
                                             .podUID = "0d2c6f3e-uid",
                                             .address = ip("10.240.0.18"),
                                             .block = cidr("10.240.0.16/28"),
                                             .blockName = "pods-10-240-0-16-28"});
  Response status;
  status.ready = true;
  status.freeIPs = 42;
  for (const Response& r :
       {allocated, status, Response{},
        Response::failure(ErrorCode::kTryAgainLater, "no free address", "3 blocks"),
        Response::failure(ErrorCode::kUnknownContainer, "unknown")}) {
    auto decoded = decodeResponse(encode(r));
    ASSERT_TRUE(decoded) << encode(r) << ": " << decoded.error().message;
    EXPECT_EQ(*decoded, r) << encode(r);
  }
}

TEST(ProtocolTest, PodUIDIsOptionalAndAbsentFromMessagesWithout) {
  // A request from a plugin that predates podUID decodes with none, and vice versa: an agent that
  // predates it ignores the field (unknown fields are ignored).
  auto old = decodeRequest(
      R"({"v":1,"op":"allocate","containerID":"c1","ifName":"eth0","podNamespace":"ns","podName":"p"})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->podUID, "");
  const std::string line =
      encode(Request{.op = Op::kAllocate, .owner = {.containerID = "c", .ifName = "e"}});
  EXPECT_EQ(line.find("podUID"), std::string::npos) << line;
  Response r;
  r.allocations.push_back(Allocation{.owner = {.containerID = "c", .ifName = "e"},
                                     .address = ip("10.0.0.1"),
                                     .block = cidr("10.0.0.0/28"),
                                     .blockName = "b"});
  EXPECT_EQ(encode(r).find("podUID"), std::string::npos) << encode(r);
  auto bad = decodeRequest(R"({"v":1,"op":"allocate","containerID":"c","ifName":"e","podUID":7})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"podUID\""), std::string::npos) << bad.error().message;
}

TEST(ProtocolTest, TheNetworkIsOptionalBothWays) {
  // A plugin of an earlier release sends none: its requests decode with none.
  auto old = decodeRequest(R"({"v":1,"op":"gc","validAttachments":[]})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->network, "");
  EXPECT_EQ(encode(Request{.op = Op::kGc}).find("network"), std::string::npos);
  // A newer plugin's request is one an earlier agent reads: "network" is one more field.
  const std::string line =
      encode(Request{.op = Op::kGc, .network = "net-b", .validAttachments = {{"c1", "net1"}}});
  EXPECT_NE(line.find(R"("network":"net-b")"), std::string::npos) << line;

  // Answers carry it when the allocation recorded one, and decode without it.
  Response r;
  r.allocations.push_back(Allocation{.owner = {.containerID = "c", .ifName = "e"},
                                     .network = "net-b",
                                     .address = ip("10.0.0.1"),
                                     .block = cidr("10.0.0.0/28"),
                                     .blockName = "b"});
  auto decoded = decodeResponse(encode(r));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, r);
  r.allocations[0].network.clear();
  EXPECT_EQ(encode(r).find("network"), std::string::npos) << encode(r);

  // Printable, at most kMaxNetworkBytes.
  const auto gc = [](std::string_view network) {
    return decodeRequest(
        fmt::format(R"({{"v":1,"op":"gc","network":"{}","validAttachments":[]}})", network));
  };
  EXPECT_TRUE(gc(std::string(kMaxNetworkBytes, 'n')));
  EXPECT_TRUE(gc("a network/with odd: characters"));
  for (const std::string& bad :
       {std::string(kMaxNetworkBytes + 1, 'n'), std::string(R"(tab\there)")}) {
    auto refused = gc(bad);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("\"network\""), std::string::npos)
        << refused.error().message;
  }
  auto notString = decodeRequest(R"({"v":1,"op":"gc","network":7,"validAttachments":[]})");
  ASSERT_FALSE(notString);
  EXPECT_NE(notString.error().message.find("\"network\""), std::string::npos);
}

TEST(ProtocolTest, BadRequestsAreRefusedNamingTheField) {
  struct Case {
    std::string line;
    std::string mentions;
  };
  const Case cases[] = {
      {"not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {R"({"op":"status"})", "\"v\""},
      {R"({"v":"1","op":"status"})", "\"v\""},
      {R"({"v":1,"op":"explode"})", "\"op\" is \"explode\""},
      {R"({"v":1,"op":"allocate","containerID":"c"})", "needs \"containerID\" and \"ifName\""},
      {R"({"v":1,"op":"release","ifName":"eth0"})", "needs"},
      {R"({"v":1,"op":"allocate","containerID":5,"ifName":"eth0"})", "\"containerID\""},
      {R"({"v":1,"op":"gc"})", "validAttachments"},
      {R"({"v":1,"op":"gc","validAttachments":{}})", "must be an array"},
      {R"({"v":1,"op":"gc","validAttachments":[{"ifName":"eth0"}]})", "validAttachments[0]"},
      {R"({"v":1,"op":"gc","validAttachments":["x"]})", "validAttachments[0]"},
  };
  for (const Case& c : cases) {
    auto r = decodeRequest(c.line);
    ASSERT_FALSE(r) << c.line;
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument) << c.line;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos)
        << c.line << " -> " << r.error().message;
  }
}

// Every string field is checked where the request enters: a NUL (once two owners sharing an
// address), control characters, invalid UTF-8, or a value past its length.
TEST(ProtocolTest, StringFieldsOutsideTheirRuleAreRefused) {
  struct Case {
    std::string line;
    std::string mentions;
  };
  const std::string id257(257, 'a');
  const Case cases[] = {
      {R"({"v":1,"op":"allocate","containerID":"a\u0000b","ifName":"c"})", "\"containerID\""},
      {R"({"v":1,"op":"allocate","containerID":"a","ifName":"b\u0000c"})", "\"ifName\""},
      {R"({"v":1,"op":"allocate","containerID":"-a","ifName":"eth0"})", "\"containerID\""},
      {R"({"v":1,"op":"allocate","containerID":"a/b","ifName":"eth0"})", "\"containerID\""},
      {R"({"v":1,"op":"allocate","containerID":"a b","ifName":"eth0"})", "\"containerID\""},
      {R"({"v":1,"op":"allocate","containerID":")" + id257 + R"(","ifName":"eth0"})",
       "\"containerID\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"eth0123456789abc"})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"eth/0"})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"eth:0"})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"eth 0"})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"eth\t0"})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":".."})", "\"ifName\""},
      {R"({"v":1,"op":"release","containerID":"c","ifName":"\u00e9th0"})", "\"ifName\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podName":"p\u0001"})",
       "\"podName\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podName":"p\u0085"})",
       "\"podName\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podName":"p\u007f"})",
       "\"podName\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podNamespace":")" +
           std::string(64, 'n') + "\"}",
       "\"podNamespace\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podName":")" +
           std::string(254, 'p') + "\"}",
       "\"podName\""},
      {R"({"v":1,"op":"allocate","containerID":"c","ifName":"eth0","podUID":")" +
           std::string(129, 'u') + "\"}",
       "\"podUID\""},
      {R"({"v":1,"op":"gc","validAttachments":[{"containerID":"a\u0000b","ifName":"c"}]})",
       "validAttachments[0]: field \"containerID\""},
      {R"({"v":1,"op":"gc","validAttachments":[{"containerID":"a","ifName":"b\nc"}]})",
       "validAttachments[0]: field \"ifName\""},
      // Raw invalid UTF-8 (a lone continuation byte, an overlong '/'): the parser refuses it.
      {"{\"v\":1,\"op\":\"allocate\",\"containerID\":\"c\",\"ifName\":\"eth0\",\"podName\":"
       "\"\x80\"}",
       "not a JSON object"},
      {"{\"v\":1,\"op\":\"allocate\",\"containerID\":\"c\",\"ifName\":\"eth0\",\"podName\":"
       "\"\xC0\xAF\"}",
       "not a JSON object"},
      // An unknown op is not echoed back unless it is short and printable.
      {R"({"v":1,"op":"x\u0000y"})", "\"op\" is not one"},
  };
  for (const Case& c : cases) {
    auto r = decodeRequest(c.line);
    ASSERT_FALSE(r) << c.line;
    EXPECT_EQ(r.error().code, base::ErrorCode::kInvalidArgument) << c.line;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos)
        << c.line << " -> " << r.error().message;
    EXPECT_EQ(r.error().message.find('\0'), std::string::npos) << r.error().message;
  }
  // What runtimes and Kubernetes send still decodes, at the limits too.
  const std::string id64(64, 'f');
  auto ok =
      decodeRequest(R"({"v":1,"op":"allocate","containerID":")" + id64 +
                    R"(","ifName":"eth0123456789ab","podNamespace":")" + std::string(63, 'n') +
                    R"(","podName":"web-0.x_Y","podUID":"0d2c6a4e-1b7f-4c3e-9a51-8f0e2b7d6c11"})");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->owner.containerID, id64);
  EXPECT_EQ(ok->owner.ifName, "eth0123456789ab");
  for (const char* line :
       {R"({"v":1,"op":"allocate","containerID":"A1_b.c-d","ifName":"net1","podName":"caf\u00e9"})",
        R"({"v":1,"op":"gc","validAttachments":[{"containerID":"c1","ifName":"eth0"}]})"}) {
    auto r = decodeRequest(line);
    EXPECT_TRUE(r) << line << " -> " << r.error().message;
  }
}

// A number is taken only as the exact integer it is: 4294967297 once passed for version 1.
TEST(ProtocolTest, IntegersMustFitTheirTypeExactly) {
  for (const char* line : {
           R"({"v":4294967297,"op":"status"})",
           R"({"v":2147483648,"op":"status"})",
           R"({"v":18446744073709551617,"op":"status"})",
           R"({"v":-1,"op":"status"})",
           R"({"v":-4294967295,"op":"status"})",
           R"({"v":1.0,"op":"status"})",
           R"({"v":1e0,"op":"status"})",
           R"({"v":1.5,"op":"status"})",
       }) {
    auto r = decodeRequest(line);
    ASSERT_FALSE(r) << line << " decoded as version " << r->version;
    EXPECT_NE(r.error().message.find("\"v\""), std::string::npos) << r.error().message;
  }
  auto max = decodeRequest(R"({"v":2147483647,"op":"status"})");
  ASSERT_TRUE(max) << max.error().message;
  EXPECT_EQ(max->version, 2147483647);
  for (const char* line : {
           R"({"v":4294967297,"ok":true})",
           R"({"v":1,"ok":false,"code":4294967307,"msg":"m"})",
           R"({"v":1,"ok":false,"code":-1,"msg":"m"})",
           R"({"v":1,"ok":false,"code":11.0,"msg":"m"})",
           R"({"v":1,"ok":true,"freeIPs":1.5})",
           R"({"v":1,"ok":true,"freeIPs":18446744073709551616})",
       }) {
    EXPECT_FALSE(decodeResponse(line)) << line;
  }
  auto code = decodeResponse(R"({"v":1,"ok":false,"code":11,"msg":"m"})");
  ASSERT_TRUE(code);
  EXPECT_EQ(code->code, ErrorCode::kTryAgainLater);
}

// One line used to cost about 75 times its size: a 4 MiB line of nested brackets, 300 MB. Now a
// line over the limit or nested too deep is refused before any tree is built.
TEST(ProtocolTest, LongAndDeepLinesAreRefusedBeforeTheyCostMemory) {
  const std::string deep4MiB(4 * 1024 * 1024, '[');
  const std::string deep200k(200'000, '[');  // under the size limit: only depth refuses it
  const std::string deepInField = R"({"v":1,"op":"status","x":)" + deep200k + "}";
  const std::string flat4MiB =
      R"({"v":1,"op":"status","x":")" + std::string(4 * 1024 * 1024, 'x') + "\"}";
  struct Case {
    const std::string* line;
    std::string mentions;
  };
  for (const Case& c : {Case{&deep4MiB, "longer than"}, Case{&flat4MiB, "longer than"},
                        Case{&deep200k, "deeper than 16"}, Case{&deepInField, "deeper than 16"}}) {
    base::Result<Request> r;
    const std::int64_t grewKiB =
        vnetipam::testing::peakRssGrowthKiB([&] { r = decodeRequest(*c.line); });
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos) << r.error().message;
    EXPECT_LT(grewKiB, 32 * 1024) << c.line->size() << " bytes cost " << grewKiB << " KiB";
    RecordProperty("peak_rss_growth_kib_" + std::to_string(c.line->size()),
                   std::to_string(grewKiB));
  }
  // Up to the limits, a line decodes: 16 levels in an unknown field; brackets inside strings do
  // not count; the largest gc the limit is sized for.
  const std::string deep16 =
      R"({"v":1,"op":"status","x":)" + std::string(15, '[') + std::string(15, ']') + "}";
  EXPECT_TRUE(decodeRequest(deep16));
  EXPECT_FALSE(decodeRequest(R"({"v":1,"op":"status","x":)" + std::string(16, '[') +
                             std::string(16, ']') + "}"));
  EXPECT_TRUE(decodeRequest(R"({"v":1,"op":"status","podName":"[[[[[[[[[[[[[[[[[[[[\"[[[["})"));
  Request gc{.op = Op::kGc};
  for (int i = 0; i < 2500; ++i) {
    gc.validAttachments.push_back({fmt::format("{:064x}", i), "eth0"});
  }
  const std::string gcLine = encode(gc);
  EXPECT_LT(gcLine.size(), kMaxRequestBytes);
  auto decoded = decodeRequest(gcLine);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->validAttachments.size(), 2500u);
}

TEST(ProtocolTest, ReadLineStopsAtItsLimitWithoutReadingTheRest) {
  for (const std::string& sent : {std::string(100, 'x'), std::string(60, 'y') + "\nok\n"}) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ASSERT_TRUE(writeAll(fds[0], sent, std::chrono::seconds(1)));
    std::string buffer;
    auto r = readLine(fds[1], buffer, std::chrono::seconds(1), 50);
    ASSERT_FALSE(r) << "a line still arriving, or complete, over the limit";
    EXPECT_EQ(r.error().code, base::ErrorCode::kOutOfRange);
    EXPECT_NE(r.error().message.find("longer than 50 bytes"), std::string::npos);
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ASSERT_TRUE(writeAll(fds[0], std::string(50, 'z') + "\n", std::chrono::seconds(1)));
  std::string buffer;
  EXPECT_EQ(readLine(fds[1], buffer, std::chrono::seconds(1), 50).value_or("?"),
            std::string(50, 'z'))
      << "a line of exactly the limit";
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(ProtocolTest, UnknownFieldsAndAFutureVersionStillDecode) {
  auto r = decodeRequest(R"({"v":2,"op":"status","future":{"x":1}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->version, 2);  // the agent, not the decoder, answers code 1
}

// Dual stack, version 1 still: the request names the families it takes and each allocation its
// gateway; both are optional, so the previous release's single-address forms are what they were.
TEST(ProtocolTest, FamiliesAndGatewaysAreOptionalAndTheSingleAddressFormsStayAsTheyWere) {
  const Request dual{.op = Op::kAllocate,
                     .owner = {.containerID = "c1", .ifName = "eth0"},
                     .families = {ipam::Family::kV4, ipam::Family::kV6}};
  EXPECT_NE(encode(dual).find(R"("families":[4,6])"), std::string::npos) << encode(dual);
  EXPECT_EQ(decodeRequest(encode(dual)).value(), dual);
  // What a plugin of the previous release sends: no families (the agent then serves IPv4 alone).
  const auto old = decodeRequest(R"({"v":1,"op":"allocate","containerID":"c1","ifName":"eth0"})");
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_TRUE(old->families.empty());
  for (const char* bad : {R"([4,4])", R"([5])", R"([4,6,4])", R"("4")", R"([-4])", R"([4.0])"}) {
    const std::string line = fmt::format(
        R"({{"v":1,"op":"allocate","containerID":"c1","ifName":"eth0","families":{}}})", bad);
    EXPECT_FALSE(decodeRequest(line)) << line;
  }

  Response pair;
  pair.allocations = {Allocation{.owner = {.containerID = "c1", .ifName = "eth0"},
                                 .address = ip("10.240.0.17"),
                                 .block = cidr("10.240.0.16/28"),
                                 .blockName = "b4",
                                 .gateway = ip("169.254.1.1")},
                      Allocation{.owner = {.containerID = "c1", .ifName = "eth0"},
                                 .address = ip("fd00::11"),
                                 .block = cidr("fd00::/112"),
                                 .blockName = "b6",
                                 .gateway = ip("fe80::1")}};
  EXPECT_EQ(decodeResponse(encode(pair)).value(), pair);
  // What an agent of the previous release answers: one allocation, no gateway.
  const auto single = decodeResponse(
      R"({"v":1,"ok":true,"allocations":[{"containerID":"c1","ifName":"eth0","podNamespace":"",)"
      R"("podName":"","address":"10.240.0.17","block":"10.240.0.16/28","blockName":"b4"}]})");
  ASSERT_TRUE(single) << single.error().message;
  ASSERT_EQ(single->allocations.size(), 1u);
  EXPECT_FALSE(single->allocations[0].gateway);
  // A gateway of the other family, or an address outside its block, is refused.
  for (
      const char* bad :
      {R"({"v":1,"ok":true,"allocations":[{"address":"10.0.0.1","block":"10.0.0.0/28","gateway":"fe80::1"}]})",
       R"({"v":1,"ok":true,"allocations":[{"address":"fd00::1","block":"10.0.0.0/28"}]})"}) {
    EXPECT_FALSE(decodeResponse(bad)) << bad;
  }
}

TEST(ProtocolTest, BadResponsesAreRefused) {
  for (const char* line :
       {"{}", R"({"v":1})", R"({"v":1,"ok":"yes"})", R"({"v":1,"ok":false})",
        R"({"v":1,"ok":true,"allocations":[{"address":"10.0.0.300","block":"10.0.0.0/28"}]})",
        R"({"v":1,"ok":true,"allocations":[{"address":"10.0.0.1","block":"10.0.0.1/28"}]})",
        R"({"v":1,"ok":true,"freeIPs":-1})"}) {
    EXPECT_FALSE(decodeResponse(line)) << line;
  }
}

TEST(ProtocolTest, ReadLineSplitsMessagesAndRefusesATruncatedOne) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ASSERT_TRUE(writeAll(fds[0], "one\ntwo\nthr", std::chrono::seconds(1)));
  std::string buffer;
  EXPECT_EQ(readLine(fds[1], buffer, std::chrono::seconds(1)).value_or("?"), "one");
  EXPECT_EQ(readLine(fds[1], buffer, std::chrono::seconds(1)).value_or("?"), "two");
  auto timedOut = readLine(fds[1], buffer, std::chrono::milliseconds(20));
  ASSERT_FALSE(timedOut);
  EXPECT_NE(timedOut.error().message.find("timed out"), std::string::npos);
  ::close(fds[0]);
  auto closed = readLine(fds[1], buffer, std::chrono::seconds(1));
  ASSERT_FALSE(closed);
  EXPECT_NE(closed.error().message.find("mid-message"), std::string::npos);
  ::close(fds[1]);
}

TEST(ProtocolTest, ConnectingToNothingNamesThePath) {
  auto r = callAgent("/nonexistent/agent.sock", Request{}, std::chrono::seconds(1));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, base::ErrorCode::kIo);
  EXPECT_NE(r.error().message.find("/nonexistent/agent.sock"), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::agent
