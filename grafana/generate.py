"""Generate grafana/dashboards/*.json with Grafana's own dashboards-as-code SDK
(grafana-foundation-sdk). Run `make dashboards` after changing a panel; the JSON files are
committed, and Grafana loads them as they are through grafana/provisioning/.

Every panel reads the provisioned Prometheus datasource (uid checkout-chaos-prometheus).
Fault windows come from the harness's chaos_fault_active series, as annotations on every
dashboard; the experiment phase is a band on the first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "checkout-chaos-prometheus"
DS = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
OUT = Path(__file__).resolve().parent / "dashboards"
EXP = 'experiment=~"$experiment"'
DEP = 'dependency=~"$dependency"'
RATE = "[$__rate_interval]"


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    """One PromQL target."""
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS).range()
    return q.legend_format(legend) if legend else q


def series(title: str, unit: str, targets: list[prometheus.Dataquery], *, span: int = 12,
           stacked: bool = False, description: str = "") -> timeseries.Panel:
    """A time series panel."""
    panel = (timeseries.Panel().title(title).unit(unit).span(span).height(8).datasource(DS)
             .targets(targets).fill_opacity(30 if stacked else 8).line_width(1))
    if stacked:
        panel = panel.stacking(_stacking())
    return panel.description(description) if description else panel


def _stacking() -> Any:
    from grafana_foundation_sdk.builders import common as common_builders
    from grafana_foundation_sdk.models import common

    return common_builders.StackingConfig().mode(common.StackingMode.NORMAL)


def states(title: str, targets: list[prometheus.Dataquery], mapping: dict[str, tuple[str, str]],
           *, span: int = 24, height: int = 5, description: str = "") -> statetimeline.Panel:
    """A state timeline: each series a band, its values named and coloured."""
    options = {value: model.ValueMappingResult(text=text, color=colour)
               for value, (text, colour) in mapping.items()}
    panel = (statetimeline.Panel().title(title).span(span).height(height).datasource(DS)
             .targets(targets).mappings([model.ValueMap(options=options)]).show_value(
                 _never()).merge_values(True).fill_opacity(80))
    return panel.description(description) if description else panel


def _never() -> Any:
    from grafana_foundation_sdk.models import common

    return common.VisibilityMode.NEVER


def single(title: str, unit: str, expr: str, *, span: int = 6,
           thresholds: list[tuple[float | None, str]] | None = None) -> stat.Panel:
    """A single number."""
    panel = (stat.Panel().title(title).unit(unit).span(span).height(4).datasource(DS)
             .targets([query(expr, ref="A").instant()]))
    if thresholds:
        panel = panel.thresholds(dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
                                 .steps([model.Threshold(value=v, color=c)
                                         for v, c in thresholds]))
    return panel


def variables(board: dash.Dashboard) -> dash.Dashboard:
    """The experiment and the dependency, from the series themselves."""
    for name, label, source in (
        ("experiment", "Experiment", "label_values(chaos_experiment_phase, experiment)"),
        ("dependency", "Dependency", "label_values(shop_dependency_calls_total, dependency)"),
    ):
        board = board.with_variable(
            dash.QueryVariable(name).label(label).datasource(DS)
            .query({"query": source, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True)
            .include_all(True).all_value(".*").sort(model.VariableSort.ALPHABETICAL_ASC)
            .current(model.VariableOption(selected=True, text="All", value="$__all")))
    return board


def fault_annotation() -> dash.AnnotationQuery:
    """Fault windows: a region for each time a fault was active."""
    return (dash.AnnotationQuery().name("Fault windows").datasource(DS).enable(True)
            .icon_color("red")
            .expr(f"max by (experiment, target, toxic) (chaos_fault_active{{{EXP}}})"))


def alert_annotation() -> dash.AnnotationQuery:
    """Alert state beside the fault windows: a region while an alert fired (Prometheus'
    ALERTS series; Alertmanager paged from the same alerts)."""
    return (dash.AnnotationQuery().name("Alerts firing").datasource(DS).enable(True)
            .icon_color("orange")
            .expr('max by (alertname, dependency) (ALERTS{alertstate="firing"})'))


# Each annotation's region title and tags, by its name (render() fills them in).
ANNOTATION_TITLES = {"Fault windows": ("{{toxic}} on {{target}}", "experiment,target,toxic"),
                     "Alerts firing": ("{{alertname}} {{dependency}}", "alertname,dependency")}


def board(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with the common settings, variables, fault and alert annotations."""
    d = (dash.Dashboard(title).uid(uid).description(description)
         .tags(["checkout-chaos"]).refresh("5s").time("now-30m", "now")
         .tooltip(model.DashboardCursorSync.CROSSHAIR).editable()
         .annotation(fault_annotation()).annotation(alert_annotation()))
    return variables(d)


OUTCOME_COLOURS = {"success": "green", "pending_payment": "light-green",
                   "declined": "gray", "graceful_error": "orange", "error": "red"}
