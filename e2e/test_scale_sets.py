"""Scale-set nodes end to end: the real kube-apiserver, the real controller binary and the real
azure-vnet-mock, whose topology has a scale set in each orchestration mode.

A VM of a Flexible scale set is an ordinary VM (it names its scale set) with an ordinary NIC: its
node's block goes on that NIC and is Ready. A VM of a Uniform scale set cannot carry a prefix
(the published API has no way to put one on its NIC; the mock refuses writes to it): its node
gets no block, the controller writes nothing to ARM for it and asks ARM nothing about it, and the
Node says so once, in its VnetIpamNICProgrammed condition (False, UniformScaleSetUnsupported)
and one Warning Event.

Every wait is a poll on an observable condition with a deadline.
"""

from __future__ import annotations

import json

from azure_mock import (CONTROLLER_ROLE, RG, SUB, VNET, mock_fixture, provider_id, subnet_id,
                        topology_with_subnets)
from controller_harness import (POOL_LABEL, ControllerProcess, KubeApi, condition, metric_sum,
                                phase, poll)
from crd_helpers import PROGRAMMED_ON
from test_controller import api  # noqa: F401 (the fixture: CRDs applied, controller built)

SUBNET = "10.244.0.0/24"  # primaries 10.244.0.4 (flex-nic) and .5 (pool-nic): the first /28
POOL = "e2e-scaleset"
LABEL = "scaleset"
TOPOLOGY = topology_with_subnets([{"name": "ss", "prefix": SUBNET, "vms": 0, "vmPrefix": "ss"}],
                                 address_prefixes=["10.244.0.0/16"])
TOPOLOGY["virtualMachineScaleSets"] = [{"name": "pool", "orchestrationMode": "Uniform"},
                                       {"name": "flex", "orchestrationMode": "Flexible"}]
TOPOLOGY["networkInterfaces"] += [
    {"name": "flex-nic", "subnet": f"{VNET}/ss", "primaryIP": "10.244.0.4"},
    {"name": "pool-nic", "virtualMachineScaleSet": "pool", "instanceId": "0",
     "subnet": f"{VNET}/ss", "primaryIP": "10.244.0.5"}]
TOPOLOGY["virtualMachines"] += [
    {"name": "flex_1", "virtualMachineScaleSet": "flex", "networkInterfaces": ["flex-nic"]},
    {"virtualMachineScaleSet": "pool", "instanceId": "0", "networkInterfaces": ["pool-nic"]}]
UNIFORM_PROVIDER_ID = (f"azure:///subscriptions/{SUB}/resourceGroups/{RG}/providers/"
                       "Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/0")

# The controller's Azure role applies: a call outside it would fail here as on Azure.
ssmock = mock_fixture("--async-delay-ms", "20", "--seed", "6061", "--role-file",
                      str(CONTROLLER_ROLE), topology_doc=TOPOLOGY)


def node_condition(api: KubeApi, node: str) -> dict | None:
    status, doc = api.request("GET", f"/api/v1/nodes/{node}")
    assert status == 200, doc
    return condition(doc, "VnetIpamNICProgrammed")


def blocks_of(api: KubeApi, node: str) -> list[dict]:
    return [b for b in api.blocks({POOL}) if b["spec"]["nodeName"] == node]


