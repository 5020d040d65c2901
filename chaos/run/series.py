"""Every series the dashboards plot during an outage, reconciled with what the load saw in
the same run: revenue confirmed and at risk, error pages, checkout latency, the dependency
state and its errors (checkout outcomes are chaos.run.audit.metrics_disagreement's). A
series that stays flat, or says something else than the shoppers' answers, fails and names
the metric.

The shop's figures are its /metrics at the run's start and end (counters, histograms) and
its samples during the run (the dependency state gauge); the harness's are the evidence of
every checkout answer, the load's timeline and the status API's samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from loadtests.classify import CONTRACT_FAILURES

from ..probes import Samples, StatusPoller, WindowStats

# A checkout answer that the shop counts as revenue at risk: a dependency failed it.
AT_RISK_STATUS = 503
# Shoppers' latency includes what the shop's own timer cannot see (their network, the load
# generator's queue): the shop's p95 bucket must cover theirs within this much.
LATENCY_SLACK_SECONDS = 0.5
LATENCY_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class SeriesCheck:
    """One plotted series against the run's own record of it."""

    metric: str
    what: str  # the hypothesis's words
    held: bool | None  # None: nothing to judge it on (`why`)
    value: float | None
    tolerance: str
    detail: dict[str, Any]
    why: str = ""


def _delta(start: Samples, end: Samples, name: str,
           where: Mapping[str, str] | None = None) -> float:
    wanted = set((where or {}).items())
    def total(samples: Samples) -> float:
        return sum(v for (n, labels), v in samples.items() if n == name and wanted <= labels)
    return total(end) - total(start)


def _relative(shop: float, load: float) -> float:
    return round(abs(shop - load) / max(load, 1.0), 4)


def revenue_confirmed(evidence: list[dict[str, Any]], start: Samples, end: Samples,
                      limit: float) -> SeriesCheck:
    """Revenue confirmed: the shop's counter against the orders shoppers were told of (each
    order once, however many answers repeated it)."""
    orders: dict[str, int] = {}
    for e in evidence:
        if e.get("status") == 201 and e.get("order_id") and isinstance(e.get("total_cents"),
                                                                        int):
            orders[str(e["order_id"])] = e["total_cents"]
    load = float(sum(orders.values()))
    shop = _delta(start, end, "shop_revenue_confirmed_cents_total")
    off = _relative(shop, load)
    return SeriesCheck("shop_revenue_confirmed_cents_total",
                       "revenue confirmed is the orders shoppers were told of", off <= limit,
                       off, f"at most {limit:g}",
                       {"shop_cents": shop, "load_cents": load, "orders": len(orders)})


def revenue_at_risk(evidence: list[dict[str, Any]], start: Samples, end: Samples,
                    limit: float) -> SeriesCheck:
    """Revenue at risk: the shop's counter against the carts of the checkouts a dependency
    failed (each answer with its cart's value: a retry is another checkout put at risk)."""
    failed = [e for e in evidence if e.get("http_status", e.get("status")) == AT_RISK_STATUS
              and isinstance(e.get("cart_cents"), int)]
    load = float(sum(e["cart_cents"] for e in failed))
    shop = _delta(start, end, "shop_revenue_at_risk_cents_total")
    off = _relative(shop, load)
    return SeriesCheck("shop_revenue_at_risk_cents_total",
                       "revenue at risk is the carts of the checkouts that failed",
                       off <= limit, off, f"at most {limit:g}",
                       {"shop_cents": shop, "load_cents": load, "answers": len(failed)})


def error_pages(evidence: list[dict[str, Any]], rows: list[dict[str, Any]], start: Samples,
                end: Samples, limit: float) -> SeriesCheck:
    """Error pages: every sorry page and problem answer the shop counted, against the load's
    graceful errors and the declines the API answered with a problem (a declined card on
    the checkout page is the form again, not an error page)."""
    stats = WindowStats.of(rows)
    api_declines = sum(1 for e in evidence if e.get("status") == 402 and e.get("via") == "api")
    load = float(stats.classes["graceful_error"] + api_declines)
    shop = _delta(start, end, "shop_error_pages_total")
    off = _relative(shop, load)
    detail = {"shop": shop, "load_graceful": stats.classes["graceful_error"],
              "load_api_declines": api_declines}
    what = "error pages are the sorry pages shoppers got"
    if stats.classes["ungraceful"]:
        # A sorry page that broke the contract (no Retry-After, say) is the shop's error
        # page but not a graceful answer: the counts cannot be set side by side, and the
        # contract failure is already judged ("no ungraceful answers").
        return SeriesCheck("shop_error_pages_total", what, None, None, f"at most {limit:g}",
                           detail, "shoppers got ungraceful answers, judged on their own")
    return SeriesCheck("shop_error_pages_total", what, off <= limit, off,
                       f"at most {limit:g}", detail)


def _quantile_bucket(start: Samples, end: Samples, name: str, q: float
                     ) -> tuple[float, float, float] | None:
    """(lower edge, upper edge, count) of the bucket holding the q-quantile of the
    histogram's increase over the run, all label sets added up."""
    edges: dict[float, float] = {}
    for (n, labels), _ in end.items():
        if n != f"{name}_bucket":
            continue
        le = dict(labels).get("le", "")
        edge = float("inf") if le == "+Inf" else float(le)
        edges[edge] = edges.get(edge, 0.0) + _delta(start, end, n, dict(labels))
    if not edges:
        return None
    ordered = sorted(edges.items())
    count = ordered[-1][1]
    if count <= 0:
        return None
    lower = 0.0
    for edge, cumulative in ordered:
        if cumulative >= q * count:
            return lower, edge, count
        lower = edge
    return lower, ordered[-1][0], count


