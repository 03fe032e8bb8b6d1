"""The CRDs in crds/ against the real API server.

They install and become Established; `kubectl get ipblocks` shows the columns the CRD defines;
the short name, category, explain and the spec.nodeName field selector work; bad objects are
refused with a message naming the field; and every case of the table shared with the C++
validation (unit/api/testdata/validation_cases.json) gets the same verdict from the server.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from controller_harness import KubeApi
from crd_helpers import (AZURE_SUBNET_ID, CRD_DIR, CRD_NAMES, Case, block_name, find_error,
                         ipblock, load_cases, parse_invalid, podsubnet, resource,
                         with_resource_version, without_status)

DESIGN_COLUMNS = ["NAME", "NODE", "CIDR", "SUBNET", "USED", "CAPACITY", "PHASE", "AGE"]


# ---- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crds(kube):
    """The CRDs from crds/, installed once and Established; left installed."""
    kube.kubectl("apply", "-f", str(CRD_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{n}" for n in CRD_NAMES))
    return kube


class Objects:
    """Creates objects for one test and deletes them (and waits for them to be gone) after."""

    def __init__(self, kube):
        self.kube = kube
        self.created: list[tuple[str, str]] = []

    def track(self, obj: dict) -> None:
        key = (resource(obj), obj["metadata"]["name"])
        if key not in self.created:
            self.created.append(key)

    def create(self, obj: dict) -> dict:
        """Create for real (must succeed); returns the stored object."""
        self.track(obj)
        out = self.kube.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj)).stdout
        return json.loads(out)

    def get(self, obj: dict) -> dict:
        out = self.kube.kubectl("get", resource(obj), obj["metadata"]["name"], "-o", "json")
        return json.loads(out.stdout)

    def cleanup(self) -> None:
        for res, name in reversed(self.created):
            self.kube.kubectl("delete", res, name, "--ignore-not-found", "--wait=true")
        self.created.clear()


@pytest.fixture
def objects(crds):
    objs = Objects(crds)
    try:
        yield objs
    finally:
        objs.cleanup()


def refused(res, what: str) -> str:
    assert res.returncode != 0, f"{what}: expected the API server to refuse it, but it " \
                                f"accepted it:\n{res.stdout}{res.stderr}"
    return res.stderr


# ---- installation and kubectl views ------------------------------------------------------------

def test_crds_install_and_are_established(crds):
    for name in CRD_NAMES:
        crd = json.loads(crds.kubectl("get", "crd", name, "-o", "json").stdout)
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", conds
        assert conds.get("NamesAccepted") == "True", conds
    # Applying the same manifests again is a no-op, not an error.
    out = crds.kubectl("apply", "-f", str(CRD_DIR)).stdout
    assert out.count("unchanged") == len(CRD_NAMES), out


def test_get_ipblocks_prints_design_columns(objects):
    blk = ipblock("10.240.0.16/28", "node-cols", subnet="cols")
    objects.create(blk)
    objects.kube.kubectl("patch", "ipblock", blk["metadata"]["name"], "--subresource=status",
                         "--type=merge", "-p",
                         json.dumps({"status": {"phase": "Ready", "used": 3, "capacity": 16}}))
    out = objects.kube.kubectl("get", "ipblocks", blk["metadata"]["name"]).stdout
    lines = out.splitlines()
    assert lines[0].split() == DESIGN_COLUMNS, out
    row = lines[1].split()
    assert row[:7] == ["cols-10-240-0-16-28", "node-cols", "10.240.0.16/28", "cols",
                       "3", "16", "Ready"], out
    assert re.fullmatch(r"\d+s", row[7]), out  # AGE of a just-created block


def test_short_name_and_category(objects):
    subnet = podsubnet("catsub", cidr="10.241.0.0/16")
    blk = ipblock("10.241.0.0/28", "node-cat", subnet="catsub")
    objects.create(subnet)
    objects.create(blk)

    out = objects.kube.kubectl("get", "ipb", "-o", "name").stdout.split()
    assert "ipblock.vnetipam.io/catsub-10-241-0-0-28" in out, out
    table = objects.kube.kubectl("get", "ipb").stdout
    assert table.splitlines()[0].split() == DESIGN_COLUMNS, table
    assert "catsub-10-241-0-0-28" in table

    both = objects.kube.kubectl("get", "vnetipam", "-o", "name").stdout.split()
    assert "podsubnet.vnetipam.io/catsub" in both, both
    assert "ipblock.vnetipam.io/catsub-10-241-0-0-28" in both, both


def test_explain_prints_the_yaml_description(crds):
    crd = yaml.safe_load((CRD_DIR / "vnetipam.io_ipblocks.yaml").read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    want = " ".join(props["spec"]["properties"]["cidr"]["description"].split())
    assert "10.240.0.16/28" in want  # the YAML really has a description to compare with

    out = crds.kubectl("explain", "ipblock.spec.cidr").stdout
    assert re.search(r"^FIELD:\s+cidr\s+<string>", out, re.M), out
    desc = out.split("DESCRIPTION:", 1)[1]
    assert " ".join(desc.split()) == want, out


# ---- one test per rule -------------------------------------------------------------------------

RULES = [
    # id, object, field path, key phrase of the message
    ("ipblock-misaligned-cidr", ipblock("10.240.0.17/28", "node-1"),
     "spec.cidr", '"10.240.0.17/28" is not aligned: did you mean 10.240.0.16/28?'),
    ("podsubnet-misaligned-cidr", podsubnet(cidr="10.240.0.5/16"),
     "spec.cidr", '"10.240.0.5/16" is not aligned: did you mean 10.240.0.0/16?'),
    ("podsubnet-misaligned-ipv6-cidr", podsubnet(cidr="fd00:10:240::1/64", blockPrefixLength=112),
     "spec.cidr", "is not aligned: did you mean fd00:10:240::/64?"),
    ("ipblock-bad-cidr-syntax", ipblock("10.240.0.300/28", "node-1"),
     "spec.cidr", '"10.240.0.300/28" is not a CIDR prefix'),
    ("podsubnet-cidr-without-length", podsubnet(cidr="10.240.0.0"),
     "spec.cidr", '"10.240.0.0" is not a CIDR prefix'),
    ("podsubnet-ipv4-block-length-33", podsubnet(cidr="10.240.0.0/16", blockPrefixLength=33),
     "spec.blockPrefixLength", "33 is out of range for an IPv4 subnet: expected 16-32"),
    ("podsubnet-ipv6-block-length-28", podsubnet(cidr="fd00:10:240::/64", blockPrefixLength=28),
     "spec.blockPrefixLength", "28 is out of range for an IPv6 subnet: expected 112-128"),
    ("podsubnet-ipv6-block-length-80", podsubnet(cidr="fd00:10::/48", blockPrefixLength=80),
     "spec.blockPrefixLength", "80 is out of range for an IPv6 subnet: expected 112-128"),
    ("podsubnet-block-longer-than-subnet", podsubnet(cidr="10.240.0.0/24", blockPrefixLength=20),
     "spec.blockPrefixLength", "20 is shorter than the subnet 10.240.0.0/24"),
    ("ipblock-ipv4-length-8", ipblock("10.0.0.0/8", "node-1"),
     "spec.cidr", "10.0.0.0/8 has prefix length 8: an IPv4 block is /16 to /32"),
    ("ipblock-ipv6-length-48", ipblock("fd00:10::/48", "node-1"),
     "spec.cidr", "fd00:10::/48 has prefix length 48: an IPv6 block is /112 to /128"),
    ("podsubnet-both-azure-and-cidr",
     podsubnet(azureSubnetID=AZURE_SUBNET_ID, cidr="10.240.0.0/16"),
     "spec", "exactly one of spec.azureSubnetID and spec.cidr must be set"),
    ("podsubnet-neither-azure-nor-cidr", podsubnet(),
     "spec", "exactly one of spec.azureSubnetID and spec.cidr must be set"),
    ("ipblock-bad-node-name", ipblock("10.240.0.16/28", "Node_1"),
     "spec.nodeName", '"Node_1" is not a valid Node name'),
    ("podsubnet-selector-in-without-values",
     podsubnet(cidr="10.240.0.0/16", nodeSelector={"matchExpressions": [
         {"key": "pool", "operator": "Exists"}, {"key": "zone", "operator": "In"}]}),
     "spec.nodeSelector.matchExpressions[1].values", "must be specified when operator is In"),
    ("podsubnet-selector-exists-with-values",
     podsubnet(cidr="10.240.0.0/16", nodeSelector={"matchExpressions": [
         {"key": "zone", "operator": "Exists", "values": ["a"]}]}),
     "spec.nodeSelector.matchExpressions[0].values",
     "may not be specified when operator is Exists"),
    ("podsubnet-selector-bad-operator",
     podsubnet(cidr="10.240.0.0/16", nodeSelector={"matchExpressions": [
         {"key": "zone", "operator": "Gt", "values": ["1"]}]}),
     "spec.nodeSelector.matchExpressions[0].operator", 'Unsupported value: "Gt"'),
    ("podsubnet-selector-bad-label-value",
     podsubnet(cidr="10.240.0.0/16", nodeSelector={"matchExpressions": [
         {"key": "zone", "operator": "NotIn", "values": ["a", "b c"]}]}),
     "spec.nodeSelector.matchExpressions[0].values[1]", '"b c" is not a label value'),
    ("ipblock-name-not-derived", ipblock("10.240.0.16/28", "node-1", name="my-block"),
     "metadata.name",
     'metadata.name must be "pods-10-240-0-16-28", the name derived from spec.podSubnet '
     'and spec.cidr'),
]


@pytest.mark.parametrize("obj,path,phrase", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_invalid_object_is_refused(objects, obj, path, phrase):
    objects.track(obj)  # deleted afterwards should the server wrongly accept it
    res = objects.kube.kubectl("create", "-f", "-", input=json.dumps(obj), check=False)
    stderr = refused(res, obj["metadata"]["name"])
    assert path in stderr, stderr
    assert phrase in stderr, stderr
    # The path and the phrase belong to the same reported error.
    errors = parse_invalid(stderr)
    if path == "metadata.name":  # a rule on the whole object: reported without a field path
        assert find_error(errors, "", phrase), stderr
    else:
        assert find_error(errors, path, phrase), stderr


IMMUTABLE = [
    # id, object, merge patch, field path
    ("ipblock-spec.cidr", ipblock("10.242.0.16/28", "node-imm", subnet="imm"),
     {"spec": {"cidr": "10.242.0.32/28"}}, "spec.cidr"),
    ("ipblock-spec.nodeName", ipblock("10.242.0.16/28", "node-imm", subnet="imm"),
     {"spec": {"nodeName": "node-other"}}, "spec.nodeName"),
    ("ipblock-spec.podSubnet", ipblock("10.242.0.16/28", "node-imm", subnet="imm"),
     {"spec": {"podSubnet": "imm2"}}, "spec.podSubnet"),
    ("podsubnet-spec.cidr", podsubnet("immsub", cidr="10.242.0.0/16"),
     {"spec": {"cidr": "10.243.0.0/16"}}, "spec.cidr"),
    ("podsubnet-spec.blockPrefixLength", podsubnet("immsub", cidr="10.242.0.0/16"),
     {"spec": {"blockPrefixLength": 27}}, "spec.blockPrefixLength"),
]


@pytest.mark.parametrize("obj,patch,path", [r[1:] for r in IMMUTABLE],
                         ids=[r[0] for r in IMMUTABLE])
def test_immutable_field_is_refused_on_update(objects, obj, patch, path):
    before = objects.create(obj)
    res = objects.kube.kubectl("patch", resource(obj), obj["metadata"]["name"], "--type=merge",
                               "-p", json.dumps(patch), check=False)
    stderr = refused(res, f"patch {patch}")
    assert path in stderr and "is immutable" in stderr, stderr
    assert find_error(parse_invalid(stderr), path, "is immutable"), stderr
    after = objects.get(obj)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_mutable_podsubnet_fields_can_change(objects):
    subnet = podsubnet("tunesub", cidr="10.244.0.0/16")
    objects.create(subnet)
    objects.kube.kubectl("patch", "podsubnet", "tunesub", "--type=merge", "-p", json.dumps(
        {"spec": {"minFreeIPsPerNode": 64, "maxBlocksPerNode": 2, "releaseDelaySeconds": 0,
                  "reservedCIDRs": ["10.244.0.0/24"]}}))
    spec = objects.get(subnet)["spec"]
    assert spec["minFreeIPsPerNode"] == 64 and spec["blockPrefixLength"] == 28


# ---- nodeSelector in the map form of earlier versions ------------------------------------------

OLD_FORM_MESSAGE = "spec.nodeSelector has no matchLabels or matchExpressions"


@pytest.fixture
def rest(crds):
    """A REST client that sends no fieldValidation parameter."""
    return KubeApi(crds)


def _invalid_causes(status: int, doc) -> list[tuple[str, str]]:
    assert status == 422, (status, doc)
    assert doc["reason"] == "Invalid", doc
    return [(c.get("field", ""), c.get("message", "")) for c in doc["details"]["causes"]]


def test_old_map_form_selector_is_refused_not_pruned(objects, rest):
    """`nodeSelector: {zone: a}` was "nodes labelled zone=a". A structural schema prunes the
    unknown key zone, leaving {} : were {} accepted, the PodSubnet would select every node. A
    client that sends no fieldValidation parameter (the server's default, Warn, prunes) gets a
    422 naming spec.nodeSelector, and nothing is stored."""
    old_form = podsubnet("oldform", cidr="10.247.0.0/16", nodeSelector={"zone": "a"})
    objects.track(old_form)
    status, doc = rest.request("POST", "/apis/vnetipam.io/v1alpha1/podsubnets", old_form)
    causes = _invalid_causes(status, doc)
    assert any(f == "spec.nodeSelector" and OLD_FORM_MESSAGE in m for f, m in causes), causes
    status, _ = rest.request("GET", "/apis/vnetipam.io/v1alpha1/podsubnets/oldform")
    assert status == 404

    # kubectl asks for strict field validation: refused as an unknown field.
    res = objects.kube.kubectl("create", "-f", "-", input=json.dumps(old_form), check=False)
    stderr = refused(res, "old form, kubectl")
    assert 'unknown field "spec.nodeSelector.zone"' in stderr, stderr
    # kubectl --validate=false asks to ignore (prune) unknown fields: still refused.
    res = objects.kube.kubectl("create", "--validate=false", "-f", "-",
                               input=json.dumps(old_form), check=False)
    stderr = refused(res, "old form, kubectl --validate=false")
    assert find_error(parse_invalid(stderr), "spec.nodeSelector", OLD_FORM_MESSAGE), stderr


def test_replacing_a_selector_with_the_old_form_is_refused(objects, rest):
    created = objects.create(podsubnet("oldupd", cidr="10.248.0.0/16",
                                       nodeSelector={"matchLabels": {"zone": "a"}}))
    old_form = copy.deepcopy(created)
    old_form["spec"]["nodeSelector"] = {"zone": "b"}
    status, doc = rest.request("PUT", "/apis/vnetipam.io/v1alpha1/podsubnets/oldupd", old_form)
    causes = _invalid_causes(status, doc)
    assert any(f == "spec.nodeSelector" and OLD_FORM_MESSAGE in m for f, m in causes), causes
    assert objects.get(created)["spec"]["nodeSelector"] == {"matchLabels": {"zone": "a"}}


def test_new_form_selector_is_stored_as_sent(objects):
    selector = {"matchLabels": {"kubernetes.io/os": "linux"}, "matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a", "b"]},
        {"key": "spot", "operator": "DoesNotExist"}]}
    stored = objects.create(podsubnet("newform", cidr="10.249.0.0/16", nodeSelector=selector))
    assert stored["spec"]["nodeSelector"] == selector


# ---- the table shared with the C++ validation --------------------------------------------------

CASES = load_cases()


def _rv(kube, obj: dict) -> str:
    return kube.kubectl("get", resource(obj), obj["metadata"]["name"],
                        "-o", "jsonpath={.metadata.resourceVersion}").stdout.strip()


def _server_verdicts(objects, case: Case) -> list:
    """Submit the case the way a client would, with server-side dry run for the step under
    test. A create goes to the main resource, which ignores status (the status subresource is
    enabled), so a case with a status also sends it to /status, on a real copy of the object.
    An update creates `old` for real and replaces it with `object` (dry run)."""
    kube = objects.kube
    obj = case.object
    results = []
    if case.old is None:
        res = kube.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj),
                           check=False)
        results.append(res)
        if "status" not in obj or res.returncode != 0:
            return results
        objects.create(without_status(obj))
    else:
        old = case.old
        objects.create(without_status(old))
        if "status" in old:
            kube.kubectl("replace", "--subresource=status", "-f", "-",
                         input=json.dumps(with_resource_version(old, _rv(kube, old))))
        results.append(kube.kubectl(
            "replace", "--dry-run=server", "-f", "-",
            input=json.dumps(with_resource_version(obj, _rv(kube, old))), check=False))
        if "status" not in obj:
            return results
    results.append(kube.kubectl(
        "replace", "--subresource=status", "--dry-run=server", "-f", "-",
        input=json.dumps(with_resource_version(obj, _rv(kube, obj))), check=False))
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shared_validation_case(objects, case):
    results = _server_verdicts(objects, case)
    transcript = "\n".join(f"[exit {r.returncode}] {' '.join(r.args[2:])}\n{r.stderr}"
                           for r in results)
    if case.valid:
        assert all(r.returncode == 0 for r in results), \
            f"{case.name}: valid for the C++ validator, refused by the API server:\n{transcript}"
        return
    failed = [r for r in results if r.returncode != 0]
    assert failed, f"{case.name}: invalid for the C++ validator (at {case.path!r}), accepted " \
                   f"by the API server:\n{transcript}"
    errors = [e for r in failed for e in parse_invalid(r.stderr)]
    assert find_error(errors, case.path, case.message), \
        f"{case.name}: expected an error at {case.path!r} containing {case.message!r}, the " \
        f"API server said:\n{transcript}"


def test_shared_table_has_both_verdicts():
    assert len(CASES) > 50
    assert any(c.valid for c in CASES) and any(not c.valid for c in CASES)
    assert any(c.old is not None for c in CASES)


# ---- selection and uniqueness ------------------------------------------------------------------

def test_field_selector_on_spec_node_name(objects):
    for cidr, node in [("10.245.0.0/28", "node-a"), ("10.245.0.16/28", "node-a"),
                       ("10.245.0.32/28", "node-b")]:
        objects.create(ipblock(cidr, node, subnet="sel"))
    out = objects.kube.kubectl("get", "ipblocks", "--field-selector", "spec.nodeName=node-a",
                               "-o", "json").stdout
    got = sorted((b["metadata"]["name"], b["spec"]["nodeName"]) for b in json.loads(out)["items"])
    assert got == [("sel-10-245-0-0-28", "node-a"), ("sel-10-245-0-16-28", "node-a")], got
    out = objects.kube.kubectl("get", "ipb", "--field-selector", "spec.nodeName!=node-a",
                               "-o", "name").stdout.split()
    assert "ipblock.vnetipam.io/sel-10-245-0-32-28" in out and \
        not any(n.startswith("ipblock.vnetipam.io/sel-10-245-0-0-") for n in out), out
    # A field the CRD does not declare selectable is refused, not silently ignored.
    res = objects.kube.kubectl("get", "ipblocks", "--field-selector", "spec.cidr=10.245.0.0/28",
                               check=False)
    assert res.returncode != 0 and "spec.cidr" in res.stderr, res.stderr


def test_duplicate_block_is_already_exists(objects):
    blk = ipblock("10.246.0.16/28", "node-dup", subnet="dup")
    first = objects.create(blk)
    again = ipblock("10.246.0.16/28", "node-other", subnet="dup")
    assert again["metadata"]["name"] == block_name("dup", "10.246.0.16/28")
    res = objects.kube.kubectl("create", "-f", "-", input=json.dumps(again), check=False)
    stderr = refused(res, "the same block twice")
    assert "(AlreadyExists)" in stderr and "already exists" in stderr, stderr
    assert objects.get(blk)["spec"] == first["spec"]  # the first owner keeps it
