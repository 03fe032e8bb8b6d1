// An in-memory API server for unit tests: an HttpTransport that stores objects with real
// resourceVersion semantics and answers as kube-apiserver does: create (AlreadyExists), get,
// update (PUT) and merge patch of finalizers (each with an optional resourceVersion
// precondition: Conflict), server-side apply of status (fields and conditions owned per field
// manager), delete (with finalizers and deletionTimestamp). Faults queued per method answer the
// next request of that method instead, and `intercept` sees every request first. Watches are not
// served: tests feed what a watch would bring themselves (the controller's apply*(), a second
// elector contending for one Lease). One fake for every test that needs an API server which
// answers by what was written; FakeTransport (unit/lib/http) is the scripted one.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/http/transport.h"
#include "unit/lib/http/fake_transport.h"

namespace vnetipam::kube::testing {

class FakeApiServer final : public http::testing::SendOnlyTransport {
 public:
  // The next request with `method` gets `answer` (an HTTP answer or a transport error) instead
  // of the server's; faults queued for other methods wait for theirs.
  void failNext(std::string method, http::Result<http::HttpResponse> answer) {
    std::lock_guard lock(mutex_);
    faults_.emplace_back(std::move(method), std::move(answer));
  }
  // The next request with `method` fails with `code` (no response).
  void failNext(std::string method, http::ErrorCode code) {
    failNext(std::move(method), std::unexpected(http::Error{code, "injected failure"}));
  }
  // The next request with `method` is answered with HTTP `code` and a Status body.
  void answerNext(std::string method, int code) {
    failNext(std::move(method), respond(code, status(code, "InternalError", "injected")));
  }
  // Sees every request first (under the server's lock: it must not call the server); an answer
  // it returns is used instead of the server's.
  std::function<std::optional<http::Result<http::HttpResponse>>(const http::HttpRequest&)>
      intercept;

