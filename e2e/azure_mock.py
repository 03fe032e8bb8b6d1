"""azure-vnet-mock for the e2e tests: start it over HTTPS on loopback from a generated topology,
read its state, inject faults.

Shared by the tests that need an Azure stand-in (test_azure_mock.py, test_controller.py, the
controller benchmark). `mock_fixture(...)` makes a pytest fixture that starts one mock per module
and stops it (by PID) after.
"""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import netlab

from built import BUILD_DIR, built
from polling import poll

MOCK = BUILD_DIR / "azure-mock" / "azure-vnet-mock"
# The Azure role the install guide tells users to give the controller: mocks the controller talks
# to run under it (--role-file), so a call outside it fails the tests as it would fail on Azure.
CONTROLLER_ROLE = Path(__file__).resolve().parent.parent / "docs" / "azure-role.json"

SUB = "00000000-0000-0000-0000-0000000000e2"
TENANT = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-e2e"
CLIENT_ID = "vnet-ipam-e2e"
CLIENT_SECRET = "e2e-not-a-secret"
VNET = "vnet-e2e"
NICS = 50
API = "api-version=2024-05-01"


def nic_id(i: int, prefix: str = "node") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
        f"networkInterfaces/{prefix}-{i}-nic"
    )


def subnet_id(name: str, vnet: str = VNET) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
            f"virtualNetworks/{vnet}/subnets/{name}")


