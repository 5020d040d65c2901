"""The Grafana side without Grafana: provisioning and dashboards have the shape Grafana
loads, every query parses (promtool), the rules pass their own promtool tests, and the
Prometheus config renders with the stack's ports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaos.observe import KEY_SERIES, render_config
from chaos.stack import PROJECT_ROOT, Ports

GRAFANA = PROJECT_ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
UID = DATASOURCE["datasources"][0]["uid"]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool: run `make setup`")


def test_the_provisioning_names_one_prometheus_datasource_and_a_file_provider() -> None:
    (source,) = DATASOURCE["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/checkout-chaos.yml")
                              .read_text())["providers"][0]
    assert provider["type"] == "file"
    # Grafana expands $VAR / ${VAR} in provisioning (no defaults): compose sets both.
    assert source["url"] == "${CC_PROMETHEUS_URL}"
    assert provider["options"]["path"] == "${CC_DASHBOARDS_DIR}"
    compose = yaml.safe_load((GRAFANA / "docker-compose.yml").read_text())["services"]
    env = compose["grafana"]["environment"]
    assert env["CC_PROMETHEUS_URL"] == "http://127.0.0.1:9090"
    mounted = {v.split(":")[1] for v in compose["grafana"]["volumes"]}
    assert env["CC_DASHBOARDS_DIR"] in mounted and "/etc/grafana/provisioning" in mounted


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    result = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_each_dashboard_has_the_shape_grafana_loads(path: Path) -> None:
    board = json.loads(path.read_text())
    assert re.fullmatch(r"[a-z0-9-]{8,40}", board["uid"]) and board["title"]
    names = {v["name"] for v in board["templating"]["list"]}
    assert names == {"experiment", "dependency"}
    faults, alerts = board["annotations"]["list"]
    assert "chaos_fault_active" in faults["expr"] and faults["datasource"]["uid"] == UID
    # Alert state beside the fault windows, titled by the alert and what it names.
    assert 'ALERTS{alertstate="firing"}' in alerts["expr"] and alerts["datasource"]["uid"] == UID
    assert alerts["titleFormat"] == "{{alertname}} {{dependency}}"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 7
    ids = [p["id"] for p in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        assert panel["title"] and panel["datasource"] == {"type": "prometheus", "uid": UID}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]
            assert target["datasource"]["uid"] == UID


def test_the_dashboards_cover_what_the_issue_asks_for() -> None:
    text = " ".join(path.read_text() for path in DASHBOARDS)
    for metric in ("shop_checkout_outcomes_total", "chaos_load_responses_total",
                   "shop_checkout_duration_seconds_bucket", "shop_revenue_at_risk_cents_total",
                   "shop_revenue_confirmed_cents_total", "chaos_experiment_phase",
                   "shop_dependency_calls_total", "shop_dependency_errors_total",
                   "shop_dependency_call_duration_seconds_bucket", "shop_breaker_state",
                   "toxiproxy_proxy_sent_bytes_total", "chaos_fault_active",
                   "shop_dependency_state", "chaos_time_to_communicate_seconds"):
        assert metric in text, metric


def all_queries() -> list[str]:
    queries = [t["expr"] for path in DASHBOARDS for p in json.loads(path.read_text())["panels"]
               for t in p.get("targets", [])]
    queries += [expr for chart in KEY_SERIES for expr, _ in chart.queries]
    return [q.replace("$__rate_interval", "1m").replace("$experiment", ".*")
            .replace("$dependency", ".*") for q in queries]


@needs_promtool
def test_every_query_parses(tmp_path: Path) -> None:
    # promtool parses each expression of a rules file: one recording rule per query.
    rules = {"groups": [{"name": "queries", "rules": [
        {"record": f"query_{i}", "expr": q} for i, q in enumerate(all_queries())]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [
        {"record": "query_0", "expr": "sum by (le (rate(x[1m]))"}]}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0


@needs_promtool
def test_the_rules_pass_their_promtool_tests_and_the_config_checks() -> None:
    prom = GRAFANA / "prometheus"
    for args in (["check", "rules", *map(str, sorted((prom / "rules").glob("*.yml")))],
                 ["test", "rules", str(prom / "tests" / "rules_test.yml")],
                 ["check", "config", str(prom / "prometheus.yml")]):
        result = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60,
                                cwd=prom)
        assert result.returncode == 0, " ".join(args) + "\n" + result.stdout + result.stderr


def test_the_config_renders_with_the_stack_ports() -> None:
    ports = Ports(shop=18000, payments=18111, inventory=18112, toxiproxy=18474, harness=19108)
    config = yaml.safe_load(render_config(ports, "1s"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    assert targets == {"shop": ["127.0.0.1:18000"], "payments": ["127.0.0.1:18111"],
                       "inventory": ["127.0.0.1:18112"], "toxiproxy": ["127.0.0.1:18474"],
                       "harness": ["127.0.0.1:19108"]}
    assert config["global"]["scrape_interval"] == "1s"
    assert all(Path(f).is_absolute() and Path(f).exists() for f in config["rule_files"])


def test_the_docs_list_every_panel_and_say_how_each_plotted_series_is_held() -> None:
    """docs/dashboards.md names every panel; docs/metrics.md says, for every series a panel
    plots, which check reconciles it with the load or why none does."""
    dashboards_doc = (PROJECT_ROOT / "docs" / "dashboards.md").read_text()
    metrics_doc = (PROJECT_ROOT / "docs" / "metrics.md").read_text()
    held = metrics_doc.split("## Every plotted series, and the check that holds it", 1)[1]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert f"| {panel['title']} (" in dashboards_doc, panel["title"]
            for target in panel["targets"]:
                for metric in re.findall(r"\b((?:shop|toxiproxy|payments|inventory)_[a-z_]+"
                                         r"|ALERTS|chaos_[a-z_]+)", target["expr"]):
                    family = re.sub(r"_(bucket|count|sum)$", "", metric)
                    assert family in held or metric.startswith("chaos_"), (panel["title"],
                                                                            metric)
