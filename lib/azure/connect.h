// Wiring for a binary: real transports (cpprestsdk) to the endpoints of an AzureConfig, the
// credential it names, and the ARM and network clients on top. Tests build the pieces themselves
// around fakes instead.
#pragma once

#include <memory>
#include <string>

#include "lib/azure/arm_client.h"
#include "lib/azure/config.h"
#include "lib/azure/credentials.h"
#include "lib/azure/network.h"
#include "lib/http/transport.h"

namespace vnetipam::azure {

struct AzureClients {
  std::unique_ptr<http::HttpTransport> armTransport;
  std::unique_ptr<http::HttpTransport> authorityTransport;
  std::unique_ptr<http::HttpTransport> imdsTransport;
  std::unique_ptr<TokenCredential> credential;
  std::unique_ptr<ArmClient> arm;
  std::unique_ptr<NetworkClient> network;
};

// `clock` (and the observers in the options) must outlive the result. `extraCaPem` adds trusted
// CAs (PEM) to the system's, e.g. the certificate of an HTTPS azure-vnet-mock. kConfig when an
// endpoint URL cannot be used.
Result<std::unique_ptr<AzureClients>> connectAzure(const AzureConfig& config, Clock& clock,
                                                   ArmClientOptions armOptions = {},
                                                   CredentialOptions credentialOptions = {},
                                                   std::string extraCaPem = {});

}  // namespace vnetipam::azure
