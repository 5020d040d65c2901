"""A whole shopper journey and every dependency's outage, on the full stack with Toxiproxy."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from chaos.shop import ShopClient
from chaos.shopper import api_checkout
from chaos.stack import Stack
from chaos.vocabulary import GOOD_CARD
from chaos.waiting import eventually
from loadtests.classify import DEGRADED, GRACEFUL, OK

pytestmark = pytest.mark.e2e
CHECKOUT_DEADLINE = 5.0  # the shop's default SHOP_CHECKOUT_DEADLINE


def test_complete_journey_through_the_api(stack: Stack) -> None:
    cart = uuid.uuid4().hex
    with httpx.Client(base_url=stack.config.shop_url, headers={"X-Cart-Id": cart},
                      timeout=10) as shop:
        products = shop.get("/api/products").json()
        assert len(products) == 20
        sku = products[0]["sku"]
        assert shop.post("/api/cart/items", json={"sku": sku, "qty": 2}).status_code == 200
        view = shop.get("/api/cart").json()
        assert view["items"] == [{"sku": sku, "qty": 2}]
        assert view["total_cents"] == 2 * products[0]["sale_price_cents"]
        key = uuid.uuid4().hex
        placed = shop.post("/api/checkout", json={"card": GOOD_CARD},
                           headers={"Idempotency-Key": key})
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert order["status"] == "confirmed" and order["total_cents"] == view["total_cents"]
        assert shop.get("/api/cart").json()["items"] == []
        again = shop.post("/api/checkout", json={"card": GOOD_CARD},
                          headers={"Idempotency-Key": key})
        assert again.json()["order_id"] == order["order_id"]
        read = shop.get(f"/api/orders/{order['order_id']}").json()
        assert read["items"] == [{"sku": sku, "qty": 2}] and read["status"] == "confirmed"
    charges = httpx.get(f"{stack.config.payments_url}/v1/charges",
                        params={"order_id": order["order_id"]}).json()["charges"]
    assert [c["status"] for c in charges] == ["captured"]


def checkout_ok_within(stack: Stack, seconds: float) -> str:
    """Checkouts until one succeeds, or fail at the deadline: recovery must come by itself."""
    def succeeded() -> str | None:
        answer = api_checkout(stack.config.shop_url, CHECKOUT_DEADLINE)
        return answer.body if answer.verdict.cls == OK else None

    return eventually(succeeded, seconds, "a successful checkout after recovery", every=0.2)


# What a checkout gives while each dependency is down: a fallback (payments: the order is
# taken as payment_pending; redis: the cart rides in a signed cookie) or an honest 503.
WHILE_DOWN = {"payments": (DEGRADED, 201), "redis": (DEGRADED, 201),
              "inventory": (GRACEFUL, 503), "postgres": (GRACEFUL, 503)}


@pytest.mark.parametrize("proxy", ["payments", "inventory", "postgres", "redis"])
def test_dependency_down_keeps_the_graceful_contract_then_recovers(
    stack: Stack, faults, proxy: str
) -> None:
    checkout_ok_within(stack, 10)
    faults.disable(proxy)
    answers = [api_checkout(stack.config.shop_url, CHECKOUT_DEADLINE) for _ in range(3)]
    for answer in answers:
        assert (answer.verdict.cls, answer.status) == WHILE_DOWN[proxy], (
            answer.verdict, answer.body[:300])
        assert answer.elapsed < CHECKOUT_DEADLINE
    faults.enable(proxy)
    checkout_ok_within(stack, 10)
    if proxy == "payments":  # the orders taken meanwhile are paid once payments is back
        for answer in answers:
            order_id = json.loads(answer.body)["order_id"]
            wait_for_order_status(stack, order_id, "confirmed", 20)


def wait_for_order_status(stack: Stack, order_id: str, status: str, seconds: float) -> None:
    def seen() -> str:
        return str(httpx.get(f"{stack.config.shop_url}/api/orders/{order_id}",
                             timeout=5).json()["status"])

    eventually(lambda: seen() == status, seconds, f"order {order_id} becomes {status}",
               every=0.2)


def test_status_page_names_the_failing_dependency_and_clears(stack: Stack, faults) -> None:
    def state() -> str:
        return ShopClient(stack.config.shop_url).state("inventory")

    faults.disable("inventory")
    eventually(lambda: state() == "down", 10, "the status says inventory is down")
    faults.enable("inventory")
    eventually(lambda: state() == "operational", 15, "the status clears after recovery")


def test_shop_metrics_cover_every_gunicorn_worker(stack: Stack) -> None:
    text = httpx.get(f"{stack.config.shop_url}/metrics", timeout=5).text
    for name in ("shop_http_requests_total", "shop_checkout_outcomes_total",
                 "shop_dependency_calls_total", "shop_dependency_call_duration_seconds_bucket"):
        assert name in text
    for service in ("payments", "inventory"):
        base = getattr(stack.config, f"{service}_url")
        assert f"{service}_requests_total" in httpx.get(f"{base}/metrics").text


def breaker_state(stack: Stack, dependency: str) -> float | None:
    """The shop's highest breaker state for a dependency across workers (2 open)."""
    return ShopClient(stack.config.shop_url).breaker_state(dependency)


def breaker_after_checkout(stack: Stack) -> float | None:
    """One checkout (real checkouts feed the breaker), then the payments breaker's state."""
    api_checkout(stack.config.shop_url, CHECKOUT_DEADLINE)
    return breaker_state(stack, "payments")


def test_breaker_opens_on_a_failing_dependency_fails_fast_and_closes_after(
    stack: Stack, faults
) -> None:
    checkout_ok_within(stack, 10)
    faults.disable("payments")
    eventually(lambda: breaker_after_checkout(stack) == 2, 20,  # real checkouts feed it
               "the payments breaker opens", every=0.2)
    fast = [api_checkout(stack.config.shop_url, CHECKOUT_DEADLINE) for _ in range(5)]
    # The breaker fails the payment call fast, and the fallback still takes the order.
    assert all(a.verdict.cls == DEGRADED for a in fast)
    assert all(json.loads(a.body)["status"] == "payment_pending" for a in fast)
    faults.enable("payments")
    checkout_ok_within(stack, 20)  # half-open after the reset time, then closed
    eventually(lambda: breaker_after_checkout(stack) == 0, 20,
               "the payments breaker closes again", every=0.2)
