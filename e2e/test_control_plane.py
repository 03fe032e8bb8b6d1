"""Smoke test of the real control plane fixture."""

import json
import re
from pathlib import Path

from polling import poll

KUBE_GO_MOD = Path(__file__).resolve().parent / "kube" / "go.mod"


def pinned_kube_version() -> str:
    m = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", KUBE_GO_MOD.read_text(), re.M)
    assert m, "k8s.io/kubernetes not required in e2e/kube/go.mod"
    return m.group(1)


def test_readyz(kube):
    out = kube.kubectl("get", "--raw", "/readyz").stdout
    assert out.strip() == "ok"


def test_server_version_is_pinned_release(kube):
    info = json.loads(kube.kubectl("version", "-o", "json").stdout)
    assert info["serverVersion"]["gitVersion"] == pinned_kube_version()


def test_configmap_roundtrip(kube):
    kube.kubectl("create", "configmap", "smoke", "--from-literal=answer=42")
    cm = json.loads(kube.kubectl("get", "configmap", "smoke", "-o", "json").stdout)
    assert cm["data"] == {"answer": "42"}
    kube.kubectl("delete", "configmap", "smoke")


def test_data_survives_apiserver_restart(kube):
    kube.kubectl("create", "configmap", "survivor", "--from-literal=k=v")
    kube.restart_apiserver()
    cm = json.loads(kube.kubectl("get", "configmap", "survivor", "-o", "json").stdout)
    assert cm["data"] == {"k": "v"}
    kube.kubectl("delete", "configmap", "survivor")


def test_controller_manager_allocates_node_cidr(kube):
    """The real node-IPAM controller runs against the fixture's API server."""
    kcm = kube.start_controller_manager(
        "--controllers=nodeipam",
        "--allocate-node-cidrs=true",
        "--cluster-cidr=10.244.0.0/16",
        "--node-cidr-mask-size=24",
    )
    try:
        kube.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "smoke-node"}}))
        cidr = poll("smoke-node's spec.podCIDR", lambda: kube.kubectl(
            "get", "node", "smoke-node", "-o", "jsonpath={.spec.podCIDR}").stdout.strip(),
            timeout=30, interval=0.2)
        assert re.fullmatch(r"10\.244\.\d+\.0/24", cidr), cidr
    finally:
        kube.stop_controller_manager(kcm)
        kube.kubectl("delete", "node", "smoke-node", "--ignore-not-found")
