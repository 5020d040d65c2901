"""The shop's Prometheus metrics, declared once; under gunicorn they use multiprocess mode.

Declaring metric objects is not work: they write nothing until they are used, and in
multiprocess mode each worker writes its own files in PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# SHOP_METRICS=off makes every metric a no-op, so `make bench` can measure what they cost.
METRICS_ON = os.environ.get("SHOP_METRICS", "on").lower() != "off"


class _Off:
    """A metric that records nothing."""

    def labels(self, *args: Any, **kwargs: Any) -> _Off:
        return self

    def inc(self, amount: float = 1.0) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


def _made(kind: Any, *args: Any, **kwargs: Any) -> Any:
    return kind(*args, **kwargs) if METRICS_ON else _Off()


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = _made(
    Counter, "shop_http_requests_total", "HTTP requests answered, by route and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = _made(
    Histogram, "shop_http_request_duration_seconds", "Time to answer an HTTP request, by route",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
CHECKOUT_OUTCOMES = _made(
    Counter, "shop_checkout_outcomes_total",
    "Checkouts by outcome: success, pending_payment, declined, graceful_error, error",
    ["outcome"],
)
CHECKOUT_LATENCY = _made(
    Histogram, "shop_checkout_duration_seconds", "Time from checkout request to answer, by outcome",
    ["outcome"], buckets=LATENCY_BUCKETS,
)
DEPENDENCY_CALLS = _made(
    Counter, "shop_dependency_calls_total", "Calls to a dependency, by operation and result",
    ["dependency", "operation", "result"],
)
DEPENDENCY_ERRORS = _made(
    Counter, "shop_dependency_errors_total",
    "Failed dependency calls by kind: refused, timeout, reset, status, unknown_outcome, other",
    ["dependency", "kind"],
)
DEPENDENCY_LATENCY = _made(
    Histogram, "shop_dependency_call_duration_seconds", "Time a dependency call took, by operation",
    ["dependency", "operation"], buckets=LATENCY_BUCKETS,
)
DEPENDENCY_STATE = _made(
    Gauge, "shop_dependency_state",
    "What the shop believes of a dependency: 0 operational, 1 degraded, 2 down",
    ["dependency"], multiprocess_mode="livemax",
)
BREAKER_STATE = _made(
    Gauge, "shop_breaker_state", "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open",
    ["dependency"], multiprocess_mode="livemax",
)
ERROR_PAGES = _made(
    Counter, "shop_error_pages_total", "Sorry pages and problem+json answers, by reason and format",
    ["reason", "format"],
)
FALLBACKS = _made(
    Counter, "shop_fallbacks_total",
    "Answers a fallback gave (payment_pending, cookie_cart, stock_cache), by fallback",
    ["fallback"],
)
RECONCILE_ERRORS = _made(
    Counter, "shop_reconcile_errors_total",
    "Orders the reconciliation pass could not settle and set aside for later, by error",
    ["error"],
)
REVENUE_CONFIRMED = _made(
    Counter, "shop_revenue_confirmed_cents_total", "Order value confirmed to shoppers, in cents",
)
REVENUE_AT_RISK = _made(
    Counter, "shop_revenue_at_risk_cents_total",
    "Order value of checkouts that did not complete (declines excluded), in cents",
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text for /metrics: all gunicorn workers' values in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
