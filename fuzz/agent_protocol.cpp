// Fuzz target: one line on the node agent's socket, as the agent decodes a request and the
// plugin decodes an answer (node-agent/protocol.h). Whatever decodes must survive a round trip:
// encoding it and decoding that again gives the same value, since the agent and the plugin only
// ever see each other's encodings.
#include <string_view>

#include "fuzz/fuzz_target.h"
#include "node-agent/protocol.h"

namespace vnetipam::fuzz {

const char* const kTargetName = "agent_protocol";

void fuzzOne(std::string_view input) {
  if (const auto request = agent::decodeRequest(input)) {
    const auto again = agent::decodeRequest(agent::encode(*request));
    fuzzCheck(again.has_value(), "an encoded request does not decode");
    fuzzCheck(*again == *request, "a request changed in an encode/decode round trip");
  }
  if (const auto response = agent::decodeResponse(input)) {
    const auto again = agent::decodeResponse(agent::encode(*response));
    fuzzCheck(again.has_value(), "an encoded response does not decode");
    fuzzCheck(*again == *response, "a response changed in an encode/decode round trip");
  }
}

}  // namespace vnetipam::fuzz
