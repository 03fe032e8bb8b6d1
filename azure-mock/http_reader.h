// Reads HTTP/1.1 requests off a byte stream with every size bounded while reading: the request
// line and headers (bytes and count), and the body, whether framed by Content-Length or chunked.
// A request over a limit is refused as soon as the limit is passed, so a client cannot make the
// mock hold more than the limit (plus one read buffer) of any request in memory. Pure apart from
// the ByteSource it is given, and unit tested with an in-memory one.
#pragma once

#include <cstddef>
#include <expected>
#include <optional>
#include <string>

#include "azure-mock/arm_handler.h"

namespace vnetipam::azuremock {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to `max` bytes into `out`; 0 at the end of the stream. The error says what failed (a
  // timeout, a reset, a TLS error). Blocks until at least one byte, the end or an error.
  virtual std::expected<std::size_t, std::string> read(char* out, std::size_t max) = 0;
};

struct RequestLimits {
  std::size_t maxHeaderBytes = 64 * 1024;  // request line and headers together
  std::size_t maxHeaderCount = 100;
  std::size_t maxBodyBytes = 4 * 1024 * 1024;  // ARM's request size limit
};

struct RequestHead {
  std::string method;
  std::string target;   // as sent: "/path?query"
  std::string version;  // "HTTP/1.1"
  HeaderList headers;
  std::optional<std::size_t> contentLength;
  bool chunked = false;
  bool keepAlive = true;        // HTTP/1.1 without "Connection: close"
  bool expectContinue = false;  // "Expect: 100-continue"
};

// Why a request could not be read. status 0: the connection ended or failed, answer nothing;
// otherwise answer status with a CloudError of code and message, then close the connection (the
// rest of the stream can no longer be framed).
struct ReadFailure {
  int status = 0;
  std::string code;
  std::string message;
};

class HttpRequestReader {
 public:
  HttpRequestReader(ByteSource& source, RequestLimits limits);

  // The next request's line and headers. A clean end of the stream before its first byte is a
  // ReadFailure with status 0 and an empty message.
  std::expected<RequestHead, ReadFailure> readHead();
  // That request's body. Refuses a Content-Length over the limit before reading any of it, and a
  // chunked body as soon as the chunks announced pass the limit.
  std::expected<std::string, ReadFailure> readBody(const RequestHead& head);

 private:
  // Ensures at least one more byte is buffered; false at the end of the stream or on an error
  // (in failure_).
  bool fill();
  // One CRLF-terminated line (without the CRLF), at most `maxBytes` long.
  std::expected<std::string, ReadFailure> readLine(std::size_t maxBytes, int tooLongStatus,
                                                   std::string_view what);
  std::expected<void, ReadFailure> readExactly(std::size_t n, std::string& out);

  ByteSource& source_;
  RequestLimits limits_;
  std::string buffer_;        // read but not yet consumed
  std::size_t consumed_ = 0;  // of buffer_
  std::string failure_;       // why the last fill() failed ("" at a clean end)
};

}  // namespace vnetipam::azuremock
