#include "lib/azure/connect.h"

#include <fmt/format.h>

#include "lib/http/cpprest_transport.h"

namespace vnetipam::azure {

namespace {

Result<std::unique_ptr<http::HttpTransport>> transportTo(const std::string& url,
                                                         const std::string& caPem,
                                                         std::chrono::seconds timeout,
                                                         std::string_view what) {
  auto transport = http::CpprestTransportImpl::create(
      {.server = url, .caPem = caPem, .requestTimeout = timeout, .streamTimeout = timeout});
  if (!transport) {
    return fail(ErrorCode::kConfig,
                fmt::format("{} endpoint: {}", what, transport.error().message));
  }
  return std::unique_ptr<http::HttpTransport>(std::move(*transport));
}

}  // namespace

Result<std::unique_ptr<AzureClients>> connectAzure(const AzureConfig& config, Clock& clock,
                                                   ArmClientOptions armOptions,
                                                   CredentialOptions credentialOptions,
                                                   std::string extraCaPem) {
  auto clients = std::make_unique<AzureClients>();
  // A NIC PUT answers at once (the work is the async operation), so 60 s only cuts a hung
  // connection. IMDS is local to the host and quick, or absent.
  auto arm =
      transportTo(config.endpoints.resourceManager, extraCaPem, std::chrono::seconds{60}, "ARM");
  if (!arm) return std::unexpected(arm.error());
  auto authority = transportTo(config.endpoints.authorityHost, extraCaPem, std::chrono::seconds{30},
                               "authority");
  if (!authority) return std::unexpected(authority.error());
  auto imds = transportTo(config.endpoints.imds, extraCaPem, std::chrono::seconds{10}, "IMDS");
  if (!imds) return std::unexpected(imds.error());
  clients->armTransport = std::move(*arm);
  clients->authorityTransport = std::move(*authority);
  clients->imdsTransport = std::move(*imds);
  if (!credentialOptions.observer) credentialOptions.observer = armOptions.observer;
  clients->credential =
      makeCredential(config, *clients->authorityTransport, *clients->imdsTransport, clock,
                     std::move(credentialOptions));
  clients->arm =
      std::make_unique<ArmClient>(*clients->armTransport, config.endpoints.resourceManager,
                                  *clients->credential, clock, std::move(armOptions));
  clients->network = std::make_unique<NetworkClient>(*clients->arm);
  return clients;
}

}  // namespace vnetipam::azure
