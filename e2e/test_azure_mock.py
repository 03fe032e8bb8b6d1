"""lib/azure against azure-vnet-mock over HTTPS on loopback, with injected faults.

Drives build/e2e/tools/azure_probe (or $VNETIPAM_BUILD_DIR/e2e/tools/azure_probe): 200 /28 blocks
on 50 NICs are programmed, shuffled and removed while 10 % of ARM requests are throttled (429 +
Retry-After) and 10 % fail (500/503). After each step the mock's /mock/state must show exactly
the plan on every NIC, no duplicate ipConfiguration, and no write sent inside a Retry-After
window. A second test feeds the running mock bad input and expects CloudError answers.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from built import BUILD_DIR, built

MOCK = BUILD_DIR / "azure-mock" / "azure-vnet-mock"
PROBE = BUILD_DIR / "e2e" / "tools" / "azure_probe"

SUB = "00000000-0000-0000-0000-0000000000e2"
TENANT = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-e2e"
CLIENT_ID = "vnet-ipam-e2e"
CLIENT_SECRET = "e2e-not-a-secret"
NICS = 50
API = "api-version=2024-05-01"
SEED = 20240501


def nic_id(i: int) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
        f"networkInterfaces/node-{i}-nic"
    )


def block(i: int, k: int) -> str:
    """The k-th aligned /28 of NIC i: 10.240.(1+i).(16k)/28, outside the primaries' /24."""
    return f"10.240.{1 + i}.{16 * k}/28"


def topology() -> dict:
    return {
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "location": "eastus",
        "clients": [
            {"tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
        ],
        "virtualNetworks": [
            {
                "name": "vnet-e2e",
                "addressPrefixes": ["10.240.0.0/16"],
                "subnets": [{"name": "nodes", "addressPrefix": "10.240.0.0/16"}],
            }
        ],
        "networkInterfaces": [
            {"name": f"node-{i}-nic", "subnet": "vnet-e2e/nodes", "primaryIP": f"10.240.0.{4 + i}"}
            for i in range(NICS)
        ],
        "virtualMachines": [
            {"name": f"node-{i}", "networkInterfaces": [f"node-{i}-nic"]} for i in range(NICS)
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mock:
    """azure-vnet-mock over HTTPS with a self-signed certificate for 127.0.0.1."""

    def __init__(self, workdir: Path, extra_args: list[str]):
        self.workdir = workdir
        self.cert = workdir / "cert.pem"
        key = workdir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )
        (workdir / "topology.json").write_text(json.dumps(topology()))
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = open(workdir / "mock.log", "w")
        self.proc = subprocess.Popen(
            [str(MOCK), "--listen", self.url, "--cert", str(self.cert), "--key", str(key),
             "--topology", str(workdir / "topology.json"), *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.ssl = ssl.create_default_context(cafile=str(self.cert))
        self._wait_healthy(deadline=time.monotonic() + 20)

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"mock exited {self.proc.returncode}: {self.log_text()}")
            try:
                status, body, _ = self.request("GET", "/mock/healthz")
                if status == 200 and body.get("status") == "ok":
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mock not healthy in time: {self.log_text()}")
            time.sleep(0.05)

    def log_text(self) -> str:
        self.log.flush()
        return (self.workdir / "mock.log").read_text()[-4000:]

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict | None = None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl, timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = None
            return resp.status, doc, dict(resp.getheaders())
        finally:
            conn.close()

    def state(self) -> dict:
        status, doc, _ = self.request("GET", "/mock/state")
        assert status == 200, doc
        return doc

    def set_faults(self, **faults) -> None:
        status, doc, _ = self.request("PUT", "/mock/faults", json.dumps(faults).encode(),
                                      {"Content-Type": "application/json"})
        assert status == 200, doc

    def token(self) -> str:
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "scope": "https://management.azure.com/.default",
        }).encode()
        status, doc, _ = self.request("POST", f"/{TENANT}/oauth2/v2.0/token", form,
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, doc
        return doc["access_token"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    for binary in (MOCK, PROBE):
        built(str(binary.relative_to(BUILD_DIR)))
    m = Mock(tmp_path_factory.mktemp("azure-mock"),
             ["--throttle-rate", "0.1", "--error-rate", "0.1", "--retry-after-seconds", "1",
              "--async-delay-ms", "50", "--seed", str(SEED)])
    try:
        yield m
    finally:
        m.stop()
    assert m.proc.returncode == 0, m.log_text()


def run_probe(mock: Mock, plan: dict[str, list[str]], name: str) -> dict:
    azure_json = mock.workdir / "azure.json"
    azure_json.write_text(json.dumps({
        "cloud": "AzurePublicCloud", "tenantId": TENANT, "subscriptionId": SUB,
        "resourceGroup": RG, "location": "eastus", "vnetName": "vnet-e2e",
        "subnetName": "nodes", "aadClientId": CLIENT_ID, "aadClientSecret": CLIENT_SECRET,
    }))
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
        # Still up and serving.
        status, doc, _ = mock.request("GET", f"{nic}?{API}", headers=auth)
        assert status == 200 and doc["name"] == "node-0-nic", doc
        assert mock.proc.poll() is None
    finally:
        mock.set_faults(throttleRate=0.1, errorRate=0.1)


class FabricNetns:
    """A network namespace that plays the VNET fabric for the mock's SDN emulation.

    It has no link to the machine's interfaces: a veth pair with both ends inside it holds an
    address in the node subnet, so the routes the mock adds (block via the NIC's primary IP) have
    a reachable next hop. (A veth, not a dummy device: the dummy module is not always loaded.)
    """

    def __init__(self):
        self.name = f"vnetipam-e2e-fabric-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            for cmd in (["link", "add", "fabric0", "type", "veth", "peer", "name", "fabric1"],
                        ["addr", "add", "10.240.255.254/16", "dev", "fabric0"],
                        ["link", "set", "fabric1", "up"],
                        ["link", "set", "fabric0", "up"]):
                subprocess.run(["ip", "-n", self.name, *cmd], check=True)
        except subprocess.CalledProcessError:
            self.remove()
            raise

    def routes(self) -> dict[str, str]:
        """Destination -> gateway of every route via a gateway, i.e. those the mock programmed."""
        out = subprocess.run(["ip", "-n", self.name, "-j", "route", "show"], check=True,
                             capture_output=True, text=True).stdout
        return {r["dst"]: r["gateway"] for r in json.loads(out or "[]") if "gateway" in r}

    def wait_routes(self, want: dict[str, str], deadline_s: float = 10) -> dict[str, str]:
        deadline = time.monotonic() + deadline_s
        while True:
            got = self.routes()
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


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
