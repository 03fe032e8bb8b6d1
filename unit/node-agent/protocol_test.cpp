// The socket protocol: every message round-trips, and malformed input is refused with an error
// naming the field.
#include "node-agent/protocol.h"

#include <string>

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace vnetipam::agent {
namespace {

ipam::IPAddress ip(std::string_view text) { return *ipam::IPAddress::parse(text); }
ipam::Prefix cidr(std::string_view text) { return *ipam::Prefix::parse(text); }

TEST(ProtocolTest, RequestsRoundTrip) {
  std::vector<Request> requests = {
      {.op = Op::kAllocate,
       .containerID = "c1",
       .ifName = "eth0",
       .podNamespace = "ns",
       .podName = "p"},
      {.op = Op::kAllocate,
       .containerID = "c2",
       .ifName = "eth0",
       .podNamespace = "ns",
       .podName = "web-0",
       .podUID = "0d2c6f3e-uid"},
      {.op = Op::kRelease, .containerID = "c1", .ifName = "eth0"},
      {.op = Op::kCheck, .containerID = "c\"quoted\"", .ifName = "net1"},
      {.op = Op::kList},
      {.op = Op::kStatus},
      {.op = Op::kGc, .validAttachments = {{"a", "eth0"}, {"b", "eth1"}}},
      {.op = Op::kGc},
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
  allocated.allocations.push_back(Allocation{.containerID = "c1",
                                             .ifName = "eth0",
                                             .podNamespace = "ns",
                                             .podName = "p",
                                             .address = ip("10.240.0.17"),
                                             .block = cidr("10.240.0.16/28"),
                                             .blockName = "pods-10-240-0-16-28"});
  allocated.allocations.push_back(Allocation{.containerID = "c2",
                                             .ifName = "eth0",
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
  const std::string line = encode(Request{.op = Op::kAllocate, .containerID = "c", .ifName = "e"});
  EXPECT_EQ(line.find("podUID"), std::string::npos) << line;
  Response r;
  r.allocations.push_back(Allocation{.containerID = "c",
                                     .ifName = "e",
                                     .address = ip("10.0.0.1"),
                                     .block = cidr("10.0.0.0/28"),
                                     .blockName = "b"});
  EXPECT_EQ(encode(r).find("podUID"), std::string::npos) << encode(r);
  auto bad = decodeRequest(R"({"v":1,"op":"allocate","containerID":"c","ifName":"e","podUID":7})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"podUID\""), std::string::npos) << bad.error().message;
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
    EXPECT_EQ(r.error().code, ipam::ErrorCode::kInvalidArgument) << c.line;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos)
        << c.line << " -> " << r.error().message;
  }
}

TEST(ProtocolTest, UnknownFieldsAndAFutureVersionStillDecode) {
  auto r = decodeRequest(R"({"v":2,"op":"status","future":{"x":1}})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->version, 2);  // the agent, not the decoder, answers code 1
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
  EXPECT_EQ(r.error().code, ipam::ErrorCode::kIo);
  EXPECT_NE(r.error().message.find("/nonexistent/agent.sock"), std::string::npos);
}

}  // namespace
}  // namespace vnetipam::agent
