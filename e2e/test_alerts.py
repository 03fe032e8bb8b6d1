"""The chart's alert rules under the real promtool.

The PrometheusRule that `helm template` renders (default values) is turned into a Prometheus rule
file; `promtool check rules` must accept it, and `promtool test rules` runs the cases of
e2e/alerts/vnet-ipam.test.yaml against it: each alert fires on the series it is meant for, with
the labels and summary it promises, and stays quiet on the near misses. A new alert without a
firing case fails here, and so does a rule file promtool refuses (it is asked to refuse one).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_helm import CHART, RELEASE, helm, one, render  # noqa: F401 (helm is a fixture)

CASES = Path(__file__).resolve().parent / "alerts" / "vnet-ipam.test.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
NAMESPACE = "vnet-ipam-system"  # the namespace the cases' series name


@pytest.fixture(scope="module")
def groups(helm):
    objects = render(helm, "--set", "prometheusRule.enabled=true", namespace=NAMESPACE)
    return one(objects, "PrometheusRule", RELEASE)["spec"]["groups"]


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)


def write_rules(path: Path, groups: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_promtool_accepts_the_rendered_rules(groups, tmp_path):
    checked = promtool("check", "rules", str(write_rules(tmp_path / "rules.yaml", groups)))
    assert checked.returncode == 0, checked.stdout
    assert "SUCCESS" in checked.stdout


def test_promtool_refuses_a_broken_rule(groups, tmp_path):
    """The check above can fail: the same rules with one expression broken are refused."""
    broken = copy.deepcopy(groups)
    broken[0]["rules"][0]["expr"] = "max by (podsubnet) (vnetipam_podsubnet_blocks"
    checked = promtool("check", "rules", str(write_rules(tmp_path / "rules.yaml", broken)))
    assert checked.returncode != 0
    assert "parse error" in checked.stdout


def test_every_alert_has_a_firing_case(groups):
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    cases = yaml.safe_load(CASES.read_text())["tests"]
    fired = {t["alertname"] for c in cases for t in c.get("alert_rule_test", [])
             if t.get("exp_alerts")}
    assert "VnetIpamPoolExhaustionForecast" in alerts
    assert alerts - fired == set(), f"alerts without a firing test case: {sorted(alerts - fired)}"
    assert fired - alerts == set(), f"test cases for alerts the chart lacks: {sorted(fired - alerts)}"


def run_cases(groups: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    # The descriptions are prose checked by `promtool check rules`; the cases compare the rest.
    trimmed = copy.deepcopy(groups)
    for g in trimmed:
        for r in g["rules"]:
            r.get("annotations", {}).pop("description", None)
    rules = write_rules(tmp_path / "rules.yaml", trimmed)
    cases = yaml.safe_load(CASES.read_text())
    cases["rule_files"] = [str(rules)]
    test_file = tmp_path / "cases.yaml"
    test_file.write_text(yaml.safe_dump(cases, sort_keys=False))
    return promtool("test", "rules", str(test_file))


def test_alert_cases_pass_under_promtool(groups, tmp_path):
    tested = run_cases(groups, tmp_path)
    assert tested.returncode == 0, tested.stdout
    assert "SUCCESS" in tested.stdout


def test_alert_cases_catch_a_changed_threshold(groups, tmp_path):
    """The cases really pin the rules: the pool alert at a lower threshold fires on the half-used
    pool, which its case says must stay quiet."""
    loosened = copy.deepcopy(groups)
    for g in loosened:
        for r in g["rules"]:
            if r.get("alert") == "VnetIpamPoolNearlyExhausted":
                r["expr"] = r["expr"].replace("> 0.9", "> 0.4")
    tested = run_cases(loosened, tmp_path)
    assert tested.returncode != 0
    assert "VnetIpamPoolNearlyExhausted" in tested.stdout and 'podsubnet="half"' in tested.stdout


def test_alert_cases_catch_ignored_foreign_addresses(groups, tmp_path):
    """The cases pin the foreign addresses' part: rules that count none (the PodSubnet's blocks
    alone, as before) leave the crowded pool quiet and the shared pools' forecast far off."""
    blind = copy.deepcopy(groups)
    for g in blind:
        for r in g["rules"]:
            if r.get("record") == "vnetipam:podsubnet_foreign_blocks":
                r["expr"] = "max by (podsubnet) (vnetipam_podsubnet_foreign_addresses) * 0"
    tested = run_cases(blind, tmp_path)
    assert tested.returncode != 0
    assert 'podsubnet="crowded"' in tested.stdout
    assert 'podsubnet="slow-shared"' in tested.stdout


def test_alert_cases_catch_free_ips_summed_across_families(groups, tmp_path):
    """The cases pin the per-family count: the node alert summing free addresses across families
    (as it did before dual stack) stays quiet on the dual-stack nodes out of one family, which
    refuse every pod."""
    summed = copy.deepcopy(groups)
    for g in summed:
        for r in g["rules"]:
            if r.get("alert") == "VnetIpamNodeOutOfIPs":
                assert "sum by (node, family) (vnetipam_agent_block_free_ips)" in r["expr"]
                r["expr"] = r["expr"].replace("sum by (node, family) (vnetipam_agent_block_free_ips)",
                                              "sum by (node) (vnetipam_agent_block_free_ips)")
    tested = run_cases(summed, tmp_path)
    assert tested.returncode != 0
    assert 'node="d1"' in tested.stdout and 'node="d2"' in tested.stdout


def test_dashboard_queries_only_recorded_rules_the_chart_records(groups):
    """A recording rule the dashboard plots (vnetipam:...) is one the PrometheusRule records, so
    a renamed rule cannot silently blank a panel."""
    dashboard = json.loads((CHART / "dashboards" / "vnet-ipam.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for q in queries for m in re.findall(r"vnetipam:[a-z0-9_]+", q)}
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert "vnetipam:podsubnet_foreign_blocks" in used
    assert used - recorded == set(), f"plotted but not recorded: {sorted(used - recorded)}"
