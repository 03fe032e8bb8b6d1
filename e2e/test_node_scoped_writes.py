"""Node-scoped writes: each node's agent may write only its own node's IPBlocks.

Every node's agent runs as one ServiceAccount, so RBAC lets any of them patch the status of any
IPBlock. The chart's ValidatingAdmissionPolicy (templates/agent-admission-policy.yaml) narrows
that to the blocks whose spec.nodeName is the node named by the caller's pod-bound token.

On the real API server, with the chart's ServiceAccounts, RBAC and policy (rendered by helm) in a
namespace of their own: two Nodes, one agent Pod bound to each (never run: no scheduler, no
kubelet), and tokens from the TokenRequest API bound to each Pod, as the kubelet would project
them. Each token writes status.used exactly as the agent does (server-side apply of the status
subresource under the agent's field manager, forced) and is refused on the other node's block
with a message naming both nodes; a merge patch is refused alike. A token bound to no pod is
refused; the controller's ServiceAccount and the admin are not affected. Given a broader role,
the agent still cannot create or delete another node's blocks. The agent binary itself, with
a pod-bound token in its kubeconfig and nothing but the chart's role: it watches its node's blocks
and Pods and reports status.used through the policy; told it is on the other node, it serves that
node's block but its report is refused.

The drain handshake: the one change an agent may make to a block itself (not its status) is
removing the finalizer vnetipam.io/agent-drain from a block of its own node that is being
deleted, spec, labels, annotations and other finalizers unchanged. Removing it from another
node's block, from a block not being deleted, removing or adding another finalizer, or changing
labels or annotations is refused with a message that says which. The agent binary, through the
policy, removes it from its own deleting block.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from crd_helpers import CRD_DIR, CRD_NAMES, block_name, ipblock
from polling import poll
from test_agent import Agent, address, allocate

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "vnet-ipam"
NAMESPACE = "vnet-ipam-nsw"
RELEASE = "vnet-ipam-nsw"  # holds the chart's name: objects are vnet-ipam-nsw-agent, ...
AGENT_SA = f"{RELEASE}-agent"
CONTROLLER_SA = f"{RELEASE}-controller"
POLICY = f"{RELEASE}-agent-node-scoped-writes"
NODES = ("nsw-node-a", "nsw-node-b")
SUBNET = "nsw-pods"
CIDRS = {"nsw-node-a": "10.251.0.0/28", "nsw-node-b": "10.251.0.16/28"}
BLOCKS = {node: block_name(SUBNET, cidr) for node, cidr in CIDRS.items()}
IPBLOCKS = "/apis/vnetipam.io/v1alpha1/ipblocks"
# What node-agent/api_sync.cpp sends: api::kAgentFieldManager, with force.
AGENT_FIELD_MANAGER = "vnet-ipam-agent"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
         "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


# ---- requests with a bearer token, as the agent makes them -----------------------------------

class Caller:
    """Requests to the API server with one bearer token (no client certificate)."""

    def __init__(self, kube, token: str):
        self.server = kube.server
        self.token = token
        self.context = ssl.create_default_context(cafile=str(kube.pki / "ca.crt"))

    def call(self, method: str, path: str, body: dict | None = None,
             content_type: str = "application/json") -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type,
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=15) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"message": raw.decode(errors="replace")}

    def apply_used(self, block: str, used: int, dry_run: bool = False) -> tuple[int, dict]:
        """status.used as the agent writes it: PATCH .../ipblocks/<name>/status with an apply
        patch, fieldManager=vnet-ipam-agent and force=true."""
        query = {"fieldManager": AGENT_FIELD_MANAGER, "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        body = {"apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
                "metadata": {"name": block}, "status": {"used": used}}
        return self.call("PATCH", f"{IPBLOCKS}/{block}/status?{urllib.parse.urlencode(query)}",
                         body, "application/apply-patch+yaml")

    def merge_patch_used(self, block: str, used: int) -> tuple[int, dict]:
        return self.call("PATCH", f"{IPBLOCKS}/{block}/status", {"status": {"used": used}},
                         "application/merge-patch+json")

    def whoami(self) -> dict:
        status, review = self.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                   {"apiVersion": "authentication.k8s.io/v1",
                                    "kind": "SelfSubjectReview"})
        assert status == 201, review
        return review["status"]["userInfo"]


def used_of(kube, node: str) -> int | None:
    obj = json.loads(kube.kubectl("get", "ipblock", BLOCKS[node], "-o", "json").stdout)
    return obj.get("status", {}).get("used")


def assert_refused(answer: tuple[int, dict], *parts: str) -> None:
    status, body = answer
    message = body.get("message", "")
    assert status == 403, f"expected 403, got {status}: {body}"
    assert f"ValidatingAdmissionPolicy '{POLICY}'" in message, message
    for part in parts:
        assert part in message, f"{part!r} not in: {message}"


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def helm() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "install-helm.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def chart(kube, helm):
    """The CRDs, and the chart's ServiceAccounts, RBAC and admission policy (nothing else) in
    a namespace of their own; the policy in force (it takes effect shortly after it is created)."""
    kube.kubectl("apply", "-f", str(CRD_DIR))
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 *(f"crd/{n}" for n in CRD_NAMES))
    out = subprocess.run([str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=120).stdout
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] in KINDS]
    assert {d["kind"] for d in docs} == set(KINDS)
    text = yaml.safe_dump_all(docs)
    kube.kubectl("create", "namespace", NAMESPACE)
    kube.kubectl("apply", "-f", "-", input=text)
    yield docs
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@pytest.fixture(scope="module")
def cluster(kube, chart):
    """Two Nodes, an agent Pod bound to each, one IPBlock per node (created by the admin), and
    the tokens: {node: pod-bound agent token}, plus an agent token bound to no pod and a
    controller token."""
    pods = {}
    for node in NODES:
        kube.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}))
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"agent-{node}", "namespace": NAMESPACE},
               "spec": {"nodeName": node, "serviceAccountName": AGENT_SA,
                        "containers": [{"name": "agent", "image": "registry.invalid/agent"}]}}
        created = json.loads(kube.kubectl("create", "-o", "json", "-f", "-",
                                          input=json.dumps(pod)).stdout)
        pods[node] = (created["metadata"]["name"], created["metadata"]["uid"])
        kube.kubectl("apply", "-f", "-", input=json.dumps(ipblock(CIDRS[node], node, SUBNET)))

    def token(sa: str, *bound: str) -> str:
        return kube.kubectl("create", "token", sa, "-n", NAMESPACE, "--duration=1h",
                            *bound).stdout.strip()

    tokens = {node: token(AGENT_SA, "--bound-object-kind=Pod", f"--bound-object-name={name}",
                          f"--bound-object-uid={uid}") for node, (name, uid) in pods.items()}
    callers = {node: Caller(kube, t) for node, t in tokens.items()}
    unbound = Caller(kube, token(AGENT_SA))
    controller = Caller(kube, token(CONTROLLER_SA))

    # The policy applies once the API server has loaded it: wait for the first refusal (dry
    # run, so nothing is written while waiting).
    a, b = NODES
    poll("the admission policy to take effect",
         lambda: callers[a].apply_used(BLOCKS[b], 1, dry_run=True)[0] == 403, timeout=60,
         interval=0.25, describe=lambda: repr(callers[a].apply_used(BLOCKS[b], 1, dry_run=True)))
    yield {"agents": callers, "unbound": unbound, "controller": controller, "pods": pods,
           "tokens": tokens}
    kube.kubectl("delete", "ipblock", "--ignore-not-found", *BLOCKS.values())
    kube.kubectl("delete", "node", "--ignore-not-found", *NODES)


# ---- tests -------------------------------------------------------------------------------------

def test_the_policy_type_checks_against_the_crd(kube, chart, request):
    """Every expression is well typed against the IPBlock schema (a misspelt field would be a
    warning here, and a runtime error that refuses every agent write). The check is made by
    kube-controller-manager's policy status controller, started for this test alone."""
    manager = kube.start_controller_manager(
        "--controllers=validatingadmissionpolicy-status-controller")
    request.addfinalizer(lambda: kube.stop_controller_manager(manager))

    def checked():
        policy = json.loads(kube.kubectl("get", "validatingadmissionpolicy", POLICY, "-o",
                                         "json").stdout)
        return "typeChecking" in policy.get("status", {}) and policy

    policy = poll("the policy's type check", checked, timeout=30, interval=0.25)
    assert policy["status"]["typeChecking"].get("expressionWarnings", []) == [], policy["status"]


