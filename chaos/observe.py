"""Prometheus beside the stack: its configuration rendered with the stack's ports, and the
key series a report draws (the same queries as the Grafana dashboards' key panels)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from .waiting import poll

GRAFANA_DIR = Path(__file__).resolve().parent.parent / "grafana"
PROMETHEUS_CONFIG = GRAFANA_DIR / "prometheus" / "prometheus.yml"
# The port each scrape job's target listens on, by the stack's Ports field.
JOB_PORTS = {"shop": "shop", "payments": "payments", "inventory": "inventory",
             "toxiproxy": "toxiproxy", "harness": "harness"}


class PrometheusError(Exception):
    """Prometheus did not answer a query, or answered with an error."""


def render_config(ports: Any, scrape_interval: str, rules_dir: Path | None = None,
                  alertmanager: bool = False) -> str:
    """grafana/prometheus/prometheus.yml with this stack's ports, the rule files by their
    absolute paths (from `rules_dir` when given: a copy under test) and the scrape interval
    asked for; alerts go to the stack's Alertmanager when it runs one."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["scrape_timeout"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    rules = rules_dir or PROMETHEUS_CONFIG.parent / "rules"
    config["rule_files"] = [str(rules / Path(f).name) for f in config["rule_files"]]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]}
    for job in config["scrape_configs"]:
        port = getattr(ports, JOB_PORTS[job["job_name"]])
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True, slots=True)
class KeySeries:
    """One chart of the report: a title, a unit and its queries, each with a legend label."""

    key: str
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, the label whose value names a line)


RATE = "[10s]"
KEY_SERIES = (
    KeySeries("checkouts", "Checkouts per second by outcome (shop)", "checkouts / s",
              ((f"sum by (outcome) (rate(shop_checkout_outcomes_total{RATE}))", "outcome"),)),
    KeySeries("latency", "Checkout latency (shop)", "seconds", tuple(
        (f"histogram_quantile({q}, sum by (le) (rate(shop_checkout_duration_seconds_bucket"
         f"{RATE})))", f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99))),
    KeySeries("dependency_errors", "Dependency errors per second", "errors / s",
              ((f"sum by (dependency) (rate(shop_dependency_errors_total{RATE}))",
                "dependency"),)),
    KeySeries("breakers", "Circuit breakers (0 closed, 1 half-open, 2 open)", "state",
              (("max by (dependency) (shop_breaker_state)", "dependency"),)),
    KeySeries("revenue", "Revenue per second", "$ / s",
              ((f"sum(rate(shop_revenue_confirmed_cents_total{RATE})) / 100", "confirmed"),
               (f"sum(rate(shop_revenue_at_risk_cents_total{RATE})) / 100", "at risk"))),
)


def query_range(url: str, expr: str, start: float, end: float, step: float = 2.0
                ) -> list[dict[str, Any]]:
    """The matrix Prometheus returns for a range query."""
    try:
        response = httpx.get(f"{url}/api/v1/query_range", timeout=10, params={
            "query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise PrometheusError(f"{url} did not answer ({type(exc).__name__})") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"{expr!r}: {body.get('error', 'no error given')}")
    return list(body["data"]["result"])


def parse_time(stamp: str) -> float:
    """Epoch seconds of a Prometheus API time (RFC 3339, up to nanoseconds)."""
    from datetime import datetime

    micro = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    return datetime.fromisoformat(micro).timestamp()


def wait_for_scrape(url: str, job: str, after: float, timeout: float = 10.0) -> bool:
    """Wait until Prometheus has scraped the job's target at or after `after` (epoch s);
    False when it did not within the timeout."""
    def scraped() -> bool:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=2).json()["data"]
        return any(parse_time(t["lastScrape"]) >= after and t.get("health") == "up"
                   for t in targets.get("activeTargets", [])
                   if t.get("labels", {}).get("job") == job)

    return bool(poll(scraped, timeout, every=0.2,
                     ignore=(httpx.HTTPError, ValueError, KeyError)))


def query_key_series(url: str, start: float, end: float | None) -> dict[str, Any]:
    """Per key chart, its lines: {key: {"title", "unit", "lines": {label: [[t, v], ...]}}}."""
    import time

    stop = end or time.time()
    out: dict[str, Any] = {}
    for chart in KEY_SERIES:
        lines: dict[str, list[list[float]]] = {}
        for expr, label in chart.queries:
            for series in query_range(url, expr, start, stop):
                name = series["metric"].get(label, label)
                lines[name] = [[float(t), float(v)] for t, v in series["values"]
                               if v not in ("NaN", "+Inf", "-Inf")]
        out[chart.key] = {"title": chart.title, "unit": chart.unit, "lines": lines}
    return out
