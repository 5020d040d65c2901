"""The shop's HTTP layer with fake adapters: the API contract and bad input, never a 500."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from demo_shop.app import create_app
from demo_shop.checkout import CheckoutDeps
from demo_shop.health import HealthBoard, Periodic
from demo_shop.wiring import Shop

from .fakes import FakeCarts, FakeInventory, FakeOrders, FakePayments, down

CART = "0" * 32
GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


@pytest.fixture
def shop() -> Shop:
    deps = CheckoutDeps(carts=FakeCarts(), orders=FakeOrders(), payments=FakePayments(),
                        inventory=FakeInventory())
    board = HealthBoard()
    return Shop(deps, deps.orders, deps.carts, board, Periodic({}, board, 0))  # type: ignore[arg-type]


@pytest.fixture
def app(shop: Shop) -> Flask:
    return create_app({"SHOP": shop, "TESTING": True, "SECRET_KEY": "test"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def api(client: FlaskClient, method: str, path: str, **kwargs):
    headers = {"X-Cart-Id": CART, **kwargs.pop("headers", {})}
    return client.open(path, method=method, headers=headers, **kwargs)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["request_id"]
    assert response.headers["X-Request-ID"] == body["request_id"]
    return body


def test_products_list_has_sale_prices(client: FlaskClient) -> None:
    body = api(client, "GET", "/api/products").get_json()
    assert body[0] == {"sku": "A", "name": "Product A", "price_cents": 2000,
                       "sale_price_cents": 1000, "available": None}


def test_cart_add_and_checkout_through_the_api(client: FlaskClient, shop: Shop) -> None:
    added = api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 2})
    assert added.get_json() == {"cart_id": CART, "items": [{"sku": "A", "qty": 2}],
                                "total_cents": 2000}
    placed = api(client, "POST", "/api/checkout", json={"card": GOOD},
                 headers={"Idempotency-Key": "k-1"})
    assert placed.status_code == 201
    order = placed.get_json()
    assert order["status"] == "confirmed" and order["total_cents"] == 2000
    again = api(client, "GET", f"/api/orders/{order['order_id']}").get_json()
    assert again["items"] == [{"sku": "A", "qty": 2}]


def test_new_cart_gets_a_cookie(client: FlaskClient) -> None:
    response = client.get("/api/cart")
    assert re.search(r"cart_id=[0-9a-f]{32}", response.headers["Set-Cookie"])


@pytest.mark.parametrize("body,status", [
    ({"sku": "NOPE", "qty": 1}, 404),
    ({"sku": "A", "qty": 0}, 400),
    ({"sku": "A", "qty": 100}, 400),
    ({"sku": "A", "qty": "two"}, 400),
    ({"sku": "", "qty": 1}, 400),
    ([1, 2], 400),
])
def test_bad_cart_input_gets_a_problem(client: FlaskClient, body: object, status: int) -> None:
    assert_problem(api(client, "POST", "/api/cart/items", json=body), status)


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = api(client, "POST", "/api/cart/items", data="{not json",
                   content_type="application/json")
    assert "not valid JSON" in assert_problem(response, 400)["detail"]


def test_body_over_the_limit_is_413(client: FlaskClient) -> None:
    response = api(client, "POST", "/api/cart/items", data="x" * 70_000,
                   content_type="application/json")
    assert_problem(response, 413)


def test_checkout_without_idempotency_key_is_400(client: FlaskClient) -> None:
    body = assert_problem(api(client, "POST", "/api/checkout", json={"card": GOOD}), 400)
    assert "Idempotency-Key" in body["detail"]


def test_checkout_of_empty_cart_is_400(client: FlaskClient) -> None:
    response = api(client, "POST", "/api/checkout", json={"card": GOOD},
                   headers={"Idempotency-Key": "k-2"})
    assert_problem(response, 400)


def test_unknown_order_is_404_problem(client: FlaskClient) -> None:
    assert_problem(api(client, "GET", "/api/orders/nope"), 404)


def test_dependency_down_is_503_with_retry_after_and_honest_flags(
    client: FlaskClient, shop: Shop
) -> None:
    api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 1})
    shop.deps.payments.fail_on["authorize"] = down("payments")  # type: ignore[attr-defined]
    response = api(client, "POST", "/api/checkout", json={"card": GOOD},
                   headers={"Idempotency-Key": "k-3"})
    body = assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert body["charged"] is False and body["cart_saved"] is True
    assert "payments" in body["type"]


def test_declined_is_402_problem(client: FlaskClient) -> None:
    api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 1})
    response = api(client, "POST", "/api/checkout",
                   json={"card": {**GOOD, "number": "4000000000000002"}},
                   headers={"Idempotency-Key": "k-4"})
    assert_problem(response, 402)


def test_html_page_with_database_down_is_the_sorry_page(client: FlaskClient, shop: Shop) -> None:
    shop.orders.fail_on["products"] = down("database")  # type: ignore[attr-defined]
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    html = response.get_data(as_text=True)
    assert 'id="sorry"' in html and response.headers["X-Request-ID"] in html
    assert "Your cart is saved" in html and 'href="/status"' in html
    assert "charged" not in html  # no payment was involved: nothing is said about one


def test_form_post_without_csrf_token_is_a_friendly_400(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    response = app.test_client().post("/cart/add", data={"sku": "A", "qty": "1"})
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


@pytest.mark.parametrize("qty", ["", "0", "abc", "100", "-5"])
def test_garbage_form_quantities_are_400_not_500(app: Flask, qty: str) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    response = app.test_client().post("/cart/add", data={"sku": "A", "qty": qty})
    assert response.status_code == 400
    assert 'id="sorry"' in response.get_data(as_text=True)


def test_unexpected_bug_is_a_branded_500_without_traceback(client: FlaskClient, shop: Shop) -> None:
    shop.orders.fail_on["products"] = RuntimeError("boom in /srv/app.py")  # type: ignore[attr-defined]
    response = client.get("/api/products")
    body = assert_problem(response, 500)
    assert "boom" not in response.get_data(as_text=True) and "RuntimeError" not in str(body)


def test_request_id_is_echoed_when_safe_and_replaced_when_not(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abcdef123456"}).headers[
        "X-Request-ID"] == "abcdef123456"
    replaced = client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


def test_status_names_a_failing_dependency_and_the_banner_shows(
    client: FlaskClient, shop: Shop
) -> None:
    for _ in range(3):
        shop.board.record("payments", ok=False, duration=0.01)
    body = client.get("/api/status").get_json()
    assert body["overall"] == "major_outage"
    assert body["dependencies"]["payments"]["state"] == "down"
    page = client.get("/status").get_data(as_text=True)
    assert 'id="site-banner"' in page and "Card payments are not going through" in page


def test_metrics_endpoint_counts_checkout_outcomes(client: FlaskClient) -> None:
    api(client, "POST", "/api/cart/items", json={"sku": "A", "qty": 1})
    api(client, "POST", "/api/checkout", json={"card": GOOD}, headers={"Idempotency-Key": "k-9"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'shop_checkout_outcomes_total{outcome="success"}' in text
    assert "shop_http_requests_total" in text