def test_pod_bound_tokens_carry_their_pods_node(cluster):
    """The premise: the API server puts the Pod's node in the token's user info."""
    for node, caller in cluster["agents"].items():
        info = caller.whoami()
        assert info["username"] == f"system:serviceaccount:{NAMESPACE}:{AGENT_SA}"
        assert info["extra"][NODE_NAME_EXTRA] == [node], info
    assert NODE_NAME_EXTRA not in cluster["unbound"].whoami().get("extra", {})


def test_an_agent_writes_its_own_nodes_block(kube, cluster):
    for i, (node, caller) in enumerate(cluster["agents"].items()):
        status, body = caller.apply_used(BLOCKS[node], 5 + i)
        assert status == 200, body
        assert used_of(kube, node) == 5 + i
        # Owned by the agent's field manager, as in a real cluster.
        managers = {m["manager"] for m in body["metadata"]["managedFields"]
                    if m.get("subresource") == "status"}
        assert AGENT_FIELD_MANAGER in managers
        # Repeating the same apply (the agent retries after an unknown outcome) is allowed too.
        assert caller.apply_used(BLOCKS[node], 5 + i)[0] == 200


def test_an_agent_cannot_write_another_nodes_block(kube, cluster):
    """The defect: used 0 written on another node's live block. Refused, whichever patch."""
    a, b = NODES
    for caller_node, block_node in ((a, b), (b, a)):
        caller = cluster["agents"][caller_node]
        before = used_of(kube, block_node)
        want = (f"IPBlock {BLOCKS[block_node]} belongs to node {block_node}",
                f"the node agent on node {caller_node}")
        assert_refused(caller.apply_used(BLOCKS[block_node], 0), *want)
        assert_refused(caller.merge_patch_used(BLOCKS[block_node], 0), *want)
        assert used_of(kube, block_node) == before


