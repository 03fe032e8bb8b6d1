// The operations endpoint every vnet-ipam daemon serves: Prometheus metrics and the two health
// probes Kubernetes asks for.
//
//   GET /metrics  the registry in the Prometheus text format (version 0.0.4)
//   GET /healthz  200 "ok" while every liveness check passes, else 500 naming the failed check
//   GET /readyz   200 "ok" while every liveness and readiness check passes, else 500 naming it
//
// Anything else is 404; a method other than GET or HEAD is 405. Checks run on a pool thread, one
// check list at a time, so they must be cheap and thread-safe (read an atomic, compare a
// timestamp).
//
// The endpoint is reachable by whatever reaches the host port, so clients get bounded resources:
// a request head over 16 KiB gets 431, a body over 4 KiB 413; a request must be complete 2 s after
// the connection is ready for it (408), a connection without a request byte for 1 s is closed, an
// answer must be taken within 5 s; at most 128 connections are kept, a new one displacing the
// longest-waiting, and keep-alive ends after 100 requests. Idle and slow clients only ever cost a
// connection slot: requests reach the (two) handler threads complete, so /healthz answers whatever
// they do.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lib/base/host_port.h"

namespace prometheus {
class Registry;
}

namespace vnetipam::observe {

// A check returns nothing when healthy, or a short reason ("informer for ipblocks not synced").
using HealthCheck = std::function<std::expected<void, std::string>()>;

enum class Probe {
  kLiveness,   // failing means "restart me": /healthz and /readyz both fail
  kReadiness,  // failing means "do not send me work yet": only /readyz fails
};

class HttpServer {
 public:
  // `address` is HOST:PORT, e.g. "0.0.0.0:9090" or "127.0.0.1:0" (port 0: the kernel picks; read
  // it back with port() after start()).
  HttpServer(std::string address, std::shared_ptr<prometheus::Registry> registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before start(); `name` appears in the failure text.
  void addCheck(std::string name, Probe probe, HealthCheck check);

  // Binds and serves on a background thread. The error names the address and the reason.
  std::expected<void, std::string> start();
  // Stops serving; idempotent. Called by the destructor.
  void stop();

  // The bound port (useful with port 0). 0 before start().
  int port() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// base::splitHostPort, where ":PORT" means 0.0.0.0. The error names the input.
std::expected<base::HostPort, std::string> parseHostPort(const std::string& address);

}  // namespace vnetipam::observe
