"""Prometheus scraping the real stack during real experiments: every dashboard panel shows
something, the ungraceful-answers alert tells a fragile shop from a resilient one, and the
HTML report draws Prometheus' series with the fault windows (screenshotted in Chromium)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaos.observe import parse_time, query_range
from chaos.stack import PROJECT_ROOT, Stack
from chaos.waiting import eventually
from tests.e2e.test_experiments import CLI, HERE, assert_clean

pytestmark = pytest.mark.e2e
DASHBOARDS = sorted((PROJECT_ROOT / "grafana" / "dashboards").glob("*.json"))


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[str]:
    """The stack's Prometheus, scraping every second; stopped after the module."""
    stack.observe(scrape_interval="1s")
    url = stack.prometheus_url()
    assert url is not None
    try:
        yield url
    finally:
        stack.stop_prometheus()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)


def window(journal_path: Path) -> tuple[float, float]:
    journal = json.loads(journal_path.read_text())
    return journal["started"], journal["ended"]


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL) for every target and the fault annotation, with Grafana's
    variables as Grafana would fill them for "All"."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        exprs = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
        exprs += [(a["name"], a["expr"]) for a in board["annotations"]["list"]]
        for title, expr in exprs:
            filled = (expr.replace("$__rate_interval", "15s").replace("$experiment", ".*")
                      .replace("$dependency", ".*"))
            out.append((path.stem, title, filled))
    return out


@pytest.mark.browser
def test_every_panel_shows_data_and_the_report_draws_prometheus(
    stack: Stack, prometheus: str, tmp_path: Path, cli_env: dict[str, str],
    output_dir: Path, page: Any,
) -> None:
    result = run_cli("run", str(HERE / "observed.yaml"), "--out", str(tmp_path),
                     env=cli_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    start, end = window(tmp_path / "journal.json")
    empty = []
    queries = panel_queries()
    assert len(queries) >= 40
    # Within the run itself: a dashboard shows the run it is about while it goes on, not
    # figures that appear once the harness has stopped.
    for board, title, expr in queries:
        if not query_range(prometheus, expr, start, end, step=1.0):
            empty.append(f"{board} / {title}: {expr}")
    assert not empty, "panels that show nothing:\n" + "\n".join(empty)
    journal = json.loads((tmp_path / "journal.json").read_text())
    paged = journal["paging"]["dependencies"]["inventory"]
    assert 0 < paged["time_to_page"] <= 20 and 0 < paged["time_to_resolve"] <= 25, paged
    assert journal["paging"]["unrelated"] == []
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="time_to_page.inventory"' in junit and 'name="time_to_resolve.inventory"' in junit

    report = (tmp_path / "report.html").read_text()
    assert report.count("data-source='prometheus'") == 5
    assert report.count("data-source='load'") == 3
    assert report.count("<img ") == 8
    assert "data-fault-windows='0'" not in report
    assert "inventory blackholed" in report.split("fault windows (red):", 1)[1]
    told = report.split("<table id='told'>", 1)[1].split("</table>", 1)[0]
    assert all(s in told for s in ("status API", "HTML status page", "banner",
                                   "page (Alertmanager)")), told
    series = journal["prometheus"]
    assert set(series["breakers"]["lines"]) >= {"payments", "inventory", "database", "cache"}
    errors = series["dependency_errors"]["lines"]["inventory"]
    assert max(v for _, v in errors) > 0  # the fault shows in the shop's own series
    screenshot(page, tmp_path / "report.html", output_dir / "report-with-prometheus.png")
    assert_clean(stack)


def screenshot(page: Any, report: Path, to: Path) -> None:
    """Open the report in headless Chromium and keep a picture of its charts."""
    page.goto(report.as_uri())
    figures = page.locator("figure.chart")
    assert figures.count() == 8
    assert all(figures.nth(i).locator("img").evaluate("i => i.naturalWidth > 0")
               for i in range(figures.count()))
    page.screenshot(path=str(to), full_page=True)
    assert to.stat().st_size > 50_000


def alerts_during(url: str, name: str, start: float, end: float) -> list[dict[str, str]]:
    """Every firing instance of an alert in the window, from Prometheus' ALERTS series."""
    series = query_range(url, f'ALERTS{{alertname="{name}", alertstate="firing"}}',
                         start, end, step=1.0)
    return [s["metric"] for s in series]


def test_the_ungraceful_alert_fires_for_a_fragile_shop_only(
    stack: Stack, prometheus: str, tmp_path: Path, cli_env: dict[str, str],
) -> None:
    # Resilient first: the alert looks back one minute, so the fragile run's answers must
    # not be inside the resilient run's window.
    runs = {}
    for shop in ("resilient", "fragile"):
        out = tmp_path / shop
        result = run_cli("gate", "--name", "postgres-hard-down", "--time-scale", "0.2",
                         "--out", str(out), "--shop", shop, env=cli_env)
        assert result.returncode == (0 if shop == "resilient" else 1), result.stdout[-2000:]
        runs[shop] = window(out / "postgres-hard-down" / "journal.json")
    wait_for_rules(prometheus, runs["fragile"][1])
    assert alerts_during(prometheus, "UngracefulAnswers", *runs["resilient"]) == []
    fired = alerts_during(prometheus, "UngracefulAnswers", *runs["fragile"])
    assert fired, "the fragile shop's ungraceful answers did not fire UngracefulAnswers"
    assert any(a.get("experiment") == "postgres-hard-down" for a in fired)
    assert_clean(stack)


def wait_for_rules(url: str, after: float, timeout: float = 15.0) -> None:
    """Until every rule group was evaluated after `after`."""
    def evaluated() -> bool:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=2).json()["data"]["groups"]
        stamps = [g["lastEvaluation"] for g in groups]
        return bool(stamps) and all(parse_time(s) >= after for s in stamps)

    eventually(evaluated, timeout, "Prometheus evaluates its rules after the run", every=0.2)



def test_prometheus_has_no_lifecycle_api(prometheus: str) -> None:
    """Nobody on the machine can stop or reload the Prometheus the verdicts are read from."""
    for action in ("quit", "reload"):
        answer = httpx.post(f"{prometheus}/-/{action}", timeout=5)
        assert answer.status_code == 403 and "Lifecycle API is not enabled" in answer.text


def test_an_alert_rule_that_waits_too_long_fails_time_to_page(
    stack: Stack, prometheus: str, tmp_path: Path, cli_env: dict[str, str],
) -> None:
    """The mutant alert-waits-too-long, on the real Prometheus and Alertmanager: the same
    experiment that pages within 20 s on the project's rules fails on "the inventory alert
    pages" when its rule waits five minutes."""
    from chaos.mutants import apply, copy_shop, load_mutants

    mutant = next(m for m in load_mutants() if m.name == "alert-waits-too-long")
    copy = copy_shop(tmp_path / "copy", None)
    apply(mutant, copy / "demo_shop", copy / "rules")
    stack.stop_prometheus()
    try:
        stack.observe(scrape_interval="1s", rules_dir=copy / "rules")
        result = run_cli("run", str(HERE / "observed.yaml"), "--out", str(tmp_path / "out"),
                         env=cli_env)
    finally:
        stack.stop_prometheus()
        stack.observe(scrape_interval="1s")  # the module's Prometheus, on the project's rules
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    journal = json.loads((tmp_path / "out" / "journal.json").read_text())
    failed = {h["name"] for h in journal["hypotheses"] if not h["held"]}
    assert failed == {"the inventory alert pages", "the inventory page resolves"}, failed
    assert journal["paging"]["dependencies"]["inventory"]["time_to_page"] is None
    assert_clean(stack)
