"""lib/azure against azure-vnet-mock over HTTPS on loopback, with injected faults.

Drives build/e2e/tools/azure_probe (or $VNETIPAM_BUILD_DIR/e2e/tools/azure_probe): 200 /28 blocks
on 50 NICs are programmed, shuffled and removed while 10 % of ARM requests are throttled (429 +
Retry-After) and 10 % fail (500/503). After each step the mock's /mock/state must show exactly
the plan on every NIC, no duplicate ipConfiguration, and no write sent inside a Retry-After
window. A second test feeds the running mock bad input (malformed, oversized, chunked past the
limit, deeply nested, an unsigned token) and expects CloudError answers. A third deletes a NIC
over HTTP and follows the operation to the end. A fourth reads scale-set VMs of both
orchestration modes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections import Counter

from azure_mock import (API, NICS, RG, SUB, TENANT, VNET, Mock, block, mock_fixture, nic_id,
                        subnet_id, topology)
from built import BUILD_DIR
from netlab import FabricNetns
from polling import poll

PROBE = BUILD_DIR / "e2e" / "tools" / "azure_probe"
SEED = 20240501

mock = mock_fixture("--throttle-rate", "0.1", "--error-rate", "0.1", "--retry-after-seconds", "1",
                    "--async-delay-ms", "50", "--seed", str(SEED),
                    requires=(str(PROBE.relative_to(BUILD_DIR)),))


def run_probe(mock: Mock, plan: dict[str, list[str]], name: str) -> dict:
    azure_json = mock.write_azure_json(mock.workdir / "azure.json")
    plan_file = mock.workdir / f"plan-{name}.json"
    plan_file.write_text(json.dumps(plan))
    res = subprocess.run(
        [str(PROBE), "--azure-json", str(azure_json), "--arm", mock.url,
         "--authority", mock.url, "--ca-file", str(mock.cert), "--threads", "10",
         "--plan", str(plan_file)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, f"azure_probe {name}: {res.stdout}\n{res.stderr}"
    summary = json.loads(res.stdout)
    print(f"\n{name}: {json.dumps(summary)}")
    return summary


def assert_state_matches(mock: Mock, plan: dict[str, list[str]]) -> dict:
    doc = mock.state()
    nics = {n["name"]: n for n in doc["networkInterfaces"]}
    assert len(nics) == NICS
    all_prefixes = Counter()
    for nid, want in plan.items():
        nic = nics[nid.rsplit("/", 1)[1]]
        configs = nic["ipConfigurations"]
        names = [c["name"].lower() for c in configs]
        assert len(names) == len(set(names)), f"duplicate ipConfiguration names on {nid}: {names}"
        prefixes = [c["privateIPAddress"] for c in configs if "/" in c["privateIPAddress"]]
        assert len(prefixes) == len(set(prefixes)), f"duplicate prefixes on {nid}: {prefixes}"
        assert sorted(prefixes) == sorted(want), nid
        assert sum(1 for c in configs if c.get("primary")) == 1, nid
        all_prefixes.update(prefixes)
        assert not nic.get("pendingOperationId"), f"{nid} still has an operation running"
    dupes = [p for p, n in all_prefixes.items() if n > 1]
    assert not dupes, f"prefixes on more than one NIC: {dupes}"
    assert doc["retryAfterViolations"] == 0, doc["retryAfter"]
    return doc


def test_program_and_remove_200_blocks_under_faults(mock):
    ids = [nic_id(i) for i in range(NICS)]
    steps = [
        ("program", {n: [block(i, k) for k in range(4)] for i, n in enumerate(ids)}),
        # Even NICs swap two blocks for two new ones; odd NICs keep theirs (no write needed).
        ("mixed", {n: ([block(i, k) for k in (2, 3, 4, 5)] if i % 2 == 0
                       else [block(i, k) for k in range(4)]) for i, n in enumerate(ids)}),
        ("remove", {n: [] for n in ids}),
    ]
    expected = {
        "program": dict(written=NICS, added=4 * NICS, removed=0),
        "mixed": dict(written=NICS // 2, added=NICS, removed=NICS),
        "remove": dict(written=NICS, added=0, removed=4 * NICS),
    }
    for name, plan in steps:
        summary = run_probe(mock, plan, name)
        assert summary["failed"] == 0, summary["errors"]
        for key, value in expected[name].items():
            assert summary[key] == value, (name, key, summary)
        doc = assert_state_matches(mock, plan)
        print(f"{name}: mock counters {doc['counters']}, "
              f"Retry-After windows {doc['retryAfter']['windows']}")
    counters = mock.state()["counters"]
    # The faults really happened and were retried. The seed fixes the random stream, but 10
    # probe threads interleave requests differently each run, so the exact counts vary; with
    # ~600 requests at 10 % each, zero of either is below 1e-20 likely.
    assert counters["throttled"] > 0, counters
    assert counters["serverErrors"] > 0, counters
    assert not mock.state()["routes"]


def test_bad_input_gets_cloud_errors_and_the_mock_stays_up(mock):
    mock.set_faults(throttleRate=0, errorRate=0)
    try:
        auth = {"Authorization": f"Bearer {mock.token()}", "Content-Type": "application/json"}
        nic = nic_id(0)

        def expect(status, code, method, target, body=None, headers=auth):
            got, doc, _ = mock.request(method, target, body, headers)
            assert got == status, (method, target, got, doc)
            assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
            assert doc["error"]["code"] == code, doc
            assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]

        expect(400, "InvalidRequestFormat", "PUT", f"{nic}?{API}", b'{"properties": {')
        expect(400, "NoRegisteredProviderFound", "GET", f"{nic}?api-version=2019-01-01")
        expect(400, "InvalidApiVersionParameter", "GET", f"{nic}?api-version=yesterday")
        expect(400, "MissingApiVersionParameter", "GET", nic)
        expect(404, "NotFound", "GET", "/no/such/path")
        expect(404, "InvalidResourceType", "GET",
               f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
               f"bogusThings/x?{API}")
        expect(401, "AuthenticationFailed", "GET", f"{nic}?{API}", headers={})
        expect(413, "RequestEntityTooLarge", "PUT", f"{nic}?{API}",
               b"{" + b" " * (5 * 1024 * 1024) + b"}")
        # An iterable body goes chunked (http.client), so the size is only known while
        # reading: refused once it passes the limit.
        expect(413, "RequestEntityTooLarge", "PUT", f"{nic}?{API}",
               (b" " * 65536 for _ in range(128)))
        expect(431, "RequestHeaderFieldsTooLarge", "GET", f"{nic}?{API}",
               headers={**auth, "X-Big": "x" * (100 * 1024)})
        deep = b'{"location":"eastus","tags":{"a":' + b"[" * 100000 + b"]" * 100000 + b"}}"
        expect(400, "InvalidRequestContent", "PUT", f"{nic}?{API}", deep)
        # An unsigned token naming any client, as the mock once issued and accepted.
        unsigned = ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
            for part in ({"alg": "none", "typ": "JWT"},
                         {"aud": "https://management.azure.com/", "appid": "anyone",
                          "exp": int(time.time()) + 3600, "idp": "azure-vnet-mock"})) + "."
        expect(401, "InvalidAuthenticationToken", "GET", f"{nic}?{API}",
               headers={"Authorization": f"Bearer {unsigned}"})
        # Still up and serving.
        status, doc, _ = mock.request("GET", f"{nic}?{API}", headers=auth)
        assert status == 200 and doc["name"] == "node-0-nic", doc
        assert mock.proc.poll() is None
    finally:
        mock.set_faults(throttleRate=0.1, errorRate=0.1)


def test_sdn_emulation_routes_each_block_to_its_nic(tmp_path):
    """With --sdn-netns the mock keeps a route per NIC prefix in that namespace: added when the
    prefix is programmed, removed when it is released, so blocks reach their node."""
    fabric = FabricNetns()
    m = None
    try:  # the fabric is removed even when the mock fails to start
        m = Mock(tmp_path, ["--async-delay-ms", "50", "--sdn-netns", fabric.name])
        plan = {nic_id(0): [block(0, 0), block(0, 1)], nic_id(7): [block(7, 3)]}
        run_probe(m, plan, "sdn-program")
        want = {block(0, 0): "10.240.0.4", block(0, 1): "10.240.0.4", block(7, 3): "10.240.0.11"}
        assert fabric.wait_routes(want) == want

        run_probe(m, {nic_id(0): [block(0, 1)], nic_id(7): []}, "sdn-release")
        want = {block(0, 1): "10.240.0.4"}
        assert fabric.wait_routes(want) == want
        assert {r["prefix"]: r["nextHop"] for r in m.state()["routes"]} == want
    finally:
        if m is not None:
            m.stop()
        fabric.remove()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True,
                          text=True).stdout.find(fabric.name) == -1


def test_nic_delete_runs_as_an_operation_and_401s_challenge(tmp_path):
    """A NIC DELETE over HTTP as ARM answers it: a NIC its VM holds is refused (NicInUse); a free
    one is 202 with Azure-AsyncOperation and Location, the operation is polled to Succeeded, the
    Location then answers 204 and the NIC is 404. A 401 carries ARM's bearer challenge naming
    the mock as the authority and the topology's tenant."""
    m = Mock(tmp_path, ["--async-delay-ms", "300"], topology_doc=topology(2))

    def request(method, target, body=None, headers=None):
        status, doc, got = m.request(method, target, body, headers)
        return status, doc, {k.lower(): v for k, v in got.items()}

    try:
        status, doc, headers = request("GET", f"{nic_id(0)}?{API}")
        assert status == 401, doc
        assert headers.get("www-authenticate", "").startswith(
            f'Bearer authorization_uri="{m.url}/{TENANT}", error="invalid_token", '
            f'error_description="'), headers

        auth = {"Authorization": f"Bearer {m.token()}", "Content-Type": "application/json"}
        spare = nic_id(0, prefix="spare")
        body = {"location": "eastus", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"primary": True,
                                                 "subnet": {"id": subnet_id("nodes")}}}]}}
        status, doc, headers = request("PUT", f"{spare}?{API}", json.dumps(body).encode(), auth)
        assert status == 201, doc

        def operation_done(url: str):
            def check():
                st, d, _ = request("GET", url[url.index("/subscriptions"):], headers=auth)
                assert st == 200, d
                return d if d["status"] != "InProgress" else None
            return poll(f"operation {url}", check, 30)

        assert operation_done(headers["azure-asyncoperation"])["status"] == "Succeeded"

        status, doc, _ = request("DELETE", f"{nic_id(0)}?{API}", headers=auth)
        assert status == 400 and doc["error"]["code"] == "NicInUse", doc

        status, doc, headers = request("DELETE", f"{spare}?{API}", headers=auth)
        assert status == 202 and doc is None, (status, doc)
        location = headers["location"]
        assert "/operationResults/" in location, headers
        status, doc, _ = request("GET", f"{spare}?{API}", headers=auth)
        # Deleting until the operation completes (300 ms), gone after.
        assert (status == 200 and doc["properties"]["provisioningState"] == "Deleting") or \
            status == 404, (status, doc)
        assert operation_done(headers["azure-asyncoperation"])["status"] == "Succeeded"
        status, doc, _ = request("GET", location[location.index("/subscriptions"):],
                                   headers=auth)
        assert status == 204, (status, doc)
        status, doc, _ = request("GET", f"{spare}?{API}", headers=auth)
        assert status == 404 and doc["error"]["code"] == "ResourceNotFound", doc
        status, _, _ = request("DELETE", f"{spare}?{API}", headers=auth)
        assert status == 204
        assert "spare-0-nic" not in {n["name"] for n in m.state()["networkInterfaces"]}
    finally:
        m.stop()