def test_a_flexible_scale_set_vm_is_programmed_and_a_uniform_one_is_refused_once(
        api, kube, tmp_path, ssmock):
    nodes: list[str] = []
    ctl = None
    try:
        api.create_podsubnet(POOL, {"azureSubnetID": subnet_id("ss"), "blockPrefixLength": 28,
                                    "minFreeIPsPerNode": 8,
                                    "nodeSelector": {"matchLabels": {POOL_LABEL: LABEL}}})
        ctl = ControllerProcess(tmp_path / "ctl", kube.kubeconfig, mock=ssmock, cloud="azure",
                                identity="scaleset", leader_elect=False)
        ctl.start().wait_ready()
        poll("the PodSubnet carved from the Azure subnet",
             lambda: (api.podsubnet(POOL) or {}).get("status", {}).get("totalBlocks"), 30,
             describe=lambda: f"{api.podsubnet(POOL)}\n{ctl.tail(20)}")

        nodes.append("ss-uniform")
        api.create_node("ss-uniform", {POOL_LABEL: LABEL}, UNIFORM_PROVIDER_ID)
        refused = poll("ss-uniform's condition VnetIpamNICProgrammed=False",
                       lambda: (c := node_condition(api, "ss-uniform")) and c["status"] == "False"
                       and c, 30, describe=lambda: ctl.tail(20))
        assert refused["reason"] == "UniformScaleSetUnsupported", refused
        # docs/install-azure.md's command shows the same condition.
        shown = kube.kubectl("get", "node", "ss-uniform", "-o", "jsonpath="
                             '{.status.conditions[?(@.type=="VnetIpamNICProgrammed")]}').stdout
        assert json.loads(shown)["reason"] == "UniformScaleSetUnsupported", shown
        # And the one that lists the nodes' providerIDs, to tell their kind apart.
        listed = kube.kubectl("get", "nodes", "-o",
                              "custom-columns=NAME:.metadata.name,PROVIDER:.spec.providerID").stdout
        assert ["ss-uniform", UNIFORM_PROVIDER_ID] in [line.split() for line in
                                                       listed.splitlines()], listed
        assert "Uniform scale set pool" in refused["message"], refused
        assert "Flexible orchestration" in refused["message"], refused
        warnings = poll("a Warning UniformScaleSetUnsupported on ss-uniform",
                        lambda: [e for e in api.events_about("Node", "ss-uniform")
                                 if e.get("type") == "Warning"
                                 and e.get("reason") == "UniformScaleSetUnsupported"], 30)
        assert "Flexible orchestration" in warnings[0]["note"], warnings[0]
        assert not blocks_of(api, "ss-uniform")
        state = ssmock.state()
        assert state["counters"]["armWrites"] == 0, state["counters"]
        assert not ssmock.nic_prefixes(state).get("pool-nic"), state
        for lookup in ("GetVirtualMachine", "ListNetworkInterfaces"):
            assert metric_sum(ctl.metrics(), "vnetipam_azure_requests_total",
                              operation=lookup) == 0, f"ARM was asked about the VM ({lookup})"

        nodes.append("ss-flex")
        api.create_node("ss-flex", {POOL_LABEL: LABEL}, provider_id("flex_1"))

        def flex_ready():
            mine = blocks_of(api, "ss-flex")
            return mine if mine and all(phase(b) == "Ready" for b in mine) else None
        ready = poll("ss-flex's block Ready", flex_ready, 60, describe=lambda: ctl.tail(20))
        cidrs = sorted(b["spec"]["cidr"] for b in ready)
        assert sorted(ssmock.nic_prefixes()["flex-nic"]) == cidrs
        assert all(b["metadata"]["annotations"][PROGRAMMED_ON].endswith(
                   "/networkInterfaces/flex-nic") for b in ready), [b["metadata"] for b in ready]
        assert node_condition(api, "ss-flex") is None

        # Once, and terminal: the uniform node still has no block, one Warning (no series: it was
        # not emitted again), the same condition, and its NIC was never written.
        assert not blocks_of(api, "ss-uniform")
        warnings = [e for e in api.events_about("Node", "ss-uniform")
                    if e.get("reason") == "UniformScaleSetUnsupported"]
        assert len(warnings) == 1 and not warnings[0].get("series"), warnings
        assert node_condition(api, "ss-uniform") == refused
        assert not ssmock.nic_prefixes().get("pool-nic")
        # One lookup of a VM's NIC in all, the Flexible one's (a list of its resource group, the
        # one node waiting being worth it before any list): the uniform node's was never asked for.
        samples = ctl.metrics()
        lookups = {op: metric_sum(samples, "vnetipam_azure_requests_total", operation=op)
                   for op in ("GetVirtualMachine", "ListNetworkInterfaces")}
        assert sum(lookups.values()) == 1, (lookups, ctl.tail(40))
    finally:
        try:
            for n in nodes:
                api.delete_node(n)
            if ctl and ctl.running():
                poll("every block of the test gone", lambda: not api.blocks({POOL}), 60,
                     describe=lambda: ctl.tail(20))
                poll("no prefix left on the scale-set NICs",
                     lambda: not any(ssmock.nic_prefixes().get(n)
                                     for n in ("flex-nic", "pool-nic")), 60)
        finally:
            api.delete_podsubnet(POOL)
            if ctl:
                assert ctl.stop() == 0, ctl.tail()
