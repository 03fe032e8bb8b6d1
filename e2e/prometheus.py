"""A real Prometheus server (Debian's `prometheus` package) for the e2e tests and the demo.

    with PrometheusServer(workdir, {"controller": ["127.0.0.1:9100"]}) as prom:
        prom.wait_target_up("controller")
        value = prom.wait_value('sum(vnetipam_pool_blocks)', lambda v: v > 0)

It listens on a free loopback port, keeps its storage in workdir, scrapes the given targets every
second, and is stopped by its PID. promtool_check_metrics() runs `promtool check metrics` on an
endpoint's exposition text. Nothing here uses the packaged system service or port 9090.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from polling import poll, wait_http_ok

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_config(targets: dict[str, list[str]], interval: str = "1s") -> dict:
    """A prometheus.yml (as a dict; JSON is YAML) with one job per entry of targets."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "scrape_timeout": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(addrs)}]}
            for job, addrs in targets.items()
        ],
    }


def fetch_text(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` on exposition text; returncode 0 means it passes (lint
    findings such as a counter without _total make it non-zero, with the findings in stdout)."""
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)


class PrometheusError(AssertionError):
    pass


def api_get(base_url: str, path: str, **params: str) -> object:
    """GET <base_url>/api/v1/<path> of any Prometheus; `data` of a success answer, raises on an
    error answer."""
    url = f"{base_url}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
    except urllib.error.HTTPError as e:
        doc = json.loads(e.read() or b"{}")
    if doc.get("status") != "success":
        raise PrometheusError(f"{path} {params}: {doc.get('errorType')}: {doc.get('error')}")
    return doc["data"]


def query(base_url: str, expr: str) -> list[dict]:
    """Instant query against the Prometheus at base_url: [{"metric": {...}, "value": float}]."""
    data = api_get(base_url, "query", query=expr)
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": float(data["result"][1])}]
    if data["resultType"] != "vector":
        raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")
    return [{"metric": s["metric"], "value": float(s["value"][1])} for s in data["result"]]


class PrometheusServer:
    """One Prometheus process. Attributes: url, port, pid, workdir, config_file, log_file.

    detach=True starts it in its own session, not tied to this process (the demo leaves it
    running and stops it later by the PID written to workdir/prometheus.pid).

    argv_prefix runs it through a wrapper that execs it, e.g. `nsenter --net=<netns path>` to
    scrape targets only reachable from that network namespace; it then listens on that
    namespace's 127.0.0.1:port, and `url` must say where this process reaches it (a
    netlab.Forwarder to that port)."""

    def __init__(self, workdir: Path, targets: dict[str, list[str]], *, interval: str = "1s",
                 port: int | None = None, detach: bool = False, scrape_self: bool = False,
                 argv_prefix: list[str] = (), url: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.targets = dict(targets)
        if scrape_self:  # job "prometheus": its own /metrics, handy to prove the harness
            self.targets["prometheus"] = [f"127.0.0.1:{self.port}"]
        self.url = url or f"http://127.0.0.1:{self.port}"
        self.config_file = self.workdir / "prometheus.yml"
        self.log_file = self.workdir / "prometheus.log"
        self.pid_file = self.workdir / "prometheus.pid"
        self.config_file.write_text(json.dumps(scrape_config(self.targets, interval), indent=2) + "\n")
        argv = [*argv_prefix, PROMETHEUS, f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d", "--log.level=warn"]
        if not os.access(PROMETHEUS, os.X_OK):
            raise PrometheusError(f"{PROMETHEUS} is missing: run scripts/install-deps.sh")
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=detach)
        self.pid = self.proc.pid
        self.pid_file.write_text(f"{self.pid}\n")
        try:
            self._wait_ready(30)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        def alive() -> None:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
        wait_http_ok(f"prometheus ready at {self.url}", self.url + "/-/ready", timeout,
                     alive=alive, describe=self.log)

    def log(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ---- HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> object:
        """GET /api/v1/<path>; returns `data` of a success answer, raises on an error answer."""
        return api_get(self.url, path, **params)

    def query(self, expr: str) -> list[dict]:
        """Instant query: the vector's samples as [{"metric": {...}, "value": float}]."""
        return query(self.url, expr)

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, None when it returns nothing."""
        samples = self.query(expr)
        if not samples:
            return None
        if len(samples) > 1:
            raise PrometheusError(f"{expr}: {len(samples)} samples, expected one: {samples}")
        return samples[0]["value"]

    def targets_state(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_target_up(self, job: str, count: int | None = None, deadline_s: float = 30) -> None:
        """Until every target of job (count of them, default all configured) is up."""
        want = count if count is not None else len(self.targets[job])
        mine: list[dict] = []

        def enough_up() -> bool:
            nonlocal mine
            mine = [t for t in self.targets_state() if t["labels"].get("job") == job]
            return len([t for t in mine if t["health"] == "up"]) >= want

        poll(f"{want} targets of job {job} up", enough_up, deadline_s, interval=0.2,
             describe=lambda: "; ".join(f"{t['scrapeUrl']} {t['health']} {t.get('lastError', '')}"
                                        for t in mine))

    def wait_value(self, expr: str, accept: Callable[[float], bool] = lambda v: True,
                   deadline_s: float = 30) -> float:
        """Polls an instant query until it has a single value that `accept` takes; returns it."""
        last: float | None = None

        def accepted() -> bool:
            nonlocal last
            last = self.value(expr)
            return last is not None and accept(last)

        poll(f"{expr} to have an accepted value", accepted, deadline_s, interval=0.2,
             describe=lambda: f"last value {last}")
        return last

    def wait_query(self, expr: str, accept: Callable[[list[dict]], bool],
                   deadline_s: float = 30) -> list[dict]:
        """Polls an instant query until `accept` takes its samples; returns them."""
        samples: list[dict] = []

        def accepted() -> bool:
            nonlocal samples
            samples = self.query(expr)
            return accept(samples)

        poll(f"{expr} to have accepted samples", accepted, deadline_s, interval=0.2,
             describe=lambda: f"last samples {samples}")
        return samples

    # ---- lifecycle --------------------------------------------------------------------------

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM by PID, SIGKILL after timeout; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pid_file.unlink(missing_ok=True)
        return self.proc.returncode

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
