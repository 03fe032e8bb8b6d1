// Wiring for a binary: the real transport's options (lib/http's cpprestsdk client) for the API
// server a KubeConfig names. Tests build a Client around a fake transport instead.
#pragma once

#include "lib/http/cpprest_transport.h"
#include "lib/kube/config.h"

namespace vnetipam::kube {

// `options` (the caller's timeouts) with the server and TLS settings of `config`: every binary
// that talks to the API server connects the same way and chooses only how long it waits.
inline http::CpprestTransportOptions transportOptions(const KubeConfig& config,
                                                      http::CpprestTransportOptions options = {}) {
  options.server = config.server;
  options.caPem = config.caPem;
  options.clientCertPem = config.clientCertPem;
  options.clientKeyPem = config.clientKeyPem;
  options.insecureSkipTlsVerify = config.insecureSkipTlsVerify;
  return options;
}

}  // namespace vnetipam::kube
