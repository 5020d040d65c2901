"""The fallbacks with fakes: payment_pending and its later capture or cancellation, the
cookie cart, the stock cache and load shedding at the door of checkout."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from demo_shop.app import create_app
from demo_shop.cache import ShortCache
from demo_shop.checkout import CheckoutDeps, CheckoutFailed, checkout
from demo_shop.config import SafeguardPolicy
from demo_shop.domain import OrderStatus
from demo_shop.errors import DependencyUnavailable
from demo_shop.health import HealthBoard, Periodic
from demo_shop.reconcile import Reconciler
from demo_shop.resilience import Deadline
from demo_shop.vault import CardVault
from demo_shop.wiring import Shop

from .fakes import FakeCarts, FakeInventory, FakeOrders, FakePayments, down, lost

GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED = {**GOOD, "number": "4000000000000002"}
CART = "0" * 32


@pytest.fixture
def deps() -> CheckoutDeps:
    ids = itertools.count(1)
    return CheckoutDeps(
        carts=FakeCarts({"cart1": {"A": 2}}), orders=FakeOrders(), payments=FakePayments(),
        inventory=FakeInventory(), new_id=lambda: f"o{next(ids)}",
        vault=CardVault("test-secret"), payment_pending_seconds=600,
    )


def run(deps: CheckoutDeps, card: dict | None = None):
    return checkout(deps, "cart1", "key1", card or GOOD, Deadline(5.0))


# ---- payment_pending --------------------------------------------------------------------------

def test_payments_down_accepts_the_order_as_payment_pending(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    result = run(deps)
    order = deps.orders.orders["o1"]
    assert result.order.status is OrderStatus.PAYMENT_PENDING
    assert order.status is OrderStatus.PAYMENT_PENDING
    assert deps.payments.captured() == []  # "you have not been charged yet" is true
    assert deps.inventory.states() == ["active"]  # stock held for the later payment
    assert deps.inventory.held_for["o1-1"] >= 600
    assert "cart1" not in deps.carts.carts
    sealed = deps.orders.cards["o1"]
    assert GOOD["number"] not in sealed and deps.vault is not None
    # Only what a merchant-initiated charge needs is kept: never the CVC.
    assert deps.vault.open(sealed) == {k: GOOD[k] for k in ("number", "exp_month", "exp_year")}


def test_a_capture_refused_keeps_the_hold_for_the_later_payment(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["capture"] = down("payments")
    assert run(deps).order.status is OrderStatus.PAYMENT_PENDING
    assert [c.status for c in deps.payments.charges.values()] == ["authorized"]
    assert deps.orders.orders["o1"].charge_id == "ch_1"


def test_without_the_fallback_payments_down_fails_the_checkout(deps: CheckoutDeps) -> None:
    deps.vault = None
    deps.payments.fail_on["authorize"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
    assert deps.inventory.states() == ["released"]


def test_if_the_stock_cannot_be_held_longer_the_order_fails_honestly(
    deps: CheckoutDeps,
) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    deps.inventory.fail_on["extend"] = down("inventory")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
    assert deps.orders.cards == {}


def reconcile(deps: CheckoutDeps) -> None:
    Reconciler(deps, deps.orders, settle_seconds=0).run_once()


def test_the_pending_payment_is_taken_once_payments_answers(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    run(deps)
    reconcile(deps)  # still down: the order waits
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_PENDING
    deps.payments.fail_on.clear()
    reconcile(deps)
    reconcile(deps)  # a second pass changes nothing
    order = deps.orders.orders["o1"]
    assert (order.status, order.stock_committed) == (OrderStatus.CONFIRMED, True)
    assert [c.idempotency_key for c in deps.payments.captured()] == ["o1:1"]
    assert deps.orders.cards == {}  # the card is erased once the payment is taken


def test_a_hold_made_before_the_outage_is_captured_not_charged_again(
    deps: CheckoutDeps,
) -> None:
    deps.payments.fail_on["capture"] = lost("payments")
    deps.payments.fail_on["find"] = down("payments")
    with pytest.raises(CheckoutFailed):
        run(deps)  # outcome unknown: not a payment_pending case
    deps.payments.fail_on.clear()
    deps.orders.orders.clear()
    deps.payments.fail_on["capture"] = down("payments")
    deps.carts.carts["cart1"] = {"A": 1}
    checkout(deps, "cart1", "key2", GOOD, Deadline(5.0))
    deps.payments.fail_on.clear()
    reconcile(deps)
    assert len([c for c in deps.payments.charges.values() if c.order_id == "o2"]) == 1
    assert deps.orders.orders["o2"].status is OrderStatus.CONFIRMED


def test_a_pending_payment_past_its_limit_is_cancelled_and_its_stock_released(
    deps: CheckoutDeps,
) -> None:
    deps.payments.fail_on["capture"] = down("payments")
    run(deps)
    deps.orders.orders["o1"].created_at = time.time() - 601
    deps.payments.fail_on.clear()
    reconcile(deps)
    assert deps.orders.orders["o1"].status is OrderStatus.CANCELLED
    assert deps.inventory.states() == ["released"]
    assert [c.status for c in deps.payments.charges.values()] == ["voided"]
    assert deps.payments.captured() == [] and deps.orders.cards == {}


def test_a_card_declined_later_cancels_the_order(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    run(deps, DECLINED)
    deps.payments.fail_on.clear()
    reconcile(deps)
    assert deps.orders.orders["o1"].status is OrderStatus.CANCELLED
    assert deps.inventory.states() == ["released"]


def test_a_card_sealed_by_another_key_is_not_opened() -> None:
    sealed = CardVault("one").seal(GOOD)
    assert CardVault("other").open(sealed) is None
    assert CardVault("one").open(sealed[:-8] + "AAAAAAAA") is None


# ---- the web layer: cookie cart, stock cache, shedding ----------------------------------------

@pytest.fixture
def shop(deps: CheckoutDeps) -> Shop:
    board = HealthBoard()
    stock = ShortCache(lambda: deps.inventory.stock_levels(Deadline(1)),  # type: ignore[attr-defined]
                       fresh_for=0, serve_stale_for=60)
    catalog = ShortCache(lambda: deps.orders.products(Deadline(1)),  # type: ignore[attr-defined]
                         fresh_for=0, serve_stale_for=60)
    return Shop(deps, deps.orders, deps.carts, board, Periodic({}, board, 0),  # type: ignore[arg-type]
                stock.get, catalog.get)


def make_app(shop: Shop, **config: object) -> Flask:
    return create_app({"SHOP": shop, "TESTING": True, "SECRET_KEY": "test", **config})


@pytest.fixture
def client(shop: Shop) -> FlaskClient:
    return make_app(shop).test_client()


def api(client: FlaskClient, method: str, path: str, **kwargs):
    return client.open(path, method=method, headers={"X-Cart-Id": CART}, **kwargs)


def test_redis_down_keeps_the_cart_in_a_signed_cookie_and_checkout_works(
    client: FlaskClient, deps: CheckoutDeps,
) -> None:
    deps.carts.fail_load = down("cache")
    added = api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 2})
    assert added.status_code == 200 and added.headers["X-Degraded"] == "cookie_cart"
    assert api(client, "GET", "/api/cart").get_json()["items"] == [{"sku": "A", "qty": 2}]
    paid = client.post("/api/checkout", json={"card": GOOD},
                       headers={"X-Cart-Id": CART, "Idempotency-Key": "k1"})
    assert paid.status_code == 201 and paid.get_json()["status"] == "confirmed"
    assert [c.status for c in deps.payments.charges.values()] == ["captured"]
    assert api(client, "GET", "/api/cart").get_json()["items"] == []  # cookie dropped


def test_a_tampered_cookie_cart_is_ignored(client: FlaskClient, deps: CheckoutDeps) -> None:
    deps.carts.fail_load = down("cache")
    api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 2})
    cookie = client.get_cookie("cart_fallback")
    assert cookie is not None
    client.set_cookie("cart_fallback", cookie.value[:-3] + "AAA")
    assert api(client, "GET", "/api/cart").get_json()["items"] == []


def test_a_cookie_cart_moves_into_redis_when_it_answers_again(
    client: FlaskClient, deps: CheckoutDeps,
) -> None:
    deps.carts.fail_load = down("cache")
    api(client, "POST", "/api/cart/items", json={"sku": "B", "qty": 1})
    deps.carts.fail_load = None
    seen = api(client, "GET", "/api/cart")
    assert seen.get_json()["items"] == [{"sku": "B", "qty": 1}]
    assert "X-Degraded" not in seen.headers
    assert deps.carts.carts[CART] == {"B": 1}
    assert client.get_cookie("cart_fallback") is None


def test_fragile_mode_has_no_cookie_cart(shop: Shop, deps: CheckoutDeps) -> None:
    client = make_app(shop, SAFEGUARDS=SafeguardPolicy.fragile()).test_client()
    deps.carts.fail_load = down("cache")
    assert api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 1}).status_code == 503


def test_payment_pending_answers_201_and_is_marked_degraded(
    client: FlaskClient, deps: CheckoutDeps,
) -> None:
    deps.carts.carts[CART] = {"A": 1}
    deps.payments.fail_on["authorize"] = down("payments")
    paid = client.post("/api/checkout", json={"card": GOOD},
                       headers={"X-Cart-Id": CART, "Idempotency-Key": "k1"})
    assert paid.status_code == 201 and paid.get_json()["status"] == "payment_pending"
    assert paid.headers["X-Degraded"] == "payment_pending"
    page = client.get(f"/orders/{paid.get_json()['order_id']}").get_data(as_text=True)
    assert "you have not been charged yet" in page


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_short_cache_serves_fresh_then_stale_then_fails() -> None:
    clock, answers = Clock(), [{"A": 5}]

    def fetch() -> dict[str, int]:
        if not answers:
            raise down("inventory")
        return answers.pop()

    cache = ShortCache(fetch, fresh_for=5, serve_stale_for=60, clock=clock)
    assert cache.get() == ({"A": 5}, True)
    clock.now += 3
    assert cache.get() == ({"A": 5}, True)  # fresh: no second fetch
    clock.now += 10
    assert cache.get() == ({"A": 5}, False)  # inventory down: last numbers, stale
    clock.now += 60
    with pytest.raises(DependencyUnavailable):
        cache.get()  # too old to show: the failure goes up


def test_product_page_shows_cached_stock_marked_degraded_when_inventory_fails(
    client: FlaskClient, deps: CheckoutDeps,
) -> None:
    fresh = client.get("/products/A")
    assert "Only 10 left" in fresh.get_data(as_text=True) and "X-Degraded" not in fresh.headers
    deps.inventory.fail_on["stock"] = down("inventory")
    listing = api(client, "GET", "/api/products")
    assert listing.status_code == 200 and listing.get_json()[0]["available"] == 10
    assert listing.headers["X-Degraded"] == "stock_cache"


def test_checkouts_beyond_the_slots_are_shed_with_429(shop: Shop, deps: CheckoutDeps) -> None:
    app = make_app(shop, CHECKOUT_SLOTS=1, CHECKOUT_QUEUE_SECONDS=0.05)
    gate = app.extensions["checkout_gate"]
    deps.carts.carts[CART] = {"A": 1}
    release = threading.Event()
    holding = threading.Event()

    def hold_the_slot() -> None:
        with gate.admit():
            holding.set()
            release.wait(5)

    from prometheus_client import REGISTRY

    def graceful() -> float:
        return REGISTRY.get_sample_value("shop_checkout_outcomes_total",
                                         {"outcome": "graceful_error"}) or 0.0

    before = graceful()
    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        assert holding.wait(5)
        shed = app.test_client().post("/api/checkout", json={"card": GOOD},
                                      headers={"X-Cart-Id": CART, "Idempotency-Key": "k1"})
    finally:
        release.set()
        holder.join(5)
    assert shed.status_code == 429 and shed.headers["Retry-After"] == "2"
    assert graceful() == before + 1  # counted, so the shop's metrics agree with shoppers
    assert shed.get_json()["charged"] is False
    assert deps.payments.calls == []
    later = app.test_client().post("/api/checkout", json={"card": GOOD},
                                   headers={"X-Cart-Id": CART, "Idempotency-Key": "k1"})
    assert later.status_code == 201


def test_the_catalog_is_served_from_the_cache_while_the_database_fails(
    client: FlaskClient, deps: CheckoutDeps,
) -> None:
    assert client.get("/").status_code == 200
    deps.orders.fail_on["products"] = down("database")
    page = client.get("/products/A")
    assert page.status_code == 200 and "catalog_cache" in page.headers["X-Degraded"]
    added = api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 1})
    assert added.status_code == 200  # the cart works on the cached catalog