def vm_id(name: str) -> str:
    return (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")


def provider_id(vm: str) -> str:
    """A Node's spec.providerID naming the mock VM `vm`."""
    return "azure://" + vm_id(vm)


def block(i: int, k: int) -> str:
    """The k-th aligned /28 of NIC i: 10.240.(1+i).(16k)/28, outside the primaries' /24."""
    return f"10.240.{1 + i}.{16 * k}/28"


def topology(nics: int = NICS) -> dict:
    """One VNET 10.240.0.0/16 with one subnet; VM node-<i> has NIC node-<i>-nic at 10.240.0.<4+i>."""
    return {
        "subscriptionId": SUB,
        "resourceGroup": RG,
        "location": "eastus",
        "clients": [
            {"tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
        ],
        "virtualNetworks": [
            {
                "name": VNET,
                "addressPrefixes": ["10.240.0.0/16"],
                "subnets": [{"name": "nodes", "addressPrefix": "10.240.0.0/16"}],
            }
        ],
        "networkInterfaces": [
            {"name": f"node-{i}-nic", "subnet": f"{VNET}/nodes", "primaryIP": f"10.240.0.{4 + i}"}
            for i in range(nics)
        ],
        "virtualMachines": [
            {"name": f"node-{i}", "networkInterfaces": [f"node-{i}-nic"]} for i in range(nics)
        ],
    }


def vm_topology(node_ips: list[str]) -> dict:
    """topology()'s VNET with VM node-<i> and its NIC node-<i>-nic at node_ips[i]: the mock's view
    of real nodes (e2e/realnodes.py) whose providerIDs name those VMs."""
    doc = topology(0)
    doc["networkInterfaces"] = [{"name": f"node-{i}-nic", "subnet": f"{VNET}/nodes",
                                 "primaryIP": ip} for i, ip in enumerate(node_ips)]
    doc["virtualMachines"] = [{"name": f"node-{i}", "networkInterfaces": [f"node-{i}-nic"]}
                              for i in range(len(node_ips))]
    return doc


def int_to_ip(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def ip_to_int(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def topology_with_subnets(subnets: list[dict], address_prefixes: list[str]) -> dict:
    """A VNET with several subnets, each with its own VMs.

    Each entry of `subnets`: {"name", "prefix" (CIDR), "vms": count, "vmPrefix": name prefix}.
    VM <vmPrefix>-<i> has NIC <vmPrefix>-<i>-nic in that subnet, primary IP = subnet base + 4 + i
    (the first four addresses are reserved by Azure), so primaries fill the subnet's low end."""
    doc = {
        "subscriptionId": SUB, "resourceGroup": RG, "location": "eastus",
        "clients": [{"tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}],
        "virtualNetworks": [{
            "name": VNET, "addressPrefixes": address_prefixes,
            "subnets": [{"name": s["name"], "addressPrefix": s["prefix"]} for s in subnets],
        }],
        "networkInterfaces": [], "virtualMachines": [],
    }
    for s in subnets:
        base = ip_to_int(s["prefix"].split("/")[0])
        for i in range(s["vms"]):
            vm = f"{s['vmPrefix']}-{i}"
            doc["networkInterfaces"].append({"name": f"{vm}-nic", "subnet": f"{VNET}/{s['name']}",
                                             "primaryIP": int_to_ip(base + 4 + i)})
            doc["virtualMachines"].append({"name": vm, "networkInterfaces": [f"{vm}-nic"]})
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mock:
    """azure-vnet-mock over HTTPS with a self-signed certificate for 127.0.0.1.

    `topology_doc` defaults to topology(). The certificate is `cert` (give it to clients as their
    CA); `url` is both the ARM and the Entra ID endpoint.

    With `netns` (a network namespace's path) the mock runs inside that namespace on `host` (its
    certificate names that address too), so that processes there reach it at `url`; this
    process's own requests go through a netlab.Forwarder on loopback.

    The admin endpoints (/mock/state, /mock/faults) answer loopback peers only, unless a request
    carries the admin token: behind the forwarder the mock sees the namespace's own address, so
    the mock gets a fresh token (`admin_token`, also in the file `admin_token_file`) and
    `request` sends it on every /mock/ path."""

    def __init__(self, workdir: Path, extra_args: list[str], topology_doc: dict | None = None,
                 start_timeout: float = 20, *, netns: Path | None = None,
                 host: str = "127.0.0.1", port: int | None = None, binary: Path = MOCK):
        self.workdir = workdir
        self.cert = workdir / "cert.pem"
        key = workdir / "key.pem"
        sans = "IP:127.0.0.1" if host == "127.0.0.1" else f"IP:127.0.0.1,IP:{host}"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={host}", "-addext", f"subjectAltName={sans}",
             "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )
        (workdir / "topology.json").write_text(
            json.dumps(topology_doc if topology_doc is not None else topology()))
        self.admin_token = secrets.token_urlsafe(32)
        self.admin_token_file = workdir / "admin-token"
        self.admin_token_file.touch(mode=0o600)
        self.admin_token_file.write_text(self.admin_token + "\n")
        self.port = port or free_port()
        self.url = f"https://{host}:{self.port}"
        self.forwarder = netlab.Forwarder(netns, host, self.port) if netns else None
        self.local_port = self.forwarder.local_port if self.forwarder else self.port
        self.log = open(workdir / "mock.log", "w")
        self.proc = subprocess.Popen(
            [*(["nsenter", f"--net={netns}"] if netns else []),
             str(binary), "--listen", self.url, "--cert", str(self.cert), "--key", str(key),
             "--topology", str(workdir / "topology.json"),
             "--admin-token-file", str(self.admin_token_file), *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.ssl = ssl.create_default_context(cafile=str(self.cert))
        try:
            self._wait_healthy(start_timeout)
        except BaseException:
            self.stop()  # a mock that never came up must not outlive the caller
            raise

    def _wait_healthy(self, timeout: float) -> None:
        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"mock exited {self.proc.returncode}: {self.log_text()}")
            try:
                status, body, _ = self.request("GET", "/mock/healthz")
            except OSError:
                return False
            return status == 200 and body.get("status") == "ok"

        poll("the mock to be healthy", healthy, timeout, interval=0.05, describe=self.log_text)

    def log_text(self) -> str:
        if not self.log.closed:  # closed by stop(): a fixture's check after it reads the file
            self.log.flush()
        return (self.workdir / "mock.log").read_text()[-4000:]

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict | None = None):
        headers = dict(headers or {})
        if target.startswith("/mock/") and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        conn = http.client.HTTPSConnection("127.0.0.1", self.local_port, context=self.ssl,
                                           timeout=30)
        try:
            conn.request(method, target, body=body, headers=headers)
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

    def nic_prefixes(self, doc: dict | None = None) -> dict[str, list[str]]:
        """NIC name -> the IP prefixes (a.b.c.d/n) on its ipConfigurations, from /mock/state."""
        doc = doc if doc is not None else self.state()
        return {n["name"]: [c["privateIPAddress"] for c in n["ipConfigurations"]
                            if "/" in c["privateIPAddress"]]
                for n in doc["networkInterfaces"]}

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

    def clear_prefixes(self, nic_names: list[str], deadline_s: float = 30) -> list[str]:
        """Removes every IP-prefix ipConfiguration from these NICs through ARM, as an operator
        would (a test's teardown repair, so one test's leak does not poison the next). Returns the
        NICs that had any."""
        auth = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
        cleared = []
        for name in nic_names:
            path = (f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/"
                    f"networkInterfaces/{name}?{API}")
            deadline = time.monotonic() + deadline_s
            while True:
                status, nic, _ = self.request("GET", path, headers=auth)
                assert status == 200, nic
                configs = nic["properties"]["ipConfigurations"]
                keep = [c for c in configs
                        if "privateIPAddressPrefixLength" not in c.get("properties", {})]
                if len(keep) == len(configs):
                    break
                nic["properties"]["ipConfigurations"] = keep
                status, doc, _ = self.request("PUT", path, json.dumps(nic).encode(),
                                              {**auth, "If-Match": nic.get("etag", "*")})
                if status in (200, 201) and name not in cleared:
                    cleared.append(name)
                assert time.monotonic() < deadline, f"cannot clear {name}: {status} {doc}"
                time.sleep(0.1)
        return cleared

    def write_azure_json(self, path: Path, subnet: str = "nodes") -> Path:
        """An azure.json (client secret) for this mock's subscription; the endpoints are given
        separately (VNETIPAM_AZURE_* environment or flags)."""
        path.write_text(json.dumps({
            "cloud": "AzurePublicCloud", "tenantId": TENANT, "subscriptionId": SUB,
            "resourceGroup": RG, "location": "eastus", "vnetName": VNET,
            "subnetName": subnet, "aadClientId": CLIENT_ID, "aadClientSecret": CLIENT_SECRET,
        }))
        return path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.forwarder:
            self.forwarder.close()
        self.log.close()


def mock_fixture(*extra_args: str, requires: tuple[str, ...] = (),
                 topology_doc: dict | None = None, scope: str = "module"):
    """A pytest fixture that starts one Mock (with `extra_args`) for its scope and checks that it
    exits cleanly after. `requires`: other built binaries (paths under the build dir) the tests
    need; a missing one fails with how to build it."""

    @pytest.fixture(scope=scope)
    def _mock(tmp_path_factory):
        for rel in (str(MOCK.relative_to(BUILD_DIR)), *requires):
            built(rel)
        m = Mock(tmp_path_factory.mktemp("azure-mock"), list(extra_args), topology_doc)
        try:
            yield m
        finally:
            m.stop()
        assert m.proc.returncode == 0, m.log_text()

    return _mock
