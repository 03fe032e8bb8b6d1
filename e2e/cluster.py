"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback for the e2e tests.

The binaries come from scripts/build-kube.sh (built once per machine from the Go
module proxy and cached outside the checkout). Everything listens on 127.0.0.1
on free ports; certificates are generated with the openssl CLI; every process is
started here and stopped here by its PID.

Run by hand for a throwaway cluster:  python3 e2e/cluster.py
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from polling import poll, wait_http_ok

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build-kube.sh"

SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
SA_ISSUER = "https://kubernetes.default.svc"
READY_TIMEOUT = 90.0


def build_binaries() -> Path:
    """Directory holding etcd, the Kubernetes binaries and kubectl (scripts/build-kube.sh).

    $VNETIPAM_KUBE_BIN wins when set; otherwise scripts/build-kube.sh, which
    returns at once when the binaries are cached (and builds them if not)."""
    if os.environ.get("VNETIPAM_KUBE_BIN"):
        return Path(os.environ["VNETIPAM_KUBE_BIN"])
    out = subprocess.run(
        [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process dies without cleaning
    # up (SIGKILL, crash), the kernel kills the child too. SIGKILL, because a
    # kube-apiserver whose etcd is going away at the same time hangs in its
    # graceful shutdown; the data is throwaway anyway.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _openssl(*args: str) -> None:
    res = subprocess.run(
        ["openssl", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{res.stdout}")


class Process:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None):
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "ab") as f:
            f.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            f.flush()
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        self.pid = self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def check_running(self) -> None:
        """Raises, with the log's tail, when the process has exited."""
        if not self.running():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; "
                               f"log {self.log}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """etcd + kube-apiserver. Attributes: kubeconfig, server, binaries, workdir."""

    def __init__(self, workdir: Path, binaries: Path | None = None):
        self.workdir = Path(workdir)
        self.binaries = Path(binaries) if binaries else build_binaries()
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.etcd: Process | None = None
        self.apiserver: Process | None = None
        self._extra: list[Process] = []
        self._ssl: ssl.SSLContext | None = None

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> "Cluster":
        try:
            self._make_pki()
            self._write_kubeconfig(self.kubeconfig, "admin")
            self.etcd = self._start_etcd()
            self.apiserver = self._start_apiserver()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for p in reversed(self._extra):
            p.stop()
        self._extra.clear()
        if self.apiserver:
            self.apiserver.stop()
        if self.etcd:
            self.etcd.stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port, keeping etcd."""
        assert self.apiserver is not None
        self.apiserver.stop()
        self.apiserver = self._start_apiserver()
        self.wait_ready()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start_controller_manager(self, *args: str, timeout: float = READY_TIMEOUT) -> Process:
        """Start kube-controller-manager (as system:kube-controller-manager) with
        extra flags, e.g. "--controllers=nodeipam", "--allocate-node-cidrs",
        "--cluster-cidr=...". Waits for its /healthz; stopped by stop()."""
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        if not kubeconfig.exists():
            self._write_kubeconfig(kubeconfig, "controller-manager")
        port = free_port()
        p = self.pki
        n = len(self._extra)
        proc = Process("kube-controller-manager", [
            str(self.binaries / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            # The apiserver's serving certificate is valid for 127.0.0.1 too.
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--service-account-private-key-file={p / 'sa.key'}",
            f"--root-ca-file={p / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # As in real clusters: each controller acts as its own service account
            # (kube-system/node-controller, ...), bound by the bootstrap RBAC roles.
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
            *args,
        ], self.workdir / f"kube-controller-manager-{n}.log")
        self._extra.append(proc)
        wait_http_ok("kube-controller-manager /healthz", f"https://127.0.0.1:{port}/healthz",
                     timeout, alive=proc.check_running,
                     context=ssl.create_default_context(cafile=str(p / "ca.crt")),
                     describe=lambda: f"log {proc.log}:\n{proc.tail()}")
        return proc

    def stop_controller_manager(self, proc: Process) -> None:
        proc.stop()
        if proc in self._extra:
            self._extra.remove(proc)

    # ---- helpers for tests -----------------------------------------------

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; returns the CompletedProcess (text)."""
        res = subprocess.run(
            [str(self.binaries / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, timeout=timeout,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {res.returncode}\n"
                f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """GET a path on the API server as admin; returns (status, body)."""
        req = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll /readyz until it answers 200 ok; fail early if a process died."""
        last = "no answer"

        def ready() -> bool:
            nonlocal last
            for p in (self.etcd, self.apiserver):
                if p is not None:
                    p.check_running()
            try:
                status, body = self.get("/readyz", timeout=2.0)
            except OSError as e:  # not listening yet (ssl.SSLError is an OSError)
                last = str(e)
                return False
            last = f"HTTP {status}: {body.decode(errors='replace')[-400:]}"
            return status == 200

        poll("kube-apiserver /readyz", ready, timeout,
             describe=lambda: f"{last}; log {self.apiserver.log}:\n{self.apiserver.tail()}")

    # ---- certificates and kubeconfigs --------------------------------------

    def _make_pki(self) -> None:
        d = self.pki
        d.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        _openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
                 "-days", "7", "-subj", "/CN=vnet-ipam-e2e-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        sans = f"IP:127.0.0.1,IP:{SERVICE_IP},DNS:localhost,DNS:kubernetes," \
               "DNS:kubernetes.default,DNS:kubernetes.default.svc"
        self._leaf("apiserver", "/CN=kube-apiserver", "serverAuth", sans)
        self._leaf("admin", "/O=system:masters/CN=vnet-ipam-admin", "clientAuth")
        self._leaf("controller-manager", "/CN=system:kube-controller-manager", "clientAuth")
        # Service-account token signing key pair.
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(d / "sa.key"))
        _openssl("pkey", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))

    def _leaf(self, name: str, subj: str, usage: str, sans: str | None = None) -> None:
        d = self.pki
        args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"),
                "-days", "7", "-subj", subj,
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-addext", "keyUsage=critical,digitalSignature",
                "-addext", f"extendedKeyUsage={usage}"]
        if sans:
            args += ["-addext", f"subjectAltName={sans}"]
        _openssl(*args)

    def _write_kubeconfig(self, path: Path, user: str, server: str | None = None) -> None:
        """A kubeconfig for the client certificate pki/<user>.crt; `server` defaults to the
        address the tests use (another for a process in another network namespace)."""
        # JSON is YAML: no dependency needed.
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": {
                "server": server or self.server,
                "certificate-authority": str(self.pki / "ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate": str(self.pki / f"{user}.crt"),
                "client-key": str(self.pki / f"{user}.key")}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
            "current-context": "e2e",
        }
        path.write_text(json.dumps(cfg, indent=2) + "\n")
        path.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            self._ssl = ctx
        return self._ssl

    # ---- processes -----------------------------------------------------------

    def _process(self, name: str, argv: list[str]) -> Process:
        """A control-plane process logging to <workdir>/<name>.log; where it runs is a subclass's
        to change (realnodes.RealCluster runs it inside the control-plane namespace)."""
        return Process(name, argv, self.workdir / f"{name}.log")

    def _start_etcd(self) -> Process:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return self._process("etcd", [
            str(self.binaries / "etcd"),
            "--name=e2e",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # throwaway data; keeps it fast on a busy disk
            "--log-level=warn",
        ])

    def _start_apiserver(self) -> Process:
        p = self.pki
        return self._process("kube-apiserver", [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={self.apiserver_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconcilers refuse a loopback advertise address; nothing
            # in these tests reaches the API server through the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-account-issuer={SA_ISSUER}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No controller-manager creates `default` service accounts.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=1",
        ])


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vnet-ipam-kube-"))
    t0 = time.monotonic()
    with Cluster(workdir) as c:
        print(f"ready in {time.monotonic() - t0:.1f}s: {c.server}")
        print(f"export KUBECONFIG={c.kubeconfig}")
        print("Ctrl-C stops it")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
