"""lib/kube's Informer and server-side apply against the real API server.

Drives `kube_probe informer` (e2e/tools/kube_probe.cpp): it prints one JSON line per handler
call and takes `hold` / `release [RV]` / `cut` on stdin to steer its watch connection, so each
test knows whether a change happened while the informer was connected or not — no sleeps.

How a 410 is forced: the informer's next watch is sent with resourceVersion=1 (`release 1`).
The API server's watch cache only holds history since it started, so a version that old is
always "too old resource version" (410 Gone), and the informer must relist.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from built import built
from crd_helpers import API_VERSION, CRD_DIR, CRD_NAMES, ipblock

LABEL = "e2e.vnetipam.io/informer"
IPBLOCKS = "/apis/vnetipam.io/v1alpha1/ipblocks"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def probe() -> Path:
    return built("e2e/tools/kube_probe")


@pytest.fixture(scope="module")
def crds(kube):
    """The CRDs from crds/, installed once and Established; left installed."""
    kube.kubectl("apply", "-f", str(CRD_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{n}" for n in CRD_NAMES))
    return kube


@pytest.fixture
def namespace(kube):
    ns = unique("informer-e2e")
    kube.kubectl("create", "namespace", ns)
    yield ns
    # No namespace controller runs here: the objects stay, in a namespace no one reads again.
    kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


class InformerProbe:
    """A running `kube_probe informer`: its output lines, and what its handlers reported."""

    def __init__(self, probe: Path, kube, path: str, *flags: str, timeout: int = 300):
        self.proc = subprocess.Popen(
            [str(probe), "--kubeconfig", str(kube.kubeconfig), "--timeout", str(timeout),
             *flags, "informer", path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[dict] = []
        self.state: dict[str, str] = {}  # name -> resourceVersion, from the handler calls

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def _take(self, deadline: float, what: str) -> dict:
        left = deadline - time.monotonic()
        try:
            line = self._lines.get(timeout=max(left, 0.001))
        except queue.Empty:
            pytest.fail(f"no {what} in time; lines so far: {self.seen[-30:]}")
        if line is None:
            pytest.fail(f"kube_probe exited ({self.proc.wait()}) before {what}; "
                        f"lines: {self.seen[-30:]}; stderr: {self.proc.stderr.read()}")
        self.seen.append(line)
        if line["type"] in ("add", "update"):
            self.state[line["name"]] = line["resourceVersion"]
        elif line["type"] == "delete":
            self.state.pop(line["name"], None)
        return line

    def wait_for(self, done, what: str, timeout: float = 60) -> None:
        """Reads lines until done() holds (checked before each line)."""
        deadline = time.monotonic() + timeout
        while not done():
            self._take(deadline, what)

    def wait_line(self, type_: str, timeout: float = 60, **fields) -> dict:
        start = len(self.seen)
        self.wait_for(lambda: any(
            line["type"] == type_ and all(line.get(k) == v for k, v in fields.items())
            for line in self.seen[start:]), f"{type_} {fields}", timeout)
        return next(line for line in self.seen[start:] if line["type"] == type_)

    def finish(self) -> dict[str, str]:
        """Closes stdin; returns the informer's final cache (name -> resourceVersion)."""
        self.proc.stdin.close()
        cache = self.wait_line("cache", timeout=30)
        assert self.proc.wait(timeout=30) == 0, self.proc.stderr.read()
        return {item["name"]: item["resourceVersion"] for item in cache["items"]}

    def calls(self, type_: str, name: str) -> int:
        return sum(1 for line in self.seen if line["type"] == type_ and line.get("name") == name)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def configmap(ns: str, name: str, labelled: bool = True) -> str:
    meta = {"name": name, "namespace": ns}
    if labelled:
        meta["labels"] = {LABEL: "yes"}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                       "data": {"v": "0"}})


def create_configmap(kube, ns: str, name: str, labelled: bool = True) -> str:
    out = kube.kubectl("create", "-o", "json", "-f", "-", input=configmap(ns, name, labelled))
    return json.loads(out.stdout)["metadata"]["resourceVersion"]


