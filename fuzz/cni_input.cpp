// Fuzz target: what a container runtime hands the CNI plugins, the CNI_* environment and the
// network configuration on stdin, through the decoding both plugins share (parseEnv,
// parseNetConf, prevResult), vnet-ipam's own (parseIpamConfig, CNI_ARGS' K8S_POD_UID, the agent
// protocol both ways) and vnet-transparent's (parseTransparentConfig).
//
// Input: the environment as NAME=value entries, each ended by a NUL, then one more NUL, then
// stdin. (environ cannot hold a NUL either.) An input without the empty entry is all environment.
//
// Besides crashes, it checks the dispatcher's backstop: runPlugin turns an exception that
// escaped a decoder into an "unexpected failure" or "could not be decoded" error, which the
// decoders promise never to need, so either one aborts here.
#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_target.h"
#include "node-agent/cni/input_bounds.h"
#include "node-agent/cni/ipam_plugin.h"
#include "node-agent/cni/skel.h"
#include "node-agent/cni/spec.h"
#include "node-agent/cni/transparent_plugin.h"
#include "node-agent/protocol.h"

namespace vnetipam::fuzz {

const char* const kTargetName = "cni_input";

namespace {

using namespace vnetipam::cni;

// Answers like the agent would, through the real wire format both ways: the request is encoded
// and decoded as the agent decodes it, and the answer encoded and decoded as the plugin reads it.
class WireAgentClient final : public AgentClient {
 public:
  base::Result<agent::Response> call(const std::string&, const agent::Request& request,
                                     std::chrono::milliseconds) override {
    agent::Response response;
    const auto decoded = agent::decodeRequest(agent::encode(request));
    if (!decoded) {
      response =
          agent::Response::failure(agent::ErrorCode::kDecodeFailure, decoded.error().message);
    } else if (decoded->op == agent::Op::kAllocate || decoded->op == agent::Op::kCheck) {
      response.allocations.push_back({
          .owner = decoded->owner,
          .podNamespace = decoded->podNamespace,
          .podName = decoded->podName,
          .podUID = decoded->podUID,
          .address = ipam::IPAddress::parse("10.240.0.17").value(),
          .block = ipam::Prefix::parse("10.240.0.16/28").value(),
          .blockName = "pods-10-240-0-16-28",
      });
    } else if (decoded->op == agent::Op::kStatus) {
      response.ready = true;
      response.freeIPs = 12;
    }
    return agent::decodeResponse(agent::encode(response));
  }
};

// vnet-transparent's handlers need a network namespace and netlink; their decoding does not.
Plugin transparentDecoding() {
  const auto decode = [](const Env&, const NetConf& conf) -> Outcome<void> {
    auto config = parseTransparentConfig(conf);
    if (!config) return std::unexpected(config.error());
    return {};
  };
  return Plugin{
      .name = "vnet-transparent",
      .add = [decode](const Env& env, const NetConf& conf) -> Outcome<Result> {
        if (auto ok = decode(env, conf); !ok) return std::unexpected(ok.error());
        return conf.prevResult.value_or(Result{});
      },
      .del = decode,
      .check = decode,
      .gc = decode,
      .status = decode,
  };
}

void checkInvocation(const Plugin& plugin, const Invocation& invocation) {
  if (invocation.out.empty()) return;
  const auto doc = nlohmann::json::parse(invocation.out, nullptr, false);
  fuzzCheck(doc.is_object(), "the plugin printed something that is not a JSON object");
  if (invocation.exitCode == 0) return;
  const auto msg = doc.find("msg");
  fuzzCheck(msg != doc.end() && msg->is_string(), "an error object without a msg");
  const auto& text = msg->get_ref<const std::string&>();
  fuzzCheck(
      !text.starts_with(plugin.name + ": unexpected failure: ") &&
          !text.starts_with(plugin.name + ": the network configuration could not be decoded: "),
      "runPlugin's backstop caught an exception from a decoder");
}

}  // namespace

void fuzzOne(std::string_view input) {
  std::map<std::string, std::string> environment;
  std::string_view rest = input;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    const std::string_view entry = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (entry.empty()) break;  // the end of the environment
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;  // as pluginMain reads environ
    environment.insert_or_assign(std::string(entry.substr(0, eq)),
                                 std::string(entry.substr(eq + 1)));
  }
  const std::string_view stdinText = rest;

  // The decoders one by one, so a finding points at one of them.
  const auto env = parseEnv(environment);
  if (env) (void)podUIDFromArgs(*env);
  const auto conf = parseNetConf(stdinText);
  if (conf) {
    (void)parseIpamConfig(*conf);
    (void)parseTransparentConfig(*conf);
    if (conf->prevResult) (void)dumpJson(toJson(*conf->prevResult, conf->cniVersion));
  } else {
    (void)errorJson(conf.error(), std::string(kLatestVersion));
  }

  // Then whole invocations, as each plugin's main runs them.
  WireAgentClient agentClient;
  const Plugin ipamPlugin = makeIpamPlugin(agentClient);
  checkInvocation(ipamPlugin, runPlugin(ipamPlugin, environment, stdinText));
  const Plugin transparent = transparentDecoding();
  checkInvocation(transparent, runPlugin(transparent, environment, stdinText));
}

}  // namespace vnetipam::fuzz