def test_a_token_bound_to_no_pod_is_refused(kube, cluster):
    """A token without a node (a TokenRequest bound to nothing, like a legacy Secret token)
    cannot write any block, its own node's included: the policy fails closed."""
    for node in NODES:
        before = used_of(kube, node)
        assert_refused(cluster["unbound"].apply_used(BLOCKS[node], 0),
                       f"IPBlock {BLOCKS[node]} belongs to node {node}", "bound to no node")
        assert used_of(kube, node) == before


def test_the_controller_and_the_admin_are_not_affected(kube, cluster):
    for node in NODES:
        status, body = cluster["controller"].merge_patch_used(BLOCKS[node], 3)
        assert status == 200, body
        status, body = cluster["controller"].call(
            "PATCH", f"{IPBLOCKS}/{BLOCKS[node]}/status?fieldManager=vnet-ipam-controller",
            {"apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
             "metadata": {"name": BLOCKS[node]}, "status": {"capacity": 16}},
            "application/apply-patch+yaml")
        assert status == 200, body
        kube.kubectl("patch", "ipblock", BLOCKS[node], "--subresource=status", "--type=merge",
                     "-p", json.dumps({"status": {"used": 2}}))
        assert used_of(kube, node) == 2


def test_a_broader_role_still_cannot_reach_another_node(kube, cluster):
    """The policy covers every write to IPBlocks, not only the status patch the agent's role
    allows: with create and delete granted as well, the agent creates and deletes only blocks
    of its own node."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "nsw-broader-agent"},
            "rules": [{"apiGroups": ["vnetipam.io"], "resources": ["ipblocks"],
                       "verbs": ["create", "delete"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "nsw-broader-agent"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "nsw-broader-agent"},
               "subjects": [{"kind": "ServiceAccount", "name": AGENT_SA,
                             "namespace": NAMESPACE}]}
    text = yaml.safe_dump_all([role, binding])
    kube.kubectl("apply", "-f", "-", input=text)
    a, b = NODES
    agent_a = cluster["agents"][a]
    extra = {b: ipblock("10.251.0.32/28", b, SUBNET), a: ipblock("10.251.0.48/28", a, SUBNET)}
    try:
        # RBAC answers first: wait until the grant is in force (a dry run of the allowed create).
        poll("the broader role to take effect",
             lambda: agent_a.call("POST", f"{IPBLOCKS}?dryRun=All", extra[a])[0] == 201,
             timeout=30, interval=0.25)
        assert_refused(agent_a.call("POST", IPBLOCKS, extra[b]),
                       f"belongs to node {b}", f"the node agent on node {a}")
        assert_refused(agent_a.call("DELETE", f"{IPBLOCKS}/{BLOCKS[b]}"),
                       f"IPBlock {BLOCKS[b]} belongs to node {b}", f"the node agent on node {a}")
        kube.kubectl("get", "ipblock", BLOCKS[b])
        status, body = agent_a.call("POST", IPBLOCKS, extra[a])
        assert status == 201, body
        status, body = agent_a.call("DELETE", f"{IPBLOCKS}/{extra[a]['metadata']['name']}")
        assert status == 200, body
    finally:
        kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=text)
        kube.kubectl("delete", "ipblock", "--ignore-not-found",
                     *(o["metadata"]["name"] for o in extra.values()))


def agent_credentials(kube, token: str, path: Path):
    """What Agent reads from the cluster, its kubeconfig: here one with `token` alone."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": kube.server,
                                                 "certificate-authority": str(kube.pki / "ca.crt")}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "agent"}}],
        "current-context": "e2e"}))

    class Credentials:
        kubeconfig = path
    return Credentials()


