"""Each plotted series reconciled with the run's own record: the shop's figure as the load
saw it passes, a series left flat or wrong fails and names its metric, and a series with
nothing to compare it with is not judged (None), never passed."""

from __future__ import annotations

from typing import Any

from chaos.probes import Samples, StatusPoller
from chaos.run.series import (
    checkout_latency,
    dependency_errors,
    dependency_state,
    error_pages,
    reconcile,
    revenue_at_risk,
    revenue_confirmed,
)

LIMIT = 0.02


def counter(name: str, value: float, **labels: str) -> Samples:
    return {(name, frozenset(labels.items())): value}


def ordered(order_id: str, total: int) -> dict[str, Any]:
    return {"status": 201, "order_id": order_id, "total_cents": total, "via": "api"}


def test_revenue_confirmed_counts_each_order_once_and_a_flat_counter_fails() -> None:
    evidence = [ordered("o1", 1000), ordered("o1", 1000), ordered("o2", 2500)]
    end = counter("shop_revenue_confirmed_cents_total", 3500)
    check = revenue_confirmed(evidence, {}, end, LIMIT)
    assert check.held and check.value == 0
    flat = revenue_confirmed(evidence, {}, counter("shop_revenue_confirmed_cents_total", 0),
                             LIMIT)
    assert not flat.held and flat.metric == "shop_revenue_confirmed_cents_total"


def test_revenue_at_risk_is_the_carts_of_every_failed_answer() -> None:
    failed = [{"status": 503, "http_status": 503, "cart_cents": 400},
              {"status": 503, "http_status": 503, "cart_cents": 600},
              {"status": 402, "http_status": 402, "cart_cents": 999}]  # a decline: no risk
    assert revenue_at_risk(failed, {}, counter("shop_revenue_at_risk_cents_total", 1000),
                           LIMIT).held
    assert not revenue_at_risk(failed, {}, counter("shop_revenue_at_risk_cents_total", 0),
                               LIMIT).held


def test_error_pages_are_graceful_answers_and_api_declines() -> None:
    rows = [{"ts": 1, "graceful_error": 7, "declined": 3}]
    evidence = [{"status": 402, "via": "api"}, {"status": 402, "via": "page"}]
    start = counter("shop_error_pages_total", 5, reason="x", format="json")
    end = counter("shop_error_pages_total", 13, reason="x", format="json")
    assert error_pages(evidence, rows, start, end, LIMIT).held  # 7 graceful + 1 API decline
    assert not error_pages(evidence, rows, start, start, LIMIT).held
    # A broken contract (a sorry page without Retry-After is ungraceful, not graceful) is
    # judged on its own: the counts are not set side by side then.
    rows[0]["ungraceful"] = 2
    broken = error_pages(evidence, rows, start, start, LIMIT)
    assert broken.held is None and "ungraceful" in broken.why


def histogram(counts: dict[str, float]) -> Samples:
    samples: Samples = {}
    for le, n in counts.items():
        samples |= counter("shop_checkout_duration_seconds_bucket", n, le=le, outcome="success")
    samples |= counter("shop_checkout_duration_seconds_count", counts["+Inf"],
                       outcome="success")
    return samples


def test_checkout_latency_needs_the_count_and_a_p95_bucket_that_covers_the_shoppers() -> None:
    rows = [{"ts": 1, "checkout_hist": {"150": 95, "400": 5}}]  # p95 150 ms
    healthy = histogram({"0.05": 10, "0.1": 50, "0.25": 100, "+Inf": 100})
    assert checkout_latency(rows, {}, healthy, LIMIT).held
    # Milliseconds in a histogram in seconds: 100 checkouts of "50 s".
    wrong_unit = histogram({"0.25": 0, "10.0": 0, "+Inf": 100})
    check = checkout_latency(rows, {}, wrong_unit, LIMIT)
    assert not check.held and check.detail["shop_p95_bucket_s"] == (10.0, float("inf"))
    short = histogram({"0.05": 10, "0.1": 30, "0.25": 60, "+Inf": 60})  # 40 not counted
    assert not checkout_latency(rows, {}, short, LIMIT).held
    assert checkout_latency([], {}, healthy, LIMIT).held is None  # nothing answered


class Status(StatusPoller):
    """Status samples as given (no polling)."""


def status(*samples: tuple[float, dict[str, str]]) -> StatusPoller:
    poller = Status("http://127.0.0.1:1")
    poller.samples.extend(samples)
    return poller


def gauge(value: float) -> Samples:
    return counter("shop_dependency_state", value, dependency="inventory", pid="1")


def test_the_dependency_state_gauge_must_show_what_the_status_api_said() -> None:
    told = status((99.0, {"inventory": "operational"}), (101.0, {"inventory": "down"}),
                  *[(120.0 + i, {"inventory": "operational"}) for i in range(3)])
    shown = [(100.0, gauge(0)), (102.0, gauge(2)), (121.0, gauge(0))]
    check = dependency_state(shown, told, ["inventory"], 100.0, 130.0)
    assert check.held, check.detail
    flat = [(100.0, gauge(0)), (102.0, gauge(0)), (121.0, gauge(0))]
    assert not dependency_state(flat, told, ["inventory"], 100.0, 130.0).held
    stuck = [(100.0, gauge(0)), (102.0, gauge(2)), (121.0, gauge(2))]
    check = dependency_state(stuck, told, ["inventory"], 100.0, 130.0)
    assert not check.held and check.detail["still_shown_at_the_end"] == ["inventory"]
    quiet = status((101.0, {"inventory": "operational"}))
    assert dependency_state(flat, quiet, ["inventory"], 100.0, 130.0).held is not False


def test_a_dependency_called_down_must_show_errors() -> None:
    told = status((101.0, {"payments": "down"}))
    end = counter("shop_dependency_errors_total", 12, dependency="payments", kind="refused")
    assert dependency_errors({}, end, told, ["payments"], 100.0, 130.0).held
    assert not dependency_errors({}, {}, told, ["payments"], 100.0, 130.0).held
    slow = status((101.0, {"payments": "degraded"}))  # slow is not down: not compared
    assert dependency_errors({}, {}, slow, ["payments"], 100.0, 130.0).held is None


def test_reconcile_names_every_plotted_series() -> None:
    checks = reconcile([], [], {}, {}, [], status(), ["payments"], None, None, LIMIT)
    assert [c.metric for c in checks] == [
        "shop_revenue_confirmed_cents_total", "shop_revenue_at_risk_cents_total",
        "shop_error_pages_total", "shop_checkout_duration_seconds", "shop_dependency_state",
        "shop_dependency_errors_total"]


def test_revenue_is_not_set_beside_answers_that_broke_the_contract() -> None:
    """A checkout answered 201 without an order is judged as ungraceful; the revenue the
    shop confirmed for it has no order in the load's record to be compared with."""
    evidence = [ordered("o1", 1000), {"status": 200, "cls": "ungraceful", "via": "api"}]
    end = counter("shop_revenue_confirmed_cents_total", 3000)
    confirmed, at_risk, *_ = reconcile(evidence, [], {}, end, [], status(), ["payments"],
                                       None, None, LIMIT)
    assert confirmed.held is None and at_risk.held is None
    assert "broke the contract" in confirmed.why