PHASES = {"1": ("in this phase", "blue")}
ON_OFF = {"1": ("active", "red"), "0": ("off", "transparent")}
BREAKER = {"0": ("closed", "green"), "1": ("half-open", "orange"), "2": ("open", "red")}
TOLD = {"0": ("operational", "green"), "1": ("degraded", "orange"), "2": ("down", "red")}


def checkout_under_chaos() -> dash.Dashboard:
    d = board("checkout-under-chaos", "Checkout under chaos",
              "What shoppers got while faults were active: checkout rate, outcomes, latency, "
              "revenue. Red regions are fault windows; the band shows the experiment phase.")
    d = d.with_row(dash.Row("Experiment"))
    d = d.with_panel(states("Experiment phase", [
        query(f"max by (phase) (chaos_experiment_phase{{{EXP}}}) == 1", "{{phase}}")],
        PHASES, height=5, description="The harness's phase: steady state, method "
                                      "(faults on), rollback, recovery, audit."))
    d = d.with_panel(states("Active faults", [
        query(f"chaos_fault_active{{{EXP}}}", "{{toxic}} on {{target}}")], ON_OFF, height=5))
    d = d.with_row(dash.Row("Checkout"))
    d = d.with_panel(single("Checkout success (1 m)", "percentunit",
                            "shop:checkout_success:ratio_rate1m",
                            thresholds=[(None, "red"), (0.95, "green")]))
    d = d.with_panel(single("Ungraceful answers (1 m)", "short",
                            f"sum(chaos:load_ungraceful:increase1m{{{EXP}}})",
                            thresholds=[(None, "green"), (1, "red")]))
    d = d.with_panel(single("Revenue at risk (1 m)", "currencyUSD",
                            "sum(increase(shop_revenue_at_risk_cents_total[1m])) / 100",
                            thresholds=[(None, "green"), (1, "orange")]))
    d = d.with_panel(single("Checkouts / s", "reqps",
                            f"sum(rate(shop_checkout_outcomes_total{RATE}))"))
    d = d.with_panel(series("Checkout rate by outcome (shop)", "reqps", [
        query(f"sum by (outcome) (rate(shop_checkout_outcomes_total{RATE}))", "{{outcome}}")],
        stacked=True, description="success, pending_payment (accepted, charged later), "
                                  "declined, graceful_error (a sorry page), error."))
    d = d.with_panel(series("What shoppers saw (load)", "reqps", [
        query(f"sum by (class) (rate(chaos_load_responses_total{{{EXP}}}{RATE}))",
              "{{class}}")], stacked=True,
        description="Every answer the load got, classified: ok, degraded, graceful_error, "
                    "declined, ungraceful (traceback, bare 5xx, hang, wrong banner), "
                    "false_decline (an outage told as a card decline)."))
    d = d.with_panel(series("Checkout latency", "s", [
        query("histogram_quantile(0.5, sum by (le) "
              f"(rate(shop_checkout_duration_seconds_bucket{RATE})))", "p50", "A"),
        query("histogram_quantile(0.95, sum by (le) "
              f"(rate(shop_checkout_duration_seconds_bucket{RATE})))", "p95", "B"),
        query("histogram_quantile(0.99, sum by (le) "
              f"(rate(shop_checkout_duration_seconds_bucket{RATE})))", "p99", "C")]))
    d = d.with_panel(series("Revenue confirmed and at risk", "currencyUSD", [
        query(f"sum(rate(shop_revenue_confirmed_cents_total{RATE})) * 60 / 100",
              "confirmed per minute", "A"),
        query(f"sum(rate(shop_revenue_at_risk_cents_total{RATE})) * 60 / 100",
              "at risk per minute", "B")]))
    return d


def dependencies() -> dash.Dashboard:
    d = board("checkout-dependencies", "Dependencies",
              "Each dependency as the shop sees it (calls, errors, latency, breaker), the "
              "traffic through its Toxiproxy proxy, and the toxics on it.")
    d = d.with_panel(series("Calls per second", "reqps", [
        query(f"sum by (dependency) (rate(shop_dependency_calls_total{{{DEP}}}{RATE}))",
              "{{dependency}}")]))
    d = d.with_panel(series("Errors per second by kind", "reqps", [
        query("sum by (dependency, kind) "
              f"(rate(shop_dependency_errors_total{{{DEP}}}{RATE}))",
              "{{dependency}} {{kind}}")]))
    d = d.with_panel(series("Error ratio (1 m)", "percentunit", [
        query(f"shop:dependency_errors:ratio_rate1m{{{DEP}}}", "{{dependency}}")]))
    d = d.with_panel(series("Call latency p99", "s", [
        query("histogram_quantile(0.99, sum by (dependency, le) "
              f"(rate(shop_dependency_call_duration_seconds_bucket{{{DEP}}}{RATE})))",
              "{{dependency}}")]))
    d = d.with_panel(states("Circuit breakers", [
        query(f"max by (dependency) (shop_breaker_state{{{DEP}}})", "{{dependency}}")],
        BREAKER, height=6))
    d = d.with_panel(series("Toxiproxy traffic per proxy", "Bps", [
        query("sum by (proxy, direction) "
              f"(rate(toxiproxy_proxy_sent_bytes_total{{{DEP}}}{RATE}))",
              "{{proxy}} {{direction}}")]))
    d = d.with_panel(series("Fallbacks engaged", "reqps", [
        query(f"sum by (fallback) (rate(shop_fallbacks_total{RATE}))", "{{fallback}}")]))
    d = d.with_panel(states("Active toxics", [
        query(f"chaos_fault_active{{{EXP}, {DEP}}}",
              "{{toxic}} ({{stream}}) on {{target}}")], ON_OFF, height=6))
    d = d.with_panel(series("Toxic attributes", "none", [
        query(f"chaos_fault_attribute{{{EXP}, {DEP}}}",
              "{{target}} {{toxic}} {{attribute}}")],
        description="Latency and jitter in ms, rate in KB/s, toxicity as a share, ..."))
    d = d.with_panel(series("Requests payments and inventory answered", "reqps", [
        query(f"sum by (status) (rate(payments_requests_total{RATE}))", "payments {{status}}",
              "A"),
        query(f"sum by (status) (rate(inventory_requests_total{RATE}))",
              "inventory {{status}}", "B")]))
    return d


