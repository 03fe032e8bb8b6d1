"""vnet-ipam-agent through a control-plane outage, and its half of the drain handshake.

The cheap harness of test_agent.py: the real API server (the session's etcd + kube-apiserver),
the real agent binary in the root namespace with its own temp socket, state and CNI config
directories. The test plays the controller.

Outage: the agent persists the blocks it serves (<state>/served-blocks). With the API server
stopped (by the PID the harness started), an agent killed and restarted serves again from that
file and its journal after --api-wait-seconds: its allocations are kept, new ones never repeat an
address, and its CNI config is back. Once the API server returns, the agent resynchronises within
seconds (status.used of what it allocated during the outage is written).

Drain: a block being deleted that still holds an allocation keeps vnetipam.io/agent-drain; once
the allocation is released the agent drops the block from its served set and removes the
finalizer (the block then goes). A block deleted while the agent is down is given up when the
agent starts again.
"""

from __future__ import annotations

import json
import time

import pytest

from crd_helpers import API_VERSION, block_name
from polling import poll
from test_agent import SUBNET, TIMEOUT, Agent, address, allocate, crds, held, node, release

__all__ = ["crds", "node"]  # fixtures

DRAIN = "vnetipam.io/agent-drain"
# The agent waits this long for the API server before it serves its persisted blocks.
API_WAIT_SECONDS = 1
# "Within seconds" of the API server's return (its /readyz answering 200).
RESYNC_BOUND = 8.0


def served_blocks(agent: Agent) -> dict[str, str] | None:
    """name -> cidr of <state>/served-blocks (node-agent/served_blocks.h), None when absent."""
    path = agent.state / "served-blocks"
    if not path.exists():
        return None
    header, _, body = path.read_text().partition("\n")
    magic, version, _crc, length = header.split(" ")
    assert (magic, version) == ("vnet-ipam-served-blocks", "1"), header
    assert int(length) == len(body.encode())
    data = json.loads(body)
    assert data["node"] == agent.node
    return {b["name"]: b["cidr"] for b in data["blocks"]}


@pytest.fixture
def outage(crds):
    """stop(): stops kube-apiserver (the harness's process, by its PID); start(): starts it
    again and waits for /readyz. The API server is running again after the test whatever
    happens."""

    class Outage:
        def stop(self) -> None:
            crds.apiserver.stop()
            assert not crds.apiserver.running()

        def start(self) -> float:
            """Returns the monotonic time /readyz first answered 200."""
            crds.restart_apiserver()
            return time.monotonic()

    yield Outage()
    if not crds.apiserver.running():
        crds.restart_apiserver()


def drain_block(crds, node, cidr: str) -> str:
    """A Ready block of `node` carrying agent-drain, as the controller creates it."""
    name = block_name(SUBNET, cidr)
    crds.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": API_VERSION, "kind": "IPBlock",
        "metadata": {"name": name, "finalizers": [DRAIN]},
        "spec": {"podSubnet": SUBNET, "cidr": cidr, "nodeName": node.name}}))
    node.set_phase(name, "Ready", capacity=2 ** (32 - int(cidr.split("/")[1])))
    return name


def finalizers(crds, name: str) -> list[str] | None:
    """The block's finalizers; None once it is gone."""
    got = crds.kubectl("get", "ipblock", name, "-o", "json", "--ignore-not-found")
    if not got.stdout.strip():
        return None
    return json.loads(got.stdout)["metadata"].get("finalizers", [])


@pytest.fixture
def drained(crds):
    """Blocks a test made with agent-drain: their finalizers are removed afterwards, so a failed
    test leaves no block behind."""
    names: list[str] = []
    yield names
    for name in names:
        crds.kubectl("patch", "ipblock", name, "--type=merge", "-p",
                     json.dumps({"metadata": {"finalizers": None}}), check=False)
        crds.kubectl("delete", "ipblock", name, "--ignore-not-found", "--wait=false")


# ---- outage --------------------------------------------------------------------------------

