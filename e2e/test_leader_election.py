"""Leader election on a coordination.k8s.io/v1 Lease and events.k8s.io Events (lib/kube) against
the real API server.

Each candidate is a build/e2e/tools/lease_probe process (lease 3 s, renew deadline 2 s, retry
0.5 s). The probes print JSON lines {"event", "identity", "t"} where t is CLOCK_MONOTONIC, the
same clock as time.monotonic() here, so the lines of two processes can be put on one time line.
Reader threads move the lines into one queue; every wait has a deadline and ends on an event, not
on a sleep."""

from __future__ import annotations

import ctypes
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from built import built
from polling import poll

NAMESPACE = "leader-election-e2e"
LEASE_DURATION = 3.0
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.5
# Worst case for a standby to take over a dead leader's lease: it sees the last renewal up to one
# retry period late, and notices the expiry up to one retry period late (leader_election.h).
HANDOVER_BOUND = LEASE_DURATION + 2 * RETRY_PERIOD
MARGIN = 0.75


@pytest.fixture(scope="module")
def probe_path() -> Path:
    return built("e2e/tools/lease_probe")


@pytest.fixture(scope="module")
def namespace(kube):
    kube.kubectl("create", "namespace", NAMESPACE)
    yield NAMESPACE
    kube.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Candidates:
    """Lease probes contending for one Lease; their output lines in one queue, in arrival order."""

    def __init__(self, probe_path: Path, kube, lease: str, logdir: Path):
        self.probe_path = probe_path
        self.kube = kube
        self.lease = lease
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.lines: queue.Queue = queue.Queue()
        self.history: list[dict] = []  # every line so far, with "probe": who printed it
        self.deaths: dict[str, float] = {}  # probe -> monotonic time it was known dead
        self._threads: list[threading.Thread] = []

    def start(self, identity: str, *extra: str) -> None:
        stderr = open(self.logdir / f"{identity}.stderr", "w")
        proc = subprocess.Popen(
            [str(self.probe_path), "--kubeconfig", str(self.kube.kubeconfig),
             "--namespace", NAMESPACE, "--name", self.lease, "--identity", identity,
             "--lease-duration", str(LEASE_DURATION), "--renew-deadline", str(RENEW_DEADLINE),
             "--retry-period", str(RETRY_PERIOD), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True,
            preexec_fn=_die_with_parent)
        stderr.close()
        self.procs[identity] = proc
        thread = threading.Thread(target=self._read, args=(identity, proc), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read(self, identity: str, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            line = json.loads(raw)
            line["probe"] = identity
            self.lines.put(line)
        self.lines.put({"probe": identity, "event": "exit", "t": time.monotonic()})

    def wait_for(self, deadline: float, what: str, **match) -> dict:
        """The next line whose fields equal `match`; fails at `deadline` (time.monotonic())."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} by the deadline; seen: {self.history}\n"
                                     f"{self.stderr_tails()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.history.append(line)
            if all(line.get(k) == v for k, v in match.items()):
                return line

    def drain(self) -> None:
        while True:
            try:
                self.history.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def signal(self, identity: str, sig: int) -> float:
        """Sends `sig` by PID; for SIGKILL, returns the time the process was certainly dead."""
        proc = self.procs[identity]
        os.kill(proc.pid, sig)
        if sig == signal.SIGKILL:
            proc.wait(timeout=10)
            self.deaths[identity] = time.monotonic()
        return time.monotonic()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        self.drain()

    def stderr_tails(self) -> str:
        out = []
        for identity in self.procs:
            text = (self.logdir / f"{identity}.stderr").read_text(errors="replace")
            out.append(f"--- {identity} stderr:\n" + "\n".join(text.splitlines()[-20:]))
        return "\n".join(out)

    def assert_never_two_leaders(self) -> None:
        """Each probe's terms [started, stopped or death] never overlap another probe's."""
        terms: list[tuple[float, float, str]] = []
        begun: dict[str, float] = {}
        for line in sorted(self.history, key=lambda l: l["t"]):
            who = line["probe"]
            if line["event"] == "started" and line["identity"] == who:
                assert who not in begun, f"{who} started twice without stopping: {self.history}"
                begun[who] = line["t"]
            elif line["event"] in ("stopped", "exit") and who in begun:
                end = line["t"] if line["event"] == "stopped" else self.deaths.get(who, line["t"])
                terms.append((begun.pop(who), end, who))
        terms += [(start, float("inf"), who) for who, start in begun.items()]
        for i, (s1, e1, w1) in enumerate(terms):
            for s2, e2, w2 in terms[i + 1:]:
                if w1 != w2:
                    assert e1 <= s2 or e2 <= s1, (
                        f"{w1} led [{s1:.3f}, {e1:.3f}] while {w2} led [{s2:.3f}, {e2:.3f}]")


@pytest.fixture
def candidates(kube, probe_path, namespace, tmp_path):
    c = Candidates(probe_path, kube, f"lease-{uuid.uuid4().hex[:8]}", tmp_path)
    yield c
    c.stop_all()


def get_lease(kube, name: str) -> dict:
    return json.loads(kube.kubectl("get", "lease", name, "-n", NAMESPACE, "-o", "json").stdout)


def elect(c: Candidates) -> tuple[str, str]:
    """Starts a and b; returns (leader, standby) once the standby has seen the leader."""
    c.start("a")
    c.start("b")
    deadline = time.monotonic() + 15
    leader = c.wait_for(deadline, "leader", event="started")["probe"]
    standby = "b" if leader == "a" else "a"
    c.wait_for(deadline, f"{standby} seeing {leader}", probe=standby, event="new_leader",
               identity=leader)
    return leader, standby


def wait_renewals(c: Candidates, count: int, deadline: float) -> None:
    """Waits until the Lease's renewTime has moved `count` times."""
    seen = set()

    def renewed() -> bool:
        seen.add(get_lease(c.kube, c.lease)["spec"]["renewTime"])
        return len(seen) > count

    poll(f"{count} lease renewals", renewed, deadline - time.monotonic(),
         describe=lambda: f"only {len(seen)} renewals seen\n{c.stderr_tails()}")


def test_exactly_one_leads_and_a_killed_leader_is_replaced(candidates):
    c = candidates
    leader, standby = elect(c)
    lease = get_lease(c.kube, c.lease)
    assert lease["spec"]["holderIdentity"] == leader
    assert lease["spec"]["leaseDurationSeconds"] == 3

    # Longer than a lease duration of renewals (8 x 0.5 s): the standby must stay a standby.
    wait_renewals(c, 8, time.monotonic() + 20)
    c.drain()
    starts = [line["probe"] for line in c.history if line["event"] == "started"]
    assert starts == [leader], c.history
    assert get_lease(c.kube, c.lease)["spec"]["holderIdentity"] == leader

    killed = c.signal(leader, signal.SIGKILL)
    started = c.wait_for(killed + HANDOVER_BOUND + MARGIN + 5, f"{standby} taking over",
                         probe=standby, event="started")
    handover = started["t"] - killed
    # It waited the lease out (the leader renewed at most a retry period before it died) ...
    assert handover >= LEASE_DURATION - RETRY_PERIOD - 0.1, handover
    # ... and no longer than the lease duration plus the polling delays.
    assert handover <= HANDOVER_BOUND + MARGIN, handover
    print(f"SIGKILL handover {handover:.2f}s")

    lease = get_lease(c.kube, c.lease)
    assert lease["spec"]["holderIdentity"] == standby
    assert lease["spec"]["leaseTransitions"] == 1
    c.stop_all()
    c.assert_never_two_leaders()


def test_sigterm_releases_the_lease_for_an_immediate_handover(candidates):
    c = candidates
    leader, standby = elect(c)
    terminated = c.signal(leader, signal.SIGTERM)
    deadline = terminated + LEASE_DURATION
    stopped = c.wait_for(deadline, f"{leader} stopping", probe=leader, event="stopped")
    c.wait_for(deadline, f"{leader} exiting", probe=leader, event="exit")
    assert c.procs[leader].wait(timeout=5) == 0
    started = c.wait_for(deadline, f"{standby} taking over", probe=standby, event="started")
    assert stopped["t"] <= started["t"]
    handover = started["t"] - terminated
    # The standby's next round finds the lease free: one retry period, not a lease duration.
    assert handover <= RETRY_PERIOD + MARGIN, handover
    print(f"SIGTERM handover {handover:.2f}s")

    lease = get_lease(c.kube, c.lease)
    assert lease["spec"]["holderIdentity"] == standby
    assert lease["spec"]["leaseTransitions"] == 1
    c.stop_all()
    c.assert_never_two_leaders()


def test_leader_records_an_event_about_the_lease(candidates):
    c = candidates
    c.start("solo", "--event")
    c.wait_for(time.monotonic() + 15, "solo leading", event="started")
    uid = get_lease(c.kube, c.lease)["metadata"]["uid"]

    def our_events() -> list[dict]:
        events = json.loads(c.kube.kubectl("get", "events.events.k8s.io", "-n", NAMESPACE,
                                           "-o", "json").stdout)["items"]
        return [e for e in events if e.get("regarding", {}).get("name") == c.lease]

    ours = poll(f"an Event about {c.lease}", our_events, 10, describe=c.stderr_tails)
    assert len(ours) == 1, ours
    event = ours[0]
    assert event["reason"] == "LeaderElected"
    assert event["type"] == "Normal"
    assert event["action"] == "Acquire"
    assert event["note"] == f"solo became leader of lease {NAMESPACE}/{c.lease}"
    assert event["reportingController"] == "vnetipam.io/lease-probe"
    assert event["reportingInstance"] == "solo"
    assert event["regarding"] == {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                  "name": c.lease, "namespace": NAMESPACE, "uid": uid}
    assert event["eventTime"].endswith("Z") and len(event["eventTime"]) == 27

    terminated = c.signal("solo", signal.SIGTERM)
    c.wait_for(terminated + 5, "solo exiting", probe="solo", event="exit")
    assert c.procs["solo"].wait(timeout=5) == 0
    assert get_lease(c.kube, c.lease)["spec"]["holderIdentity"] == ""