# The seconds the harness measures in each run: (title, chaos_<metric>_seconds, what).
TIMINGS = (
    ("Time to communicate", "time_to_communicate",
     "From a fault's start until /api/status named the dependency (measured by the "
     "harness in every experiment)."),
    ("Time to clear", "time_to_clear",
     "From the last rollback until /api/status cleared the dependency."),
    ("Time to page", "time_to_page",
     "From a fault's start until Alertmanager's page naming the dependency reached the "
     "harness's receiver (runs with OBSERVE=1)."),
    ("Time to resolve", "time_to_resolve",
     "From the last rollback until Alertmanager said the page resolved."),
)


def timing(title: str, metric: str, description: str) -> timeseries.Panel:
    """Seconds the harness measured per experiment and dependency (chaos_<metric>_seconds)."""
    return series(title, "s", [query(f"chaos_{metric}_seconds{{{EXP}, {DEP}}}",
                                     "{{experiment}} {{dependency}}")],
                  span=12, description=description)


def communication() -> dash.Dashboard:
    d = board("shopper-communication", "Shopper communication",
              "What the banner and /status told shoppers, next to what was really wrong, "
              "and how long the shop took to say so.")
    d = d.with_panel(states("What the shop tells shoppers (banner and /status)", [
        query(f"max by (dependency) (shop_dependency_state{{{DEP}}})", "{{dependency}}")],
        TOLD, height=6))
    d = d.with_panel(states("What was really wrong (faults injected)", [
        query(f"max by (dependency) (chaos_fault_active{{{EXP}, {DEP}}})",
              "{{dependency}}")], ON_OFF, height=6))
    d = d.with_panel(states("Circuit breakers", [
        query(f"max by (dependency) (shop_breaker_state{{{DEP}}})", "{{dependency}}")],
        BREAKER, height=6))
    told, paged = TIMINGS[:2], TIMINGS[2:]
    for title, metric, description in told:
        d = d.with_panel(timing(title, metric, description))
    d = d.with_panel(states("Alerts firing (what paged someone)", [
        query('max by (alertname, dependency) (ALERTS{alertstate="firing"})',
              "{{alertname}} {{dependency}}")], {"1": ("firing", "red")}, height=6,
        description="Prometheus' alerts from grafana/prometheus/rules/alerts.yml, which "
                    "Alertmanager sends to whoever is paged."))
    for title, metric, description in paged:
        d = d.with_panel(timing(title, metric, description))
    d = d.with_panel(series("Sorry pages by reason", "reqps", [
        query(f"sum by (reason) (rate(shop_error_pages_total{RATE}))", "{{reason}}")]))
    d = d.with_panel(series("Status page answers", "reqps", [
        query("sum by (route, status) (rate(shop_http_requests_total"
              f"{{route=~\"/status|/api/status\"}}{RATE}))", "{{route}} {{status}}")]))
    return d


BOARDS = {"checkout-under-chaos": checkout_under_chaos, "dependencies": dependencies,
          "shopper-communication": communication}


def render(name: str) -> str:
    """One dashboard as Grafana's JSON, with panel ids given in order."""
    data = json.loads(json.dumps(BOARDS[name]().build(), cls=JSONEncoder))
    for number, panel in enumerate(data["panels"], 1):
        panel["id"] = number
    for annotation in data.get("annotations", {}).get("list", []):
        # A region per contiguous run of samples, titled by what it is about.
        title, tags = ANNOTATION_TITLES[annotation["name"]]
        annotation.update({"step": "2s", "titleFormat": title, "tagKeys": tags,
                           "useValueForTime": False})
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write every dashboard; with --check, exit 1 when a committed file is out of date."""
    check = "--check" in argv
    stale = []
    for name in BOARDS:
        path = OUT / f"{name}.json"
        text = render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run `make dashboards`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
