// HttpTransport over cpprestsdk's ASIO client: HTTPS with a custom CA, client certificates for
// mTLS, and streamed bodies for watches. The only file that includes cpprest headers.
//
// cpprestsdk's timeout is an inactivity timer reset on every read, not a deadline, and a quiet
// watch is cut when it fires. So streams use their own client whose timeout must be longer than
// any watch timeoutSeconds the caller asks for (and the caller reconnects when a watch ends).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "lib/http/transport.h"

namespace vnetipam::http {

struct CpprestTransportOptions {
  std::string server;         // "https://10.0.0.1:6443" (a path prefix is allowed)
  std::string caPem;          // extra trusted CAs, PEM; empty: the system's defaults only
  std::string clientCertPem;  // client certificate chain for mTLS, PEM; empty: none
  std::string clientKeyPem;   // its private key, PEM; required with clientCertPem
  bool insecureSkipTlsVerify = false;
  std::chrono::seconds requestTimeout{30};
  std::chrono::seconds streamTimeout{330};  // > the largest watch timeoutSeconds (300 by default)
};

class CpprestTransportImpl final : public HttpTransport {
 public:
  // Fails (kConfig) when the server URL does not parse or a certificate is given without its key.
  static Result<std::unique_ptr<CpprestTransportImpl>> create(CpprestTransportOptions options);
  ~CpprestTransportImpl() override;

  Result<HttpResponse> send(const HttpRequest& request) override;
  Result<HttpResponse> stream(const HttpRequest& request,
                              const std::function<bool(std::string_view)>& onChunk,
                              CancelSignal& cancel) override;

 private:
  struct Clients;
  explicit CpprestTransportImpl(std::unique_ptr<Clients> clients);
  std::unique_ptr<Clients> clients_;
};

}  // namespace vnetipam::http
