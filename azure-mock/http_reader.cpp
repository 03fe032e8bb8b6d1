#include "azure-mock/http_reader.h"

#include <algorithm>
#include <array>
#include <charconv>

#include <fmt/format.h>

#include "azure-mock/wire.h"
#include "lib/base/text.h"

namespace vnetipam::azuremock {

namespace {

// One read from the source at most this much: also the most a request can have buffered beyond
// a limit when it is refused.
constexpr std::size_t kReadChunk = 16 * 1024;
// A chunk-size line: hex digits, perhaps extensions; nothing legitimate comes near this.
constexpr std::size_t kMaxChunkLine = 1024;

ReadFailure badRequest(std::string message) {
  return {.status = 400, .code = "InvalidRequestFormat", .message = std::move(message)};
}

bool isToken(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

}  // namespace

HttpRequestReader::HttpRequestReader(ByteSource& source, RequestLimits limits)
    : source_(source), limits_(limits) {}

bool HttpRequestReader::fill() {
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  std::array<char, kReadChunk> chunk{};
  auto n = source_.read(chunk.data(), chunk.size());
  if (!n) {
    failure_ = n.error();
    return false;
  }
  if (*n == 0) {
    failure_.clear();
    return false;
  }
  buffer_.append(chunk.data(), *n);
  return true;
}

std::expected<std::string, ReadFailure> HttpRequestReader::readLine(std::size_t maxBytes,
                                                                    int tooLongStatus,
                                                                    std::string_view what) {
  std::size_t searched = 0;  // past consumed_: fill() moves consumed_, not what follows it
  while (true) {
    const auto lf = buffer_.find('\n', consumed_ + searched);
    if (lf != std::string::npos) {
      std::size_t end = lf;
      if (end > consumed_ && buffer_[end - 1] == '\r') --end;
      if (end - consumed_ > maxBytes) break;
      std::string line = buffer_.substr(consumed_, end - consumed_);
      consumed_ = lf + 1;
      return line;
    }
    searched = buffer_.size() - consumed_;
    if (searched > maxBytes + 1) break;  // + 1: a CR waiting for its LF
    if (!fill()) return std::unexpected(ReadFailure{.status = 0, .message = failure_});
  }
  return std::unexpected(ReadFailure{
      .status = tooLongStatus,
      .code = tooLongStatus == 431 ? "RequestHeaderFieldsTooLarge" : "InvalidRequestFormat",
      .message = fmt::format("The {} exceeds the maximum of {} bytes.", what, maxBytes)});
}

std::expected<void, ReadFailure> HttpRequestReader::readExactly(std::size_t n, std::string& out) {
  while (buffer_.size() - consumed_ < n) {
    const std::size_t have = buffer_.size() - consumed_;
    // Move what is buffered out first so the buffer never holds more than one read.
    out.append(buffer_, consumed_, have);
    consumed_ += have;
    n -= have;
    if (!fill())
      return std::unexpected(ReadFailure{
          .status = 0, .message = failure_.empty() ? "the body ended early" : failure_});
  }
  out.append(buffer_, consumed_, n);
  consumed_ += n;
  return {};
}

std::expected<RequestHead, ReadFailure> HttpRequestReader::readHead() {
  // Tolerate the empty lines some clients send between requests (RFC 9112 2.2).
  std::size_t budget = limits_.maxHeaderBytes;
  std::string line;
  do {
    auto l = readLine(budget, 431, "request line");
    if (!l) return std::unexpected(l.error());
    line = std::move(*l);
  } while (line.empty());
  budget -= std::min(budget, line.size() + 2);

  RequestHead head;
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.find(' ', sp2 + 1) != std::string::npos)
    return std::unexpected(badRequest("Cannot parse the request line."));
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  head.version = line.substr(sp2 + 1);
  if (!isToken(head.method) || head.target.empty() ||
      (head.version != "HTTP/1.1" && head.version != "HTTP/1.0"))
    return std::unexpected(badRequest("Cannot parse the request line."));
  head.keepAlive = head.version == "HTTP/1.1";

