#include "azure-mock/http_reader.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace vnetipam::azuremock {
namespace {

// Serves bytes from a generator in reads of at most `step`, counting what it handed out, so a
// test can tell how much of a request the reader pulled before it gave up.
class CountingSource final : public ByteSource {
 public:
  // `next(offset)`: the byte at `offset`, or nullopt at the end of the stream.
  CountingSource(std::function<std::optional<char>(std::size_t)> next, std::size_t step = 4096)
      : next_(std::move(next)), step_(step) {}
  explicit CountingSource(std::string text, std::size_t step = 4096)
      : CountingSource(
            [text](std::size_t i) -> std::optional<char> {
              return i < text.size() ? std::optional(text[i]) : std::nullopt;
            },
            step) {}

  std::expected<std::size_t, std::string> read(char* out, std::size_t max) override {
    std::size_t n = 0;
    while (n < std::min(max, step_)) {
      auto c = next_(served_);
      if (!c) break;
      out[n++] = *c;
      ++served_;
    }
    return n;
  }
  std::size_t served() const { return served_; }

 private:
  std::function<std::optional<char>(std::size_t)> next_;
  std::size_t step_;
  std::size_t served_ = 0;
};

constexpr RequestLimits kLimits{
    .maxHeaderBytes = 4096, .maxHeaderCount = 10, .maxBodyBytes = 64 * 1024};

TEST(HttpRequestReader, ReadsPipelinedRequestsWithBothFramings) {
  CountingSource source(
      "PUT /a?b=c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
      "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n",
      7);
  HttpRequestReader reader(source, kLimits);
  auto head = reader.readHead();
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_EQ(head->method, "PUT");
  EXPECT_EQ(head->target, "/a?b=c");
  EXPECT_EQ(head->headers.size(), 2u);
  EXPECT_TRUE(head->keepAlive);
  EXPECT_EQ(reader.readBody(*head).value_or("?"), "hello");
  head = reader.readHead();
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_TRUE(head->chunked);
  EXPECT_TRUE(head->expectContinue);
  EXPECT_EQ(reader.readBody(*head).value_or("?"), "abcde");
  head = reader.readHead();
  ASSERT_TRUE(head) << head.error().message;
  EXPECT_FALSE(head->keepAlive);
  EXPECT_EQ(reader.readBody(*head).value_or("?"), "");
  head = reader.readHead();
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().status, 0) << "a clean end";
  EXPECT_EQ(head.error().message, "");
}

// A chunked body far over the limit, generated on the fly: the reader must refuse it with 413
// after pulling little more than the limit, not read (or buffer) the whole of it.
TEST(HttpRequestReader, OversizedChunkedBodyStopsEarly) {
  const std::string head = "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk = fmt::format("1000\r\n{}\r\n", std::string(0x1000, 'a'));
  constexpr std::size_t kChunks = 100000;  // ~400 MB announced in 4 KiB chunks
  CountingSource source([&](std::size_t i) -> std::optional<char> {
    if (i < head.size()) return head[i];
    i -= head.size();
    if (i / chunk.size() >= kChunks) return std::nullopt;
    return chunk[i % chunk.size()];
  });
  HttpRequestReader reader(source, kLimits);
  auto h = reader.readHead();
  ASSERT_TRUE(h);
  auto body = reader.readBody(*h);
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().status, 413);
  EXPECT_EQ(body.error().code, "RequestEntityTooLarge");
  EXPECT_LT(source.served(), kLimits.maxBodyBytes + 2 * 16 * 1024)
      << "read far past the limit before refusing";
}

TEST(HttpRequestReader, OneHugeChunkIsRefusedBeforeItsData) {
  CountingSource source("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7fffffff\r\n" +
                        std::string(1000, 'a'));
  HttpRequestReader reader(source, kLimits);
  auto h = reader.readHead();
  ASSERT_TRUE(h);
  EXPECT_EQ(reader.readBody(*h).error().status, 413);
  CountingSource overflow(
      "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "fffffffffffffffffffffff\r\n");
  HttpRequestReader reader2(overflow, kLimits);
  h = reader2.readHead();
  ASSERT_TRUE(h);
  EXPECT_EQ(reader2.readBody(*h).error().status, 413);
}

TEST(HttpRequestReader, OversizedContentLengthIsRefusedUnread) {
  const std::string head = "PUT /x HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n";
  CountingSource source(
      [&](std::size_t i) -> std::optional<char> { return i < head.size() ? head[i] : 'a'; });
  HttpRequestReader reader(source, kLimits);
  auto h = reader.readHead();
  ASSERT_TRUE(h);
  EXPECT_EQ(reader.readBody(*h).error().status, 413);
  EXPECT_LE(source.served(), head.size() + 4096) << "no more than the one read with the head";
}

TEST(HttpRequestReader, BoundsHeaders) {
  // An endless header line.
  const std::string start = "GET /x HTTP/1.1\r\nX-Long: ";
  CountingSource endless(
      [&](std::size_t i) -> std::optional<char> { return i < start.size() ? start[i] : 'a'; });
  HttpRequestReader reader(endless, kLimits);
  auto h = reader.readHead();
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().status, 431);
  EXPECT_LT(endless.served(), kLimits.maxHeaderBytes + 2 * 4096);
  // Too many headers.
  std::string many = "GET /x HTTP/1.1\r\n";
  for (int i = 0; i < 11; ++i)
    many += fmt::format("X-{}: 1\r\n", i);
  CountingSource manySource(many + "\r\n");
  HttpRequestReader reader2(manySource, kLimits);
  EXPECT_EQ(reader2.readHead().error().status, 431);
  // An endless request line.
  CountingSource endlessLine([](std::size_t) -> std::optional<char> { return 'G'; });
  HttpRequestReader reader3(endlessLine, kLimits);
  EXPECT_EQ(reader3.readHead().error().status, 431);
  EXPECT_LT(endlessLine.served(), kLimits.maxHeaderBytes + 2 * 4096);
}

TEST(HttpRequestReader, RefusesAmbiguousFraming) {
  const auto status = [](std::string text) {
    CountingSource source(std::move(text));
    HttpRequestReader reader(source, kLimits);
    auto h = reader.readHead();
    if (!h) return h.error().status;
    auto b = reader.readBody(*h);
    return b ? 200 : b.error().status;
  };
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 400);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n"),
            400);
  EXPECT_EQ(status("GARBAGE\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /x HTTP/2.0\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /x HTTP/1.1\r\nNo colon\r\n\r\n"), 400);
  EXPECT_EQ(status("PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"), 0) << "cut short";
  EXPECT_EQ(status("GET /x HTTP/1.1\r\nContent-Length: 1\r\n\r\na"), 200);
}

}  // namespace
}  // namespace vnetipam::azuremock