def test_the_agent_binary_reports_usage_only_for_its_own_node(kube, cluster, tmp_path):
    """node-agent/vnet-ipam-agent with node A's pod-bound token and only the chart's role:
    on node A its report of status.used goes through; started as node B with the same token
    (a compromised or misconfigured agent) it serves B's block, but the report is refused and
    B's status.used is untouched."""
    a, b = NODES
    for node in NODES:  # Ready, as the controller leaves a programmed block
        kube.kubectl("apply", "--server-side", "--field-manager=vnet-ipam-controller",
                     "--subresource=status", "-f", "-", input=json.dumps({
                         "apiVersion": "vnetipam.io/v1alpha1", "kind": "IPBlock",
                         "metadata": {"name": BLOCKS[node]},
                         "status": {"phase": "Ready", "capacity": 16}}))
    credentials = agent_credentials(kube, cluster["tokens"][a], tmp_path / "agent-a.kubeconfig")

    before_b = used_of(kube, b)
    agents = []
    try:
        own = Agent(credentials, tmp_path / "own", a)
        agents.append(own)
        own.start()
        address(allocate(own.socket, "c-own"))
        poll(f"the agent on {a} to report status.used=1", lambda: used_of(kube, a) == 1,
             timeout=30, interval=0.2, describe=own.log)

        other = Agent(credentials, tmp_path / "other", b)
        agents.append(other)
        other.start()
        address(allocate(other.socket, "c-other"))
        refusal = f"IPBlock {BLOCKS[b]} belongs to node {b}, and the caller is the node agent " \
                  f"on node {a}"
        # The report after the allocation (used=1), not only the first one (used=0).
        poll("the agent's report for the other node to be refused",
             lambda: any("writing status.used=1:" in line and refusal in line
                         for line in other.log().splitlines()),
             timeout=30, interval=0.2, describe=other.log)
        assert used_of(kube, b) == before_b
    finally:
        for agent in agents:
            if agent.proc and agent.proc.running():
                agent.kill()


# ---- the drain handshake: the only change to the block itself an agent may make -------------

DRAIN = "vnetipam.io/agent-drain"
KEEP = "example.com/keep"
NIC_RELEASE = "vnetipam.io/nic-release"


def json_patch(caller: Caller, block: str, ops: list[dict]) -> tuple[int, dict]:
    return caller.call("PATCH", f"{IPBLOCKS}/{block}", ops, "application/json-patch+json")