def test_scale_set_vms_in_both_orchestration_modes(tmp_path):
    """Scale-set VMs as the published API has them, over HTTPS: a uniform scale set's VM and its
    NIC are read through Microsoft.Compute paths (the NIC with the scale-set NIC api-version) and
    cannot be written; a flexible scale set's VM is an ordinary VM naming its scale set, whose NIC
    takes a prefix like any other. Both survive a restart from the state file."""
    doc = topology(1)
    doc["virtualMachineScaleSets"] = [{"name": "pool", "orchestrationMode": "Uniform"},
                                      {"name": "flex", "orchestrationMode": "Flexible"}]
    doc["networkInterfaces"] += [
        {"name": "pool-nic", "virtualMachineScaleSet": "pool", "instanceId": "0",
         "subnet": f"{VNET}/nodes", "primaryIP": "10.240.0.100"},
        {"name": "flex-nic", "subnet": f"{VNET}/nodes", "primaryIP": "10.240.0.101"}]
    doc["virtualMachines"] += [
        {"virtualMachineScaleSet": "pool", "instanceId": "0", "networkInterfaces": ["pool-nic"]},
        {"name": "flex_1", "virtualMachineScaleSet": "flex", "networkInterfaces": ["flex-nic"]}]
    state_file = tmp_path / "state.json"
    rg = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
    pool_vm = f"{rg}/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/0"
    pool_nic = f"{pool_vm}/networkInterfaces/pool-nic"
    flex_nic = f"{rg}/Microsoft.Network/networkInterfaces/flex-nic"

    def start():
        workdir = tmp_path / f"run-{time.monotonic_ns()}"
        workdir.mkdir()
        return Mock(workdir, ["--async-delay-ms", "0", "--state-file", str(state_file)],
                    topology_doc=doc)

    m = start()
    try:
        auth = {"Authorization": f"Bearer {m.token()}", "Content-Type": "application/json"}
        status, vm, _ = m.request("GET", f"{pool_vm}?api-version=2023-09-01", headers=auth)
        assert status == 200, vm
        assert vm["name"] == "pool_0" and vm["instanceId"] == "0", vm
        configs = vm["properties"]["networkProfileConfiguration"]["networkInterfaceConfigurations"]
        ip_props = configs[0]["properties"]["ipConfigurations"][0]["properties"]
        assert "privateIPAddressPrefixLength" not in ip_props, ip_props
        status, nic, _ = m.request("GET", f"{pool_nic}?api-version=2017-03-30", headers=auth)
        assert status == 200, nic
        assert nic["properties"]["virtualMachine"]["id"] == pool_vm, nic
        status, err, _ = m.request("PUT", f"{pool_nic}?api-version=2017-03-30",
                                   json.dumps(nic).encode(), auth)
        assert status == 405, err

        status, vm, _ = m.request(
            "GET", f"{rg}/Microsoft.Compute/virtualMachines/flex_1?api-version=2023-09-01",
            headers=auth)
        assert status == 200, vm
        assert vm["properties"]["virtualMachineScaleSet"]["id"].endswith(
            "/virtualMachineScaleSets/flex"), vm
        body = {"location": "eastus", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"primary": True, "privateIPAddress": "10.240.0.101",
                                                 "subnet": {"id": subnet_id("nodes")}}},
            {"name": "vnetipam-10-240-9-0-28", "properties": {
                "privateIPAddress": "10.240.9.0/28", "privateIPAddressPrefixLength": 28,
                "privateIPAllocationMethod": "Static", "subnet": {"id": subnet_id("nodes")}}}]}}
        status, got, _ = m.request("PUT", f"{flex_nic}?{API}", json.dumps(body).encode(), auth)
        assert status == 200, got
        assert poll("flex-nic's prefix committed",
                    lambda: m.nic_prefixes().get("flex-nic") == ["10.240.9.0/28"] or None, 10)
    finally:
        m.stop()

    m = start()
    try:
        auth = {"Authorization": f"Bearer {m.token()}"}
        status, nic, _ = m.request("GET", f"{pool_nic}?api-version=2017-03-30", headers=auth)
        assert status == 200 and nic["name"] == "pool-nic", nic
        assert m.nic_prefixes().get("flex-nic") == ["10.240.9.0/28"]
    finally:
        m.stop()
