"""lib/kube (the C++ client, over its cpprestsdk transport) against the real API server.

Drives build/e2e/tools/kube_probe (or $VNETIPAM_BUILD_DIR/e2e/tools/kube_probe) through the
`kube` fixture's kubeconfig: mTLS client certificate and a custom CA."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from built import built

NAMESPACE = "kube-client-e2e"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


@pytest.fixture(scope="module")
def probe() -> Path:
    return built("e2e/tools/kube_probe")


@pytest.fixture(scope="module")
def namespace(kube):
    kube.kubectl("create", "namespace", NAMESPACE)
    yield NAMESPACE
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def run_probe(probe: Path, kube, *args: str, input: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(probe), "--kubeconfig", str(kube.kubeconfig), *args],
        input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=timeout,
    )


def ok(res: subprocess.CompletedProcess):
    assert res.returncode == 0, (
        f"kube_probe {' '.join(res.args[3:])} exited {res.returncode}\n"
        f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return json.loads(res.stdout)


def configmap(name: str, data: dict | None = None, labels: dict | None = None) -> str:
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": NAMESPACE}}
    if labels:
        obj["metadata"]["labels"] = labels
    if data is not None:
        obj["data"] = data
    return json.dumps(obj)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_get_version_over_mtls(kube, probe):
    info = ok(run_probe(probe, kube, "get", "/version"))
    server = json.loads(kube.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert info["gitVersion"] == server["gitVersion"]


def test_get_missing_object_is_not_found(kube, probe, namespace):
    res = run_probe(probe, kube, "get", f"{CONFIGMAPS}/does-not-exist")
    assert res.returncode != 0
    assert "NotFound" in res.stderr, res.stderr
    assert res.stdout == ""


def test_list_paginates(kube, probe, namespace):
    # A collection of its own (a label selector would still page over the whole namespace).
    ns = unique("kube-client-list")
    kube.kubectl("create", "namespace", ns)
    try:
        collection = f"/api/v1/namespaces/{ns}/configmaps"
        for i in range(25):
            obj = json.loads(configmap(f"page-{i:02d}"))
            obj["metadata"]["namespace"] = ns
            created = ok(run_probe(probe, kube, "create", collection, input=json.dumps(obj)))
            assert created["metadata"]["name"] == f"page-{i:02d}"
        assert ok(run_probe(probe, kube, "list", collection, "10")) == {"items": 25, "pages": 3}
        assert ok(run_probe(probe, kube, "list", collection, "0")) == {"items": 25, "pages": 1}
    finally:
        kube.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_create_twice_is_already_exists(kube, probe, namespace):
    name = unique("dup")
    ok(run_probe(probe, kube, "create", CONFIGMAPS, input=configmap(name, {"k": "v"})))
    res = run_probe(probe, kube, "create", CONFIGMAPS, input=configmap(name, {"k": "w"}))
    assert res.returncode != 0, res.stdout
    assert "AlreadyExists" in res.stderr, res.stderr
    cm = json.loads(kube.kubectl("get", "configmap", name, "-n", NAMESPACE, "-o", "json").stdout)
    assert cm["data"] == {"k": "v"}


def test_server_side_apply_by_two_managers(kube, probe, namespace):
    name = unique("ssa")
    path = f"{CONFIGMAPS}/{name}"
    ok(run_probe(probe, kube, "apply", path, "manager-a", input=configmap(name, {"a": "1"})))
    out = ok(run_probe(probe, kube, "apply", path, "manager-b", input=configmap(name, {"b": "2"})))
    assert out["data"] == {"a": "1", "b": "2"}

    cm = json.loads(kube.kubectl("get", "configmap", name, "-n", NAMESPACE,
                                 "--show-managed-fields", "-o", "json").stdout)
    assert cm["data"] == {"a": "1", "b": "2"}
    owners = {m["manager"]: m for m in cm["metadata"]["managedFields"]}
    assert {"manager-a", "manager-b"} <= owners.keys(), owners.keys()
    assert owners["manager-a"]["operation"] == "Apply"
    assert "f:a" in owners["manager-a"]["fieldsV1"]["f:data"]
    assert "f:b" in owners["manager-b"]["fieldsV1"]["f:data"]

    # Re-applying manager-a without its key gives the key up; manager-b's stays.
    ok(run_probe(probe, kube, "apply", path, "manager-a", input=configmap(name, {})))
    cm = ok(run_probe(probe, kube, "get", path))
    assert cm["data"] == {"b": "2"}


def test_apply_status_subresource(kube, probe):
    name = unique("probe-node")
    path = f"/api/v1/nodes/{name}"
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    ok(run_probe(probe, kube, "apply", path, "spec-owner",
                 input=json.dumps({**node, "spec": {"unschedulable": True}})))
    try:
        status = {**node, "status": {"capacity": {"pods": "110"}}}
        out = ok(run_probe(probe, kube, "apply-status", path, "status-owner",
                           input=json.dumps(status)))
        assert out["status"]["capacity"]["pods"] == "110"
        assert out["spec"]["unschedulable"] is True
        node = json.loads(kube.kubectl("get", "node", name, "--show-managed-fields",
                                       "-o", "json").stdout)
        owners = {m["manager"]: m for m in node["metadata"]["managedFields"]}
        assert owners["status-owner"]["subresource"] == "status"
        assert "subresource" not in owners["spec-owner"]
    finally:
        kube.kubectl("delete", "node", name, "--wait=false", check=False)


def _read_lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def test_watch_sees_objects_created_after_list(kube, probe, namespace):
    label = unique("watch")
    rv = ok(run_probe(probe, kube, "get", CONFIGMAPS))["metadata"]["resourceVersion"]
    proc = subprocess.Popen(
        [str(probe), "--kubeconfig", str(kube.kubeconfig), "--timeout", "30",
         "watch", CONFIGMAPS, rv, "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        names = [f"{label}-{i}" for i in range(3)]
        for name in names:
            kube.kubectl("create", "configmap", name, "-n", NAMESPACE)
        events = []
        deadline = time.monotonic() + 30
        while len(events) < 3:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                pytest.fail(f"only {events} after 30s; stderr: {proc.stderr.read()}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, (
                f"watch ended after {events}: exit {proc.wait()}, stderr: {proc.stderr.read()}")
            events.append(json.loads(line))
        assert events == [{"type": "ADDED", "name": n} for n in names]
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
