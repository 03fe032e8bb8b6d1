"""The Prometheus harness (e2e/prometheus.py) against a real Prometheus scraping itself.

Proves the harness before the product's endpoints exist: the server starts on a free loopback
port with a generated config, its target goes up, instant queries return what its own /metrics
says, `promtool check metrics` passes on that text and fails on text that breaks its rules, and
the process is gone after stop().
"""

from __future__ import annotations

import os

import pytest

import prometheus

BAD_EXPOSITION = """\
# HELP vnetipam_demo_allocations Allocations.
# TYPE vnetipam_demo_allocations counter
vnetipam_demo_allocations 3
"""


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    if not os.access(prometheus.PROMETHEUS, os.X_OK):
        pytest.fail(f"{prometheus.PROMETHEUS} is missing: run scripts/install-deps.sh")
    server = prometheus.PrometheusServer(tmp_path_factory.mktemp("prometheus"), {},
                                         scrape_self=True)
    try:
        yield server
    finally:
        code = server.stop()
    assert code == 0, server.log()
    assert not server.pid_file.exists()
    assert not os.path.exists(f"/proc/{server.pid}")  # stopped and reaped


def test_scrapes_itself_and_answers_queries(prom):
    assert prom.url.startswith("http://127.0.0.1:") and prom.port != 9090
    prom.wait_target_up("prometheus")
    assert prom.wait_value('up{job="prometheus"}', lambda v: v == 1) == 1
    # A gauge read through the query API equals the same gauge on the scraped endpoint.
    assert prom.wait_value("prometheus_config_last_reload_successful") == 1
    text = prometheus.fetch_text(prom.url + "/metrics")
    assert "prometheus_config_last_reload_successful 1" in text
    # More than one sample: query() keeps every series with its labels.
    samples = prom.query('count by (job) ({job="prometheus"})')
    assert samples and samples[0]["metric"] == {"job": "prometheus"} and samples[0]["value"] > 50


def test_query_errors_are_reported(prom):
    with pytest.raises(prometheus.PrometheusError, match="bad_data"):
        prom.query("sum(")


def test_promtool_passes_a_real_endpoint_and_fails_a_bad_one(prom):
    ok = prometheus.promtool_check_metrics(prometheus.fetch_text(prom.url + "/metrics"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = prometheus.promtool_check_metrics(BAD_EXPOSITION)
    assert bad.returncode != 0
    assert "counter metrics should have \"_total\" suffix" in bad.stdout + bad.stderr