def server_state(kube, ns: str) -> dict[str, str]:
    out = kube.kubectl("get", "configmaps", "-n", ns, "-l", f"{LABEL}=yes", "-o", "json")
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"]
            for i in json.loads(out.stdout)["items"]}


def change_while_disconnected(kube, ns: str, informer: InformerProbe, existing: list[str]):
    """Creates, updates and deletes objects; returns (created, updated, deleted, server state)."""
    # An unlabelled object first: the labelled ones after it prove the selector dropped it.
    create_configmap(kube, ns, unique("unlabelled"), labelled=False)
    created = [unique("new") for _ in range(3)]
    for name in created:
        create_configmap(kube, ns, name)
    updated, deleted = existing[0], existing[1]
    kube.kubectl("patch", "configmap", updated, "-n", ns, "--type=merge",
                 "-p", json.dumps({"data": {"v": "1"}}))
    kube.kubectl("delete", "configmap", deleted, "-n", ns)
    return created, updated, deleted, server_state(kube, ns)


def start_synced(probe, kube, ns: str) -> tuple[InformerProbe, list[str]]:
    existing = [unique("old") for _ in range(3)]
    for name in existing:
        create_configmap(kube, ns, name)
    informer = InformerProbe(probe, kube, f"/api/v1/namespaces/{ns}/configmaps",
                             "--label-selector", f"{LABEL}=yes")
    informer.wait_line("synced")
    assert informer.state == server_state(kube, ns)
    assert all(informer.calls("add", n) == 1 for n in existing)
    return informer, existing


def assert_caught_up(kube, ns, informer, created, updated, deleted, expected) -> None:
    informer.wait_for(lambda: informer.state == expected, f"the changes {expected}")
    cache = informer.finish()
    assert cache == expected == server_state(kube, ns)
    for name in created:
        assert informer.calls("add", name) == 1, name
    assert informer.calls("update", updated) == 1
    assert informer.calls("delete", deleted) == 1
    assert not any(line.get("name", "").startswith("unlabelled") for line in informer.seen)


def test_no_event_lost_across_an_apiserver_restart(kube, probe, namespace):
    informer, existing = start_synced(probe, kube, namespace)
    try:
        informer.send("hold")  # the reconnect after the restart waits until we have written
        kube.restart_apiserver()
        informer.wait_line("held")
        assert any(line["type"] == "error" for line in informer.seen)  # the watch did break
        created, updated, deleted, expected = change_while_disconnected(
            kube, namespace, informer, existing)
        informer.send("release")
        assert_caught_up(kube, namespace, informer, created, updated, deleted, expected)
    finally:
        informer.close()


def test_no_event_lost_across_a_forced_410(kube, probe, namespace):
    informer, existing = start_synced(probe, kube, namespace)
    try:
        informer.send("hold")
        informer.send("cut")
        informer.wait_line("held")
        created, updated, deleted, expected = change_while_disconnected(
            kube, namespace, informer, existing)
        informer.send("release 1")  # far older than the watch cache's window: 410 Gone
        informer.wait_line("error", code="Gone")
        assert_caught_up(kube, namespace, informer, created, updated, deleted, expected)
        # The relist emitted only the differences: the untouched object was never re-added.
        assert informer.calls("add", existing[2]) == 1
        assert informer.calls("update", existing[2]) == 0
    finally:
        informer.close()


def test_a_broken_watch_resumes_from_its_version_without_relisting(kube, probe, namespace):
    informer, existing = start_synced(probe, kube, namespace)
    try:
        informer.send("hold")
        informer.send("cut")
        informer.wait_line("held")
        created, updated, deleted, expected = change_while_disconnected(
            kube, namespace, informer, existing)
        informer.send("release")  # the watch cache still holds these changes
        assert_caught_up(kube, namespace, informer, created, updated, deleted, expected)
        errors = [line for line in informer.seen if line["type"] == "error"]
        assert [e["code"] for e in errors] == ["Transport"], errors  # the cut, and no 410
    finally:
        informer.close()