  // Stores an object as if another writer had created it.
  void put(const std::string& path, nlohmann::json object) {
    std::lock_guard lock(mutex_);
    stamp(object);
    objects_[path] = std::move(object);
  }
  // Merges `status` into the stored object's status, as the agent's apply would.
  void patchStatus(const std::string& path, const nlohmann::json& status) {
    std::lock_guard lock(mutex_);
    auto& object = objects_.at(path);
    for (const auto& [k, v] : status.items())
      object["status"][k] = v;
    bump(object);
  }
  std::optional<nlohmann::json> get(const std::string& path) const {
    std::lock_guard lock(mutex_);
    const auto found = objects_.find(path);
    if (found == objects_.end()) return std::nullopt;
    return found->second;
  }
  // Every object under a collection path, as the items of a list.
  nlohmann::json items(const std::string& collection) const {
    std::lock_guard lock(mutex_);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [path, object] : objects_) {
      if (path.starts_with(collection + "/")) out.push_back(object);
    }
    return out;
  }
  std::vector<http::HttpRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t count(const std::string& method) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : requests_)
      n += r.method == method ? 1u : 0u;
    return n;
  }

  http::Result<http::HttpResponse> send(const http::HttpRequest& request) override {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
    if (intercept) {
      if (auto answer = intercept(request)) return *answer;
    }
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (it->first != request.method) continue;
      auto answer = std::move(it->second);
      faults_.erase(it);
      return answer;
    }
    const std::string path = request.target.substr(0, request.target.find('?'));
    const nlohmann::json body =
        request.body.empty() ? nlohmann::json() : nlohmann::json::parse(request.body);
    if (request.method == "POST") {
      const std::string objectPath = path + "/" + body["metadata"].value("name", "");
      if (objects_.contains(objectPath)) {
        return respond(409, status(409, "AlreadyExists", objectPath + " already exists"));
      }
      nlohmann::json object = body;
      stamp(object);
      objects_[objectPath] = object;
      std::erase_if(owned_, [&](const auto& entry) { return entry.first.first == objectPath; });
      return respond(201, object);
    }
    const bool statusPath = path.ends_with("/status");
    const std::string objectPath = statusPath ? path.substr(0, path.size() - 7) : path;
    const auto found = objects_.find(objectPath);
    if (found == objects_.end()) return respond(404, status(404, "NotFound", objectPath));
    nlohmann::json& object = found->second;
    if (request.method == "GET") return respond(200, object);
    if (request.method == "PATCH" && statusPath) {
      applyStatus(objectPath, fieldManagerOf(request.target), object, body["status"]);
      bump(object);
      return respond(200, object);
    }
    if ((request.method == "PUT" || request.method == "PATCH") && !preconditionHolds(body, object))
      return respond(409, status(409, "Conflict", "stale"));
    if (request.method == "PUT") {
      nlohmann::json updated = body;
      for (const char* kept : {"uid", "creationTimestamp"}) {
        if (object["metadata"].contains(kept)) updated["metadata"][kept] = object["metadata"][kept];
      }
      object = std::move(updated);
      bump(object);
      return respond(200, object);
    }
    if (request.method == "PATCH") {
      const auto& meta = body["metadata"];
      if (meta.contains("finalizers")) object["metadata"]["finalizers"] = meta["finalizers"];
      bump(object);
      nlohmann::json answer = object;
      if (object["metadata"].contains("deletionTimestamp") &&
          object["metadata"]["finalizers"].empty()) {
        objects_.erase(found);
      }
      return respond(200, answer);
    }
    if (request.method == "DELETE") {
      if (object["metadata"].value("finalizers", nlohmann::json::array()).empty()) {
        nlohmann::json answer = object;
        objects_.erase(found);
        return respond(200, answer);
      }
      object["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z";
      bump(object);
      return respond(200, object);
    }
    return respond(405, status(405, "MethodNotAllowed", request.method));
  }

 private:
  static nlohmann::json status(int code, const std::string& reason, const std::string& message) {
    return {{"kind", "Status"},
            {"status", "Failure"},
            {"code", code},
            {"reason", reason},
            {"message", message}};
  }
  static std::string fieldManagerOf(const std::string& target) {
    const auto at = target.find("fieldManager=");
    if (at == std::string::npos) return {};
    const auto start = at + 13;
    return target.substr(start, target.find('&', start) - start);
  }
  // A write that names a resourceVersion applies only to the object at that version.
  static bool preconditionHolds(const nlohmann::json& body, const nlohmann::json& object) {
    if (!body.is_object() || !body.contains("metadata")) return true;
    const auto& meta = body["metadata"];
    return !meta.contains("resourceVersion") ||
           meta["resourceVersion"] == object["metadata"]["resourceVersion"];
  }
  // Server-side apply of status, as far as the tests need it: each manager owns the top-level
  // status fields and the conditions (a list map keyed by type) it applied; an apply sets what it
  // sends and removes what the same manager applied before and leaves out now.
  void applyStatus(const std::string& path, const std::string& manager, nlohmann::json& object,
                   const nlohmann::json& status) {
    Owned& owned = owned_[{path, manager}];
    nlohmann::json& current = object["status"];
    if (!current.is_object()) current = nlohmann::json::object();
    Owned now;
    for (const auto& [k, v] : status.items()) {
      if (k == "conditions") continue;
      current[k] = v;
      now.fields.insert(k);
    }
    for (const std::string& k : owned.fields)
      if (!now.fields.contains(k)) current.erase(k);
    nlohmann::json conditions = current.value("conditions", nlohmann::json::array());
    for (const auto& c : status.value("conditions", nlohmann::json::array())) {
      const std::string type = c.value("type", "");
      now.conditions.insert(type);
      bool replaced = false;
      for (auto& old : conditions) {
        if (old.value("type", "") == type) {
          old = c;
          replaced = true;
        }
      }
      if (!replaced) conditions.push_back(c);
    }
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& c : conditions) {
      const std::string type = c.value("type", "");
      if (owned.conditions.contains(type) && !now.conditions.contains(type)) continue;
      kept.push_back(c);
    }
    if (kept.empty()) {
      current.erase("conditions");
    } else {
      current["conditions"] = std::move(kept);
    }
    owned = std::move(now);
  }
  static http::Result<http::HttpResponse> respond(int code, const nlohmann::json& body) {
    return http::HttpResponse{code, {}, body.dump()};
  }
  void stamp(nlohmann::json& object) {
    object["metadata"]["uid"] = "uid-" + std::to_string(++uids_);
    // A test may give its own (to order objects); the API server would not let it.
    if (!object["metadata"].contains("creationTimestamp")) {
      object["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
    }
    bump(object);
  }
  void bump(nlohmann::json& object) {
    object["metadata"]["resourceVersion"] = std::to_string(++version_);
  }

  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> objects_;
  std::deque<std::pair<std::string, http::Result<http::HttpResponse>>> faults_;
  struct Owned {
    std::set<std::string> fields;
    std::set<std::string> conditions;
  };
  std::map<std::pair<std::string, std::string>, Owned> owned_;  // (path, manager) -> applied
  std::vector<http::HttpRequest> requests_;
  int uids_ = 0;
  int version_ = 100;
};

}  // namespace vnetipam::kube::testing
