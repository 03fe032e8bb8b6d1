// Which NIC is a VM's primary one, learned in bulk: one list of a resource group's NICs (one GET
// per page) answers for every VM in it, where a VM GET answers for one. A node joins with its NIC
// read and one PUT; without this it also costs a VM GET. docs/design.md 3.3 has the numbers.
//
// A list is worth making when it costs no more reads than the VM GETs it saves: when at least as
// many nodes of the group wait for their NIC as the group's last list had pages (one before any
// list). A node joining alone reads its VM; a thousand joining at once share one list. A list
// that is running is joined rather than repeated, and answers each node that joined it as soon as
// the page naming its VM arrives, not after the last page (a group of many pages would otherwise
// hold every node back for all of them).
//
// What a list says is a hint, taken once per VM: the caller reads the NIC anyway and checks that
// it is on the node's VM (NicState::vmId); a NIC that is not, or is gone, is looked up through the
// VM (Cloud::primaryNicOfNode), which is also the answer for a VM no list showed.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "controller/cloud.h"

namespace vnetipam::controller {

class NicDirectory {
 public:
  // `cloud` must outlive this. Thread-safe: the NIC passes of many nodes ask at once.
  explicit NicDirectory(Cloud& cloud) : cloud_(cloud) {}

  // The primary NIC of VM `vmId` (in resource group `resourceGroupId`) as a list of the group
  // showed it, taken out of the directory; nullopt when a VM GET should answer instead. Joins a
  // list of the group that is running; makes one when `waiting(n)` says that at least `n` nodes of
  // the group wait for their NIC (this one included; called only then, with n the group's last
  // list's pages, so it may stop counting at n). A list that fails is logged and doubles what the
  // next one needs; what its pages showed before the failure still answers.
  std::optional<std::string> take(std::string_view resourceGroupId, std::string_view vmId,
                                  const std::function<bool(std::size_t n)>& waiting);

  // For tests and the log: the lists made; the nodes waiting in a running list.
  int lists() const;
  int joined() const;

 private:
  struct Listed {
    std::string nicId;
    int list = 0;  // the Group::lists count of the list that showed it
  };
  struct Group {
    bool listing = false;
    int pages = 1;  // of the last list; before any, one
    int lists = 0;  // lists made of this group
    // What the lists showed and no node has taken yet: armIdKey of a VM -> its NIC. A list that
    // completes drops what only earlier lists showed.
    std::unordered_map<std::string, Listed> primaryNic;
  };
  static std::optional<std::string> takeFrom(Group& group, const std::string& vmKey);

  Cloud& cloud_;
  mutable std::mutex mutex_;
  std::condition_variable listed_;
  std::map<std::string, Group> groups_;  // armIdKey of the resource group -> what it is known for
  int joined_ = 0;
};

}  // namespace vnetipam::controller
