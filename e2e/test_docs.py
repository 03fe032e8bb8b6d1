"""The commands the documentation shows are run: every shell command in a fenced block of the
README, the chart README, docs/ and bench/README.md is listed in WHERE_RUN below with the test, the
script or the demo that runs it, or with the reason it cannot run on this machine (no container
engine, no Azure subscription, no Calico). A command added to the docs without an entry, or an entry
whose command left the docs, fails here; so does an entry whose runner no longer holds the text it
is said to run. The one command nothing else runs, the README's Azure VNET mock example, runs here.

A command is a line of a ```sh block (continuation lines joined, trailing comments dropped), or a
line that starts with "$ " in another block (a transcript); the documents hold no indented code
block, which would hide its commands.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from built import built
from polling import poll
from test_helm import free_port, helm, one, render  # noqa: F401 (helm: the fixture)

ROOT = Path(__file__).resolve().parent.parent


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "charts" / "vnet-ipam" / "README.md",
            *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)


def commands(path: Path) -> list[tuple[int, str]]:
    """(line, command) for every command the document shows."""
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        lang, lines = m.group(1), m.group(2).split("\n")
        first = text[:m.start()].count("\n") + 2
        i = 0
        while i < len(lines):
            line, number = lines[i], first + i
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            s = line.strip()
            if lang != "sh":
                if not s.startswith("$ "):
                    continue
                s = s[2:]
            if s.startswith("#"):
                continue
            s = " ".join(re.sub(r"\s+#\s.*$", "", s).split())
            if s:
                found.append((number, s))
    return found


@dataclass(frozen=True)
class Run:
    """Where a documented command runs: `runner` (a path from the top of the repository) holds
    `evidence`, the text that runs it. A runner of None is a command that cannot run here, and
    `evidence` says why."""
    doc: str
    command: str  # the command as the doc shows it, or its start when it ends with "..."
    runner: str | None
    evidence: str


NO_ENGINE = "no container engine or registry on this machine: the image is built by " \
    "scripts/build-image.sh from the same scripts/image-rootfs.sh as the Dockerfile"
NO_AZURE = "no Azure subscription here (the guide says so); the role file it reads is " \
    "enforced by the mock in every mock-backed test"
BENCH = "a benchmark, run by hand; its figures and the run's budget are in bench/README.md"

WHERE_RUN = [
    # README.md
    Run("README.md", "scripts/demo.sh", "scripts/demo.sh", "demo.py"),
    Run("README.md", "scripts/test.sh", ".ci/run", "scripts/test.sh"),
    Run("README.md", "helm=$(scripts/install-helm.sh)", "scripts/test.sh", "scripts/install-helm.sh"),
    Run("README.md", "$helm install vnet-ipam charts/vnet-ipam --namespace vnet-ipam-system "
        "--create-namespace", "e2e/realnodes.py", '["install", "--create-namespace"]'),
    Run("README.md", "$helm install vnet-ipam charts/vnet-ipam -n vnet-ipam-system "
        "--create-namespace --set cloud=none", "e2e/test_realnodes.py", '"cloud": "none"'),
    Run("README.md", "kubectl get podsubnets; kubectl get ipblocks -o wide", "scripts/demo.py",
        '"get", "ipblocks", "-o", "wide"'),
    Run("README.md", "kubectl -n kube-system set env daemonset/calico-node ...", None,
        "no Calico here: the real-node suite runs kube-router's policy engine next to vnet-ipam"),
    Run("README.md", "docker build ...", None, NO_ENGINE),
    Run("README.md", "docker push ...", None, NO_ENGINE),
    Run("README.md", "helm install vnet-ipam charts/vnet-ipam -n vnet-ipam-system "
        "--create-namespace --set image.repository=", "e2e/realnodes.py",
        '"image": {"repository": IMAGE_REPOSITORY, "tag": tag'),
    Run("README.md", "archive=$(scripts/build-image.sh | tail -n1)", "e2e/realnodes.py",
        "build-image.sh"),
    Run("README.md", 'ctr -n k8s.io images import "$archive"', "e2e/realnodes.py",
        '"images", "import"'),
    Run("README.md", "cmake --build build --target azure-vnet-mock", "e2e/test_docs.py",
        "test_the_readmes_mock_example_runs"),
    Run("README.md", "./build/azure-mock/azure-vnet-mock --listen ...", "e2e/test_docs.py",
        "test_the_readmes_mock_example_runs"),
    Run("README.md", "curl -s http://127.0.0.1:8080/mock/state", "e2e/test_docs.py",
        "test_the_readmes_mock_example_runs"),
    Run("README.md", "cmake --build build --target ipam_bench journal_bench agent_bench", None,
        BENCH),
    Run("README.md", "./build/bench/...", None, BENCH),
    Run("README.md", "python3 bench/...", None, BENCH),
    # charts/vnet-ipam/README.md
    Run("charts/vnet-ipam/README.md", "helm install vnet-ipam charts/vnet-ipam --namespace "
        "vnet-ipam-system --create-namespace", "e2e/realnodes.py",
        '["install", "--create-namespace"]'),
    Run("charts/vnet-ipam/README.md", "helm install vnet-ipam charts/vnet-ipam -n "
        "vnet-ipam-system --create-namespace --set azure.existingSecret=",
        "e2e/test_docs.py", "test_the_documented_workload_identity_installs_render"),
    Run("charts/vnet-ipam/README.md", "helm install vnet-ipam charts/vnet-ipam -n "
        "vnet-ipam-system --create-namespace --set cloud=none", "e2e/test_realnodes.py",
        '"cloud": "none"'),
    Run("charts/vnet-ipam/README.md", "kubectl apply --server-side --force-conflicts -f crds/",
        "e2e/test_realnodes.py", '"apply", "--server-side", "--force-conflicts", "-f", str(CRDS)'),
    Run("charts/vnet-ipam/README.md", "helm upgrade vnet-ipam charts/vnet-ipam -n "
        "vnet-ipam-system -f my-values.yaml", "e2e/realnodes.py", '["upgrade"] if upgrade'),
    Run("charts/vnet-ipam/README.md", "kubectl -n vnet-ipam-system rollout status ...",
        "e2e/realnodes.py", '"rollout", "status"'),
    Run("charts/vnet-ipam/README.md", "kubectl ipam check", "e2e/test_realnodes.py",
        'built("kubectl-ipam/kubectl-ipam")), "check"'),
    Run("charts/vnet-ipam/README.md", "kubectl get ipblocks -o name | xargs -r -n1 kubectl "
        "patch --type=merge ...", "e2e/test_realnodes.py", '{"metadata":{"finalizers":null}}'),
    Run("charts/vnet-ipam/README.md", "kubectl delete ipblocks --all", "e2e/test_realnodes.py",
        '"delete", "ipblocks", "--all"'),
    # docs/fuzzing.md
    Run("docs/fuzzing.md", "ctest --test-dir build -R fuzz_corpus", "scripts/test.sh",
        'ctest --test-dir "$build_dir"'),
    Run("docs/fuzzing.md", "build/fuzz/fuzz_replay_azure_decoders ...", "fuzz/CMakeLists.txt",
        "add_test(NAME fuzz_corpus_${name}"),
    Run("docs/fuzzing.md", "scripts/fuzz.sh 20", "scripts/test.sh", "scripts/fuzz.sh 20"),
    Run("docs/fuzzing.md", "scripts/fuzz.sh 600 journal azure_decoders", None,
        "ten minutes per target, run by hand; scripts/test.sh runs the same script for 20 s each"),
    Run("docs/fuzzing.md", "CXX=afl-g++ CC=gcc cmake -S . -B build-fuzz ...", "scripts/fuzz.sh",
        "CXX=afl-g++ CC=gcc AFL_QUIET=1 cmake -S . -B"),
    Run("docs/fuzzing.md", "cmake --build build-fuzz --target fuzzers", "scripts/fuzz.sh",
        "--target fuzzers"),
    Run("docs/fuzzing.md", "AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 ...", "scripts/fuzz.sh",
        'afl-fuzz -i "fuzz/corpus/$target"'),
    # docs/install-azure.md
    Run("docs/install-azure.md", "kubectl get nodes -o custom-columns=", "e2e/test_scale_sets.py",
        "custom-columns=NAME:.metadata.name,PROVIDER:.spec.providerID"),
    Run("docs/install-azure.md", "kubectl get node <node> -o jsonpath=...", "e2e/test_scale_sets.py",
        '"jsonpath="'),
    Run("docs/install-azure.md", "sub=$(az ...", None, NO_AZURE),
    Run("docs/install-azure.md", "az ...", None, NO_AZURE),
    Run("docs/install-azure.md", 'sed "s|/subscriptions/00000000-0000-0000-0000-000000000000|...',
        None, NO_AZURE),
    Run("docs/install-azure.md", "kubectl create namespace vnet-ipam-system", None, NO_AZURE),
    Run("docs/install-azure.md", "kubectl -n vnet-ipam-system create secret generic ...", None,
        NO_AZURE),
    Run("docs/install-azure.md", "helm install vnet-ipam charts/vnet-ipam -n vnet-ipam-system "
        "--set azure.existingSecret=", "e2e/test_docs.py",
        "test_the_documented_workload_identity_installs_render"),
    Run("docs/install-azure.md", "kubectl get podsubnets", "scripts/demo.py",
        '"get", "podsubnets"'),
    Run("docs/install-azure.md", "kubectl get ipblocks -o wide", "scripts/demo.py",
        '"get", "ipblocks", "-o", "wide"'),
    Run("docs/install-azure.md", "kubectl get nodes", "e2e/realnodes.py", '"get", "nodes"'),
    # docs/kubectl-ipam.md
    Run("docs/kubectl-ipam.md", "cp build/kubectl-ipam/kubectl-ipam /usr/local/bin/kubectl-ipam",
        "e2e/test_kubectl_ipam.py", "test_installed_on_path_kubectl_runs_it_as_kubectl_ipam"),
    Run("docs/kubectl-ipam.md", "kubectl plugin list", "e2e/test_kubectl_ipam.py",
        '"plugin", "list"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam show", "e2e/test_kubectl_ipam.py", '"show"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam show --kubeconfig /nonexistent/kubeconfig",
        "e2e/test_kubectl_ipam.py", "/nonexistent/kubeconfig"),
    Run("docs/kubectl-ipam.md", "kubectl ipam show --context no-such-context",
        "e2e/test_kubectl_ipam.py", "no-such-context"),
    Run("docs/kubectl-ipam.md", "kubectl ipam show --node ...", "e2e/test_kubectl_ipam.py",
        '"show", "--node"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam show -o json", "e2e/test_kubectl_ipam.py",
        '"show", "-o", "json"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam check --podsubnet ...", "e2e/test_kubectl_ipam.py",
        '"check", "--podsubnet"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam why kipam-lonely -n default",
        "e2e/test_kubectl_ipam.py", '"why", "kipam-lonely", "-n", "default"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam release --from-report ... --dry-run",
        "e2e/test_agent.py", '"--dry-run"'),
    Run("docs/kubectl-ipam.md", "kubectl ipam release --from-report ... --timeout ...",
        "e2e/test_agent.py", '"release", "--from-report"'),
    # bench/README.md
    Run("bench/README.md", "cmake --build build --target ...", None, BENCH),
    Run("bench/README.md", "scripts/build-kube.sh && cmake --build build", None, BENCH),
    Run("bench/README.md", "python3 bench/...", None, BENCH),
    Run("bench/README.md", "./build/bench/...", None, BENCH),
]


def matches(run: Run, command: str) -> bool:
    """The command as written; an entry's "..." stands for any text, and an entry ending in "="
    for any value after it."""
    pattern = ".*".join(re.escape(part) for part in run.command.split("..."))
    if run.command.endswith("="):
        pattern += ".*"
    return re.fullmatch(pattern, command) is not None


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_documented_command_says_where_it_runs():
    unlisted, ambiguous = [], []
    for doc in documents():
        for line, command in commands(doc):
            runs = [r for r in WHERE_RUN if r.doc == rel(doc) and matches(r, command)]
            if not runs:
                unlisted.append(f"{rel(doc)}:{line}: {command}")
            elif len({(r.runner, r.evidence) for r in runs}) > 1:
                ambiguous.append(f"{rel(doc)}:{line}: {command}")
    assert not unlisted, "documented commands with no entry in WHERE_RUN:\n" + "\n".join(unlisted)
    assert not ambiguous, "documented commands with two different entries:\n" + "\n".join(
        ambiguous)


def test_every_entry_is_a_documented_command_and_its_runner_holds_it():
    shown = {rel(d): [c for _, c in commands(d)] for d in documents()}
    stale, missing = [], []
    for run in WHERE_RUN:
        if not any(matches(run, c) for c in shown.get(run.doc, [])):
            stale.append(f"{run.doc}: {run.command}")
        if run.runner is not None and run.evidence not in (ROOT / run.runner).read_text():
            missing.append(f"{run.runner} does not hold {run.evidence!r} ({run.doc}: {run.command})")
    assert not stale, "WHERE_RUN entries no document shows:\n" + "\n".join(stale)
    assert not missing, "\n".join(missing)


def test_code_is_in_fenced_blocks():
    """An indented code block (four spaces after a blank line, outside a fence and a list) would
    hide its commands from the two tests above: the documents fence every block."""
    indented = []
    for doc in documents():
        fenced, blank = False, True
        for number, line in enumerate(doc.read_text().split("\n"), 1):
            if re.match(r"\s*```", line):
                fenced = not fenced
            elif (not fenced and blank and line.startswith("    ")
                  and not line.lstrip().startswith(("-", "*", "|"))):
                indented.append(f"{rel(doc)}:{number}: {line.strip()}")
            blank = line.strip() == ""
    assert not indented, "indented code blocks (fence them):\n" + "\n".join(indented)


def test_the_documents_show_commands():
    """The extraction finds what the documents hold (so the two tests above cannot pass on an
    empty list)."""
    counts = {rel(d): len(commands(d)) for d in documents()}
    assert counts["README.md"] >= 15 and counts["docs/kubectl-ipam.md"] >= 10, counts


def readme_commands(start: str) -> list[str]:
    return [c for _, c in commands(ROOT / "README.md") if c.startswith(start)]


def test_the_readmes_mock_example_runs():
    """The README's "Azure VNET mock" block, on a free port instead of 8080: the mock serves the
    example topology and /mock/state shows its VNET, NICs and VMs."""
    (start,) = readme_commands("./build/azure-mock/azure-vnet-mock")
    (curl,) = readme_commands("curl -s http://127.0.0.1:8080/mock/state")
    port = free_port()
    argv = shlex.split(start.replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    argv[0] = str(built("azure-mock/azure-vnet-mock"))
    topology = json.loads((ROOT / argv[argv.index("--topology") + 1]).read_text())
    url = shlex.split(curl)[-1].replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def state() -> dict | None:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return json.load(r)
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                return None
        got = poll("the mock to answer /mock/state", state, 20, interval=0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = json.dumps(got)
    for nic in topology["networkInterfaces"]:
        assert nic["name"] in text and nic["primaryIP"] in text, nic
    for vm in topology["virtualMachines"]:
        assert vm["name"] in text, vm
    assert topology["virtualNetworks"][0]["name"] in text


@pytest.mark.parametrize("doc", ["charts/vnet-ipam/README.md", "docs/install-azure.md"])
def test_the_documented_workload_identity_installs_render(helm, doc):
    """The `helm install ... --set azure.existingSecret=... --set azure.workloadIdentity...` of
    each document, as `helm template` with the same flags (there is no Entra ID here to federate
    with): the controller's ServiceAccount carries the client id, its pods the workload identity
    label, and azure.json comes from the named Secret, which the chart does not create."""
    (command,) = [c for _, c in commands(ROOT / doc)
                  if c.startswith("helm install") and "azure.workloadIdentity.enabled=true" in c]
    client_id = "55555555-5555-5555-5555-555555555555"
    command = re.sub(r"clientId=(<[^>]*>|\"\$\(az [^)]*\)\")", f"clientId={client_id}", command)
    argv = shlex.split(command)
    assert argv[:4] == ["helm", "install", "vnet-ipam", "charts/vnet-ipam"], argv
    flags = [a for a in argv[4:] if a != "--create-namespace"]
    namespace = flags[flags.index("-n") + 1]
    flags = [a for i, a in enumerate(flags) if a != "-n" and (i == 0 or flags[i - 1] != "-n")]
    objects = render(helm, *flags, namespace=namespace)
    sa = one(objects, "ServiceAccount", "vnet-ipam-controller")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == client_id
    ctrl = one(objects, "Deployment", "vnet-ipam-controller")
    assert ctrl["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    volumes = {v["name"]: v for v in ctrl["spec"]["template"]["spec"]["volumes"]}
    assert volumes["azure-config"]["secret"]["secretName"] == "vnet-ipam-azure-json"
    assert "Secret" not in {o["kind"] for o in objects}


if __name__ == "__main__":
    pytest.main([__file__])