def remove_finalizer_ops(obj: dict, finalizer: str) -> list[dict]:
    """What the agent sends (node-agent/api_sync.cpp removeAgentDrainPatch): test the uid and the
    exact entry, then remove it."""
    index = obj["metadata"]["finalizers"].index(finalizer)
    return [{"op": "test", "path": "/metadata/uid", "value": obj["metadata"]["uid"]},
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"}]


@pytest.fixture
def drain_blocks(kube, cluster):
    """make(node, cidr, deleting) -> the object: a block of `node` with the finalizers
    [KEEP, agent-drain, nic-release], deleted by the admin when `deleting` (it stays, held by its
    finalizers). Every finalizer is removed and the blocks deleted afterwards."""
    made: list[str] = []

    def make(node: str, cidr: str, deleting: bool = True) -> dict:
        obj = ipblock(cidr, node, SUBNET)
        obj["metadata"]["finalizers"] = [KEEP, DRAIN, NIC_RELEASE]
        kube.kubectl("create", "-f", "-", input=json.dumps(obj))
        made.append(obj["metadata"]["name"])
        if deleting:
            kube.kubectl("delete", "ipblock", obj["metadata"]["name"], "--wait=false")
        return json.loads(kube.kubectl("get", "ipblock", obj["metadata"]["name"], "-o",
                                       "json").stdout)

    yield make
    for name in made:
        kube.kubectl("patch", "ipblock", name, "--type=merge", "-p",
                     json.dumps({"metadata": {"finalizers": None}}), check=False)
        kube.kubectl("delete", "ipblock", name, "--ignore-not-found", "--wait=false")


def finalizers_of(kube, name: str) -> list[str]:
    return json.loads(kube.kubectl("get", "ipblock", name, "-o", "json").stdout)["metadata"].get(
        "finalizers", [])


def test_an_agent_removes_agent_drain_from_its_own_deleting_block(kube, cluster, drain_blocks):
    a, _ = NODES
    obj = drain_blocks(a, "10.251.1.0/28")
    status, body = json_patch(cluster["agents"][a], obj["metadata"]["name"],
                              remove_finalizer_ops(obj, DRAIN))
    assert status == 200, body
    assert finalizers_of(kube, obj["metadata"]["name"]) == [KEEP, NIC_RELEASE]
    # A merge patch that does the same is the same change: allowed too.
    obj = drain_blocks(a, "10.251.1.16/28")
    status, body = cluster["agents"][a].call(
        "PATCH", f"{IPBLOCKS}/{obj['metadata']['name']}",
        {"metadata": {"finalizers": [KEEP, NIC_RELEASE]}}, "application/merge-patch+json")
    assert status == 200, body


def test_an_agent_cannot_remove_agent_drain_from_another_nodes_block(kube, cluster, drain_blocks):
    a, b = NODES
    obj = drain_blocks(b, "10.251.1.32/28")
    assert_refused(json_patch(cluster["agents"][a], obj["metadata"]["name"],
                              remove_finalizer_ops(obj, DRAIN)),
                   f"IPBlock {obj['metadata']['name']} belongs to node {b}",
                   f"the node agent on node {a}")
    assert finalizers_of(kube, obj["metadata"]["name"]) == [KEEP, DRAIN, NIC_RELEASE]
    # A token bound to no pod cannot either.
    assert_refused(json_patch(cluster["unbound"], obj["metadata"]["name"],
                              remove_finalizer_ops(obj, DRAIN)), "bound to no node")


def test_an_agent_may_make_no_other_change_to_its_own_block(kube, cluster, drain_blocks):
    a, _ = NODES
    agent = cluster["agents"][a]
    live = drain_blocks(a, "10.251.1.48/28", deleting=False)
    deleting = drain_blocks(a, "10.251.1.64/28")
    name, live_name = deleting["metadata"]["name"], live["metadata"]["name"]
    drain_only = "the node agent may change a block only to remove the finalizer " + DRAIN
    # agent-drain off a block that is not being deleted: the controller could then release it
    # without waiting for the agent.
    assert_refused(json_patch(agent, live_name, remove_finalizer_ops(live, DRAIN)),
                   drain_only, "this block is not being deleted")
    # Another finalizer, alone or with agent-drain.
    assert_refused(json_patch(agent, name, remove_finalizer_ops(deleting, NIC_RELEASE)),
                   drain_only, "changes its finalizers otherwise")
    assert_refused(agent.call("PATCH", f"{IPBLOCKS}/{name}", {"metadata": {"finalizers": []}},
                              "application/merge-patch+json"),
                   drain_only, "changes its finalizers otherwise")
    # A finalizer added (the API server refuses that itself on a block being deleted).
    assert_refused(json_patch(agent, live_name, [{"op": "add", "path": "/metadata/finalizers/-",
                                                  "value": "example.com/more"}]), drain_only)
    # Labels and annotations, with or without the finalizer change.
    for field in ("labels", "annotations"):
        patch = {"metadata": {field: {"example.com/x": "y"}}}
        assert_refused(agent.call("PATCH", f"{IPBLOCKS}/{name}", patch,
                                  "application/merge-patch+json"),
                       drain_only, f"this request changes its {field}")
        with_drain = [*remove_finalizer_ops(deleting, DRAIN),
                      {"op": "add", "path": f"/metadata/{field}", "value": {"example.com/x": "y"}}]
        assert_refused(json_patch(agent, name, with_drain), drain_only,
                       f"this request changes its {field}")
    assert finalizers_of(kube, name) == [KEEP, DRAIN, NIC_RELEASE]
    assert finalizers_of(kube, live_name) == [KEEP, DRAIN, NIC_RELEASE]


def test_the_agent_binary_removes_agent_drain_through_the_policy(kube, cluster, drain_blocks,
                                                                 tmp_path):
    """The agent with node A's pod-bound token and only the chart's role gives up a block of A
    being deleted that holds nothing: agent-drain goes, the other finalizers stay."""
    a, _ = NODES
    obj = drain_blocks(a, "10.251.1.80/28")
    credentials = agent_credentials(kube, cluster["tokens"][a], tmp_path / "agent-a.kubeconfig")
    agent = Agent(credentials, tmp_path / "drain", a)
    try:
        agent.start()
        poll("the agent to remove agent-drain",
             lambda: finalizers_of(kube, obj["metadata"]["name"]) == [KEEP, NIC_RELEASE],
             timeout=30, interval=0.1, describe=agent.log)
    finally:
        if agent.proc and agent.proc.running():
            agent.kill()