def test_lists_with_pagination_over_1000_objects(kube, probe, namespace):
    count = 1050
    names = [f"page-{i:04d}" for i in range(count)]

    def create(chunk: list[str]) -> None:
        items = [json.loads(configmap(namespace, n)) for n in chunk]
        kube.kubectl("create", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": items}), timeout=120)

    with ThreadPoolExecutor(max_workers=6) as pool:  # kubectl rate-limits each process
        list(pool.map(create, [names[i::6] for i in range(6)]))

    path = f"/api/v1/namespaces/{namespace}/configmaps"
    res = subprocess.run([str(probe), "--kubeconfig", str(kube.kubeconfig), "list", path, "500"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"items": count, "pages": 3}

    informer = InformerProbe(probe, kube, path, "--page-size", "400")
    try:
        informer.wait_line("synced")
        assert sorted(informer.state) == names
        assert informer.finish() == server_state(kube, namespace)
        assert sum(1 for line in informer.seen if line["type"] == "add") == count
    finally:
        informer.close()


def test_field_selector_sees_only_its_nodes_blocks(crds, probe):
    kube = crds
    subnet = unique("inf")
    mine, other = unique("node-a"), unique("node-b")
    blocks = [ipblock("10.250.0.0/28", mine, subnet), ipblock("10.250.0.16/28", other, subnet)]
    names = [b["metadata"]["name"] for b in blocks]
    for b in blocks:
        kube.kubectl("create", "-f", "-", input=json.dumps(b))
    informer = InformerProbe(probe, kube, IPBLOCKS, "--field-selector", f"spec.nodeName={mine}")
    try:
        informer.wait_line("synced")
        assert informer.state.keys() == {names[0]}
        later = [ipblock("10.250.0.32/28", other, subnet), ipblock("10.250.0.48/28", mine, subnet)]
        for b in later:  # the other node's first: seeing mine after it proves it was filtered
            kube.kubectl("create", "-f", "-", input=json.dumps(b))
        names += [b["metadata"]["name"] for b in later]
        informer.wait_line("add", name=names[3])
        assert informer.finish().keys() == {names[0], names[3]}
        assert not any(line.get("name") in (names[1], names[2]) for line in informer.seen)
    finally:
        informer.close()
        for name in names:
            kube.kubectl("delete", "ipblocks.vnetipam.io", name, "--ignore-not-found")


def test_server_side_apply_two_managers_share_an_ipblock_status(crds, probe):
    kube = crds
    block = ipblock("10.250.1.0/28", unique("node"), unique("ssa"))
    name = block["metadata"]["name"]
    path = f"{IPBLOCKS}/{name}"
    kube.kubectl("create", "-f", "-", input=json.dumps(block))

    def apply_status(manager: str, status: dict) -> dict:
        body = {"apiVersion": API_VERSION, "kind": "IPBlock", "metadata": {"name": name},
                "status": status}
        res = subprocess.run(
            [str(probe), "--kubeconfig", str(kube.kubeconfig), "apply-status", path, manager],
            input=json.dumps(body), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=60)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)["status"]

    try:
        assert apply_status("vnet-ipam-controller", {"phase": "Pending"}) == {"phase": "Pending"}
        assert apply_status("vnet-ipam-agent", {"used": 3}) == {"phase": "Pending", "used": 3}
        assert apply_status("vnet-ipam-controller", {"phase": "Ready"}) == {"phase": "Ready",
                                                                          "used": 3}
        assert apply_status("vnet-ipam-agent", {"used": 5}) == {"phase": "Ready", "used": 5}

        obj = json.loads(kube.kubectl("get", "ipblocks.vnetipam.io", name,
                                      "--show-managed-fields", "-o", "json").stdout)
        assert obj["status"] == {"phase": "Ready", "used": 5}
        owners = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
        for manager, field, foreign in (("vnet-ipam-controller", "f:phase", "f:used"),
                                        ("vnet-ipam-agent", "f:used", "f:phase")):
            entry = owners[manager]
            assert entry["operation"] == "Apply" and entry["subresource"] == "status", entry
            assert field in entry["fieldsV1"]["f:status"], entry
            assert foreign not in entry["fieldsV1"]["f:status"], entry
    finally:
        kube.kubectl("delete", "ipblocks.vnetipam.io", name, "--ignore-not-found")