  while (true) {
    auto l = readLine(budget, 431, "request header section");
    if (!l) return std::unexpected(l.error());
    budget -= std::min(budget, l->size() + 2);
    if (l->empty()) break;
    if (head.headers.size() >= limits_.maxHeaderCount)
      return std::unexpected(ReadFailure{
          .status = 431,
          .code = "RequestHeaderFieldsTooLarge",
          .message = fmt::format("The request has more than {} headers.", limits_.maxHeaderCount)});
    const auto colon = l->find(':');
    if (colon == std::string::npos || !isToken(std::string_view(*l).substr(0, colon)))
      return std::unexpected(badRequest("Cannot parse a request header."));
    head.headers.emplace_back(l->substr(0, colon),
                              std::string(text::trimOws(std::string_view(*l).substr(colon + 1))));
  }

  // Framing: a request with both, or with a coding we do not speak, could be read two ways by
  // two parties (request smuggling), so it is refused rather than guessed.
  bool sawLength = false;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "Content-Length")) {
      std::size_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
          (head.contentLength && *head.contentLength != n))
        return std::unexpected(badRequest("The Content-Length header is not valid."));
      head.contentLength = n;
      sawLength = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      if (!iequals(value, "chunked") || head.chunked)
        return std::unexpected(
            ReadFailure{.status = 501,
                        .code = "NotImplemented",
                        .message = "Only the chunked transfer coding is supported."});
      head.chunked = true;
    } else if (iequals(name, "Connection")) {
      const std::string v = toLower(value);
      if (v.find("close") != std::string::npos) head.keepAlive = false;
      if (v.find("keep-alive") != std::string::npos && head.version == "HTTP/1.0")
        head.keepAlive = true;
    } else if (iequals(name, "Expect")) {
      head.expectContinue = iequals(value, "100-continue");
    }
  }
  if (sawLength && head.chunked)
    return std::unexpected(
        badRequest("The request has both Content-Length and Transfer-Encoding."));
  return head;
}

std::expected<std::string, ReadFailure> HttpRequestReader::readBody(const RequestHead& head) {
  const auto tooLarge = [&](std::string_view size) {
    return ReadFailure{
        .status = 413,
        .code = "RequestEntityTooLarge",
        .message = fmt::format("The request content size {} exceeds the maximum of {} bytes.", size,
                               limits_.maxBodyBytes)};
  };
  std::string body;
  if (!head.chunked) {
    const std::size_t n = head.contentLength.value_or(0);
    if (n > limits_.maxBodyBytes) return std::unexpected(tooLarge(std::to_string(n)));
    body.reserve(n);
    if (auto ok = readExactly(n, body); !ok) return std::unexpected(ok.error());
    return body;
  }
  while (true) {
    auto line = readLine(kMaxChunkLine, 400, "chunk size line");
    if (!line) return std::unexpected(line.error());
    const std::string_view size = text::trimOws(std::string_view(*line).substr(0, line->find(';')));
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), n, 16);
    if (ec == std::errc::result_out_of_range)
      return std::unexpected(tooLarge(fmt::format("0x{}", size)));
    if (size.empty() || ec != std::errc() || end != size.data() + size.size())
      return std::unexpected(badRequest("Cannot parse a chunk size."));
    if (n > limits_.maxBodyBytes - body.size())
      return std::unexpected(tooLarge(fmt::format("of at least {}", body.size() + n)));
    if (n == 0) break;
    if (auto ok = readExactly(n, body); !ok) return std::unexpected(ok.error());
    if (auto crlf = readLine(0, 400, "chunk"); !crlf) {
      if (crlf.error().status == 0) return std::unexpected(crlf.error());
      return std::unexpected(badRequest("A chunk's data is longer than its size."));
    }
  }
  // Trailers: read and dropped, within what is left of the header budget.
  std::size_t budget = limits_.maxHeaderBytes;
  for (std::size_t count = 0;; ++count) {
    auto l = readLine(budget, 431, "request trailer section");
    if (!l) return std::unexpected(l.error());
    if (l->empty()) break;
    budget -= std::min(budget, l->size() + 2);
    if (count >= limits_.maxHeaderCount)
      return std::unexpected(ReadFailure{.status = 431,
                                         .code = "RequestHeaderFieldsTooLarge",
                                         .message = "The request has too many trailers."});
  }
  return body;
}

}  // namespace vnetipam::azuremock