def test_a_restarted_agent_serves_through_an_outage_and_resyncs_when_it_ends(node, outage):
    block = node.block("10.250.20.0/29")
    agent = node.agent("--api-wait-seconds", str(API_WAIT_SECONDS)).start()
    a1 = address(allocate(agent.socket, "c1", "p1"))
    a2 = address(allocate(agent.socket, "c2", "p2"))
    poll("the served block to be persisted",
         lambda: served_blocks(agent) == {block: "10.250.20.0/29"}, TIMEOUT, 0.05,
         describe=lambda: repr(served_blocks(agent)))
    before = held(agent.socket)

    outage.stop()
    agent.kill()
    started = time.monotonic()
    agent.start(wait=False)
    agent.wait_serving()  # CNI config written, status says ready: without the API server
    took = time.monotonic() - started
    print(f"serving {took:.2f} s after the restart, the API server down "
          f"(--api-wait-seconds {API_WAIT_SECONDS})")
    assert not agent.kube.apiserver.running()
    assert "serving the 1 persisted blocks" in agent.log()
    assert agent.http("/readyz")[0] == 200
    assert held(agent.socket) == before, "the journal's allocations are kept"
    assert address(allocate(agent.socket, "c1", "p1")) == a1, "a retried ADD"
    new = {address(allocate(agent.socket, f"n{i}")) for i in range(4)}
    assert len(new) == 4 and not new & {a1, a2}, "no address handed out twice"
    assert len(set(held(agent.socket).values())) == 6
    assert release(agent.socket, "n0")["ok"], "a DEL during the outage"

    ready_at = outage.start()
    # status.used only comes from a synced agent: 5 (c1, c2, n1..n3) was never written before.
    poll("status.used written after the API server returned", lambda: node.used(block) == 5,
         RESYNC_BOUND, 0.05, describe=lambda: f"used={node.used(block)}\n{agent.log()[-3000:]}")
    resynced = time.monotonic() - ready_at
    print(f"status.used written {resynced:.2f} s after the API server answered /readyz")
    # The status writer and the main loop's resync check (every 50 ms) see the sync independently,
    # so the log line may trail the write by one tick.
    poll("the resync to be logged", lambda: "IPBlocks resynchronised" in agent.log(), TIMEOUT, 0.05,
         describe=lambda: agent.log()[-3000:])
    assert address(allocate(agent.socket, "after")) not in new | {a1, a2}


def test_a_damaged_served_blocks_file_serves_nothing_without_the_api_server(node, outage):
    node.block("10.250.21.0/30")
    agent = node.agent("--api-wait-seconds", str(API_WAIT_SECONDS)).start()
    address(allocate(agent.socket, "c1"))
    poll("the served block to be persisted", lambda: served_blocks(agent), TIMEOUT, 0.05)
    outage.stop()
    agent.kill()
    path = agent.state / "served-blocks"
    text = bytearray(path.read_bytes())
    text[-3] ^= 0x01  # one bit of the body
    path.write_bytes(bytes(text))
    agent.start(wait=False)
    poll("the agent to refuse the damaged file",
         lambda: "no persisted served blocks" in agent.log() and "checksum" in agent.log(),
         TIMEOUT, 0.05, describe=agent.log)
    # Three times the bound: still not serving (an absence, so it is checked over a span).
    deadline = time.monotonic() + 3 * API_WAIT_SECONDS
    while time.monotonic() < deadline:
        assert agent.proc.running(), agent.log()
        assert not agent.conf.exists(), "a damaged file must never be a licence to serve"
        time.sleep(0.1)
    outage.start()
    agent.wait_serving()
    assert set(held(agent.socket)) == {"c1"}


# ---- drain ---------------------------------------------------------------------------------

def test_a_deleting_block_keeps_agent_drain_until_its_allocation_is_released(node, crds, drained):
    agent = node.agent().start()
    block = drain_block(crds, node, "10.250.22.0/30")
    drained.append(block)
    poll("the block to be served", lambda: allocate(agent.socket, "c1").get("ok"), TIMEOUT, 0.05)
    poll("the block to be persisted", lambda: block in (served_blocks(agent) or {}), TIMEOUT,
         0.05)

    crds.kubectl("delete", "ipblock", block, "--wait=false")
    poll("the deleting block to be dropped from the served set",
         lambda: served_blocks(agent) == {}, TIMEOUT, 0.05,
         describe=lambda: repr(served_blocks(agent)))
    assert allocate(agent.socket, "c2")["code"] == 11, "a deleting block gets nothing new"
    poll("the agent to decide to keep agent-drain",
         lambda: f"IPBlock {block} is being deleted: keeping {DRAIN}" in agent.log(), TIMEOUT,
         0.05, describe=agent.log)
    assert finalizers(crds, block) == [DRAIN], "c1 still holds an address in it"

    released = time.monotonic()
    assert release(agent.socket, "c1")["ok"]
    poll("the agent to remove agent-drain (the block then goes)",
         lambda: finalizers(crds, block) is None, TIMEOUT, 0.05, describe=agent.log)
    print(f"agent-drain removed {time.monotonic() - released:.2f} s after the last release")
    assert f"IPBlock {block}: holds no allocation and is no longer served: removed {DRAIN}" \
        in agent.log()


def test_a_block_deleted_while_the_agent_is_down_is_given_up_when_it_starts(node, crds, drained):
    agent = node.agent().start()
    block = drain_block(crds, node, "10.250.23.0/30")
    drained.append(block)
    poll("the block to be persisted", lambda: block in (served_blocks(agent) or {}), TIMEOUT,
         0.05)
    agent.kill()
    crds.kubectl("delete", "ipblock", block, "--wait=false")
    assert finalizers(crds, block) == [DRAIN]
    agent.start()
    poll("the restarted agent to remove agent-drain", lambda: finalizers(crds, block) is None,
         TIMEOUT, 0.05, describe=agent.log)
    assert served_blocks(agent) == {}