def checkout_latency(rows: list[dict[str, Any]], start: Samples, end: Samples,
                     limit: float) -> SeriesCheck:
    """Checkout latency: the shop's histogram counts every checkout shoppers got an answer
    to, and its p95 bucket covers the p95 shoppers waited."""
    stats = WindowStats.of(rows)
    load_count = float(sum(stats.checkout_hist.values()))
    load_p95 = stats.latency(95, "checkout")
    bucket = _quantile_bucket(start, end, "shop_checkout_duration_seconds", 0.95)
    shop_count = _delta(start, end, "shop_checkout_duration_seconds_count")
    detail: dict[str, Any] = {"shop_count": shop_count, "load_count": load_count,
                              "load_p95_s": None if load_p95 is None else load_p95 / 1000,
                              "shop_p95_bucket_s": None if bucket is None else bucket[:2]}
    if load_p95 is None or not load_count:
        return SeriesCheck("shop_checkout_duration_seconds",
                           "checkout latency is what shoppers waited", None, None,
                           "no checkout answered", detail, "no checkout was answered")
    off = _relative(shop_count, load_count)
    waited = load_p95 / 1000
    covered = bucket is not None and bucket[0] * 0.9 <= waited <= \
        bucket[1] * LATENCY_RATIO + LATENCY_SLACK_SECONDS
    return SeriesCheck("shop_checkout_duration_seconds",
                       "checkout latency is what shoppers waited", off <= limit and covered,
                       off, f"count off by at most {limit:g}, p95 within its bucket", detail)


def dependency_state(samples: list[tuple[float, Samples]], status: StatusPoller,
                     broken: list[str], fault_start: float | None,
                     clear_by: float | None) -> SeriesCheck:
    """The dependency state gauge: it shows each broken dependency while the status API
    names it, and shows nothing once the status API says everything works again."""
    def gauge(scraped: Samples, dependency: str) -> float:
        return max((v for (n, labels), v in scraped.items() if n == "shop_dependency_state"
                    and dict(labels).get("dependency") == dependency), default=0.0)

    detail: dict[str, Any] = {}
    wrong = 0
    for dependency in broken:
        told = None if fault_start is None else status.first(dependency, fault_start, False)
        if told is None or clear_by is None or fault_start is None:
            detail[dependency] = "the status API never named it: not compared"
            continue
        shown = max((gauge(s, dependency) for at, s in samples
                     if fault_start <= at <= clear_by), default=0.0)
        detail[dependency] = {"status_api_named_after_s": told, "gauge_max": shown}
        wrong += shown <= 0
    last = samples[-1][1] if samples else {}
    end_states = status.samples[-3:]
    if end_states and all(states and all(s == "operational" for s in states.values())
                          for _, states in end_states):
        stuck = sorted(d for d in {dict(labels).get("dependency", "") for (n, labels) in last
                                   if n == "shop_dependency_state"} if gauge(last, d) > 0)
        detail["still_shown_at_the_end"] = stuck
        wrong += len(stuck)
    judged = any(isinstance(v, dict) for v in detail.values()) or \
        "still_shown_at_the_end" in detail
    return SeriesCheck("shop_dependency_state",
                       "the dependency state shows what the status API said",
                       (wrong == 0) if judged else None, float(wrong), "at most 0", detail,
                       "" if judged else "the status API never named a broken dependency")


def dependency_errors(start: Samples, end: Samples, status: StatusPoller, broken: list[str],
                      fault_start: float | None, clear_by: float | None) -> SeriesCheck:
    """Dependency errors: a dependency the status API called down during the fault must
    show errors in the shop's counter (a flat error panel while it is down is a lie)."""
    detail: dict[str, Any] = {}
    wrong = 0
    for dependency in broken:
        down = fault_start is not None and clear_by is not None and any(
            states.get(dependency) == "down" for at, states in list(status.samples)
            if fault_start <= at <= clear_by)
        if not down:
            detail[dependency] = "the status API never called it down: not compared"
            continue
        errors = _delta(start, end, "shop_dependency_errors_total", {"dependency": dependency})
        detail[dependency] = {"errors": errors}
        wrong += errors <= 0
    judged = any(isinstance(v, dict) for v in detail.values())
    return SeriesCheck("shop_dependency_errors_total",
                       "dependency errors show the dependency that was down",
                       (wrong == 0) if judged else None, float(wrong), "at most 0", detail,
                       "" if judged else "the status API never called a broken dependency down")


def reconcile(evidence: list[dict[str, Any]], rows: list[dict[str, Any]], start: Samples,
              end: Samples, samples: list[tuple[float, Samples]], status: StatusPoller,
              broken: list[str], fault_start: float | None, clear_by: float | None,
              limit: float) -> list[SeriesCheck]:
    """Every plotted series of the dashboards against the run's own record."""
    answered = [e for e in evidence if e.get("status")]
    revenue = [revenue_confirmed(answered, start, end, limit),
               revenue_at_risk(answered, start, end, limit)]
    failures = sum(1 for e in answered if e.get("cls") in CONTRACT_FAILURES)
    if failures:
        # A checkout answer that broke the contract (201 without an order, an error in a
        # 200) leaves the load's record of what was confirmed or failed incomplete: the
        # revenue series cannot be set beside it, and "no ungraceful answers" judges it.
        revenue = [replace(c, held=None, value=None,
                           why=f"{failures} checkout answers broke the contract, judged on "
                               "their own") for c in revenue]
    return [*revenue,
            error_pages(answered, rows, start, end, limit),
            checkout_latency(rows, start, end, limit),
            dependency_state(samples, status, broken, fault_start, clear_by),
            dependency_errors(start, end, status, broken, fault_start, clear_by)]


__all__ = ["SeriesCheck", "reconcile"]
