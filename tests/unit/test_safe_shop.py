"""The shop as a security reviewer reads it and an outside API client tries it: secrets,
card data, idempotency scope, cart names, input that must never be a 500 (issue 14)."""

from __future__ import annotations

import itertools
import json
import stat
from dataclasses import astuple
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from chaos.stack.secrets import Secrets
from demo_shop.app import create_app
from demo_shop.cards import InvalidCard, validate_card
from demo_shop.checkout import CheckoutDeps, IdempotencyKeyReused, checkout
from demo_shop.config import InsecureSettings
from demo_shop.health import HealthBoard, Periodic
from demo_shop.metrics import HTTP_REQUESTS
from demo_shop.resilience import Deadline
from demo_shop.web.schemas import CardIn, CheckoutIn
from demo_shop.wiring import Shop

from .fakes import FakeCarts, FakeInventory, FakeOrders, FakePayments, down

GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
CART, OTHER_CART = "0" * 32, "1" * 32


@pytest.fixture
def deps() -> CheckoutDeps:
    ids = itertools.count(1)
    return CheckoutDeps(carts=FakeCarts({CART: {"A": 2}, OTHER_CART: {"B": 1}}),
                        orders=FakeOrders(), payments=FakePayments(),
                        inventory=FakeInventory(), new_id=lambda: f"o{next(ids)}")


@pytest.fixture
def app(deps: CheckoutDeps) -> Flask:
    board = HealthBoard()
    shop = Shop(deps, deps.orders, deps.carts, board, Periodic({}, board, 0))  # type: ignore[arg-type]
    return create_app({"SHOP": shop, "TESTING": True, "SECRET_KEY": "test"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def pay(client: FlaskClient, card: object = GOOD, cart: str = CART, key: str = "k1"):
    return client.post("/api/checkout", json={"card": card},
                       headers={"X-Cart-Id": cart, "Idempotency-Key": key})


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    return response.get_json()


# ---- 1. secrets ---------------------------------------------------------------------------

def test_secrets_are_made_once_per_install_private_and_reused(tmp_path: Path) -> None:
    first = Secrets.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert Secrets.load_or_create(tmp_path) == first
    assert Secrets.load_or_create(tmp_path / "other") != first
    assert len(set(astuple(first))) == 6  # no key does two jobs


def test_a_secrets_file_from_before_the_admin_token_gets_one_and_keeps_the_rest(
        tmp_path: Path) -> None:
    first = Secrets.load_or_create(tmp_path)
    path = tmp_path / "secrets.json"
    old = json.loads(path.read_text())
    del old["admin_token"]
    path.write_text(json.dumps(old))
    upgraded = Secrets.load_or_create(tmp_path)
    assert upgraded.postgres_password == first.postgres_password
    assert len(upgraded.admin_token) >= 32 and upgraded.admin_token != first.admin_token
    assert Secrets.load_or_create(tmp_path) == upgraded  # written back, not made again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("secret,vault", [
    ("dev-only-secret-change-me", "v" * 40), ("", "v" * 40), ("s" * 40, "short"),
    ("s" * 40, "s" * 40),
])
def test_the_shop_refuses_a_known_default_or_shared_secret_outside_tests(
        deps: CheckoutDeps, secret: str, vault: str) -> None:
    board = HealthBoard()
    shop = Shop(deps, deps.orders, deps.carts, board, Periodic({}, board, 0))  # type: ignore[arg-type]
    with pytest.raises(InsecureSettings, match="SHOP_"):
        create_app({"SHOP": shop, "SECRET_KEY": secret, "VAULT_KEY": vault})
    create_app({"SHOP": shop, "SECRET_KEY": "s" * 40, "VAULT_KEY": "v" * 40})


# ---- 2. card data -------------------------------------------------------------------------

@pytest.mark.parametrize("card,field", [
    ({**GOOD, "number": "4242424242424241"}, "card.number"),  # Luhn
    ({**GOOD, "number": "²" * 16}, "card.number"),  # a digit to str.isdigit, not to int
    ({**GOOD, "exp_year": 2001}, "card.exp_year"),  # expired
    ({**GOOD, "exp_month": 13}, "card.exp_month"),
    ({**GOOD, "cvc": "12"}, "card.cvc"),
    ({**GOOD, "cvc": "\uff11\uff12\uff13"}, "card.cvc"),
    ({k: v for k, v in GOOD.items() if k != "cvc"}, "card.cvc"),
    ("4242424242424242", "card"),
])
def test_a_malformed_card_is_400_naming_the_field_before_any_dependency(
        client: FlaskClient, deps: CheckoutDeps, card: object, field: str) -> None:
    body = problem(pay(client, card), 400)
    assert body["field"] == field
    # Never an order, never a hold on stock, never a call to payments, never an outage.
    assert deps.orders.orders == {} and deps.inventory.states() == []
    assert deps.payments.calls == []
    assert client.get("/api/status").get_json()["overall"] == "operational"


def test_validate_card_takes_spaces_and_strings_of_digits_from_forms() -> None:
    card = validate_card({"number": "4242 4242 4242 4242", "exp_month": "12",
                          "exp_year": "2030", "cvc": "123"})
    assert card == GOOD
    with pytest.raises(InvalidCard):
        validate_card({**GOOD, "exp_month": True})


def test_a_card_the_processor_refuses_is_the_shoppers_problem(
        client: FlaskClient, deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = InvalidCard("card", "the processor did not take it")
    body = problem(pay(client), 400)
    assert body["charged"] is False and body["field"] == "card"
    assert deps.inventory.states() == ["released"]  # the hold is given back at once
    assert client.get("/api/status").get_json()["overall"] == "operational"


# ---- 3. idempotency keys bound to cart and body ------------------------------------------

def test_another_carts_key_is_refused_never_replayed(client: FlaskClient,
                                                     deps: CheckoutDeps) -> None:
    first = pay(client)
    assert first.status_code == 201
    problem(pay(client, cart=OTHER_CART), 422)
    # The same cart and card again: the same order, nothing charged twice.
    again = pay(client)
    assert again.status_code == 201
    assert again.get_json()["order_id"] == first.get_json()["order_id"]
    assert len(deps.payments.charges) == 1


def test_a_failed_orders_key_does_not_charge_another_card_for_its_items(
        deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    with pytest.raises(Exception):  # noqa: B017 - the first attempt fails (no fallback)
        checkout(deps, CART, "k1", GOOD, Deadline(5.0))
    deps.payments.fail_on.clear()
    other_card = {**GOOD, "number": "5555555555554444"}
    with pytest.raises(IdempotencyKeyReused):
        checkout(deps, CART, "k1", other_card, Deadline(5.0))
    assert deps.payments.calls == ["authorize"]  # only the first, failed attempt


# ---- 5. carts for API clients -------------------------------------------------------------

@pytest.mark.parametrize("cart_id", ["nothex", "0" * 31, "A" * 32, "0" * 32 + "0", ""])
def test_an_invalid_cart_id_header_is_400_saying_the_format(client: FlaskClient,
                                                            cart_id: str) -> None:
    answer = client.post("/api/cart/items", json={"sku": "A", "qty": 1},
                         headers={"X-Cart-Id": cart_id})
    assert problem(answer, 400)["field"] == "X-Cart-Id"


def test_while_redis_is_down_a_header_only_client_keeps_its_cart_in_the_token(
        client: FlaskClient, deps: CheckoutDeps) -> None:
    fresh = "2" * 32
    deps.carts.fail_load = down("cache")
    # A client that keeps no cookies: the documented X-Cart-Token, nothing else.
    client._cookies.clear()  # type: ignore[attr-defined]
    added = client.post("/api/cart/items", json={"sku": "A", "qty": 2},
                        headers={"X-Cart-Id": fresh})
    token = added.headers["X-Cart-Token"]
    assert added.status_code == 200 and token
    client._cookies.clear()  # type: ignore[attr-defined]
    paid = client.post("/api/checkout", json={"card": GOOD},
                       headers={"X-Cart-Id": fresh, "X-Cart-Token": token,
                                "Idempotency-Key": "k9"})
    assert paid.status_code == 201 and paid.get_json()["total_cents"] == 2000
    assert paid.headers["X-Cart-Token"] == ""  # ordered: forget the token


def test_a_forged_cart_token_is_ignored(client: FlaskClient, deps: CheckoutDeps) -> None:
    deps.carts.fail_load = down("cache")
    client._cookies.clear()  # type: ignore[attr-defined]
    answer = client.get("/api/cart", headers={"X-Cart-Id": "3" * 32,
                                              "X-Cart-Token": "eyJ9.forged"})
    assert answer.status_code == 200 and answer.get_json()["items"] == []


# ---- 6/7. input that must never be a 500, bounded labels, the document --------------------

def test_deeply_nested_json_is_400_not_500(client: FlaskClient) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    answer = client.post("/api/cart/items", data=deep, content_type="application/json",
                         headers={"X-Cart-Id": CART})
    assert problem(answer, 400)["detail"] == "the body is not valid JSON"


@pytest.mark.parametrize("form", [
    {"qty": "²", "sku": "A"}, {"qty": "\u0663", "sku": "A"}, {"qty": "9" * 400, "sku": "A"},
])
def test_unicode_digits_in_a_form_are_400_not_500(app: Flask, form: dict) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    answer = app.test_client().post("/cart/add", data=form)
    assert answer.status_code == 400 and b"Traceback" not in answer.data


def test_the_checkout_form_shows_a_card_typo_again_with_its_field(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    client.set_cookie("cart_id", CART)
    answer = client.post("/checkout", data={
        "idempotency_key": "a" * 32, "card_number": "4242 4242 4242 4241",
        "exp_month": "12", "exp_year": "2030", "cvc": "123"})
    assert answer.status_code == 400
    assert b"card number is not valid" in answer.data and b"<form" in answer.data


def test_a_client_made_method_is_not_a_new_metric_series(client: FlaskClient) -> None:
    client.open("/api/products", method="BREW")
    client.open("/api/products", method="PROPFIND")
    methods = {s.labels["method"] for m in HTTP_REQUESTS.collect() for s in m.samples}
    assert "BREW" not in methods and "PROPFIND" not in methods and "other" in methods


def test_the_openapi_document_is_made_from_the_validating_models(client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    checkout_op = doc["paths"]["/api/checkout"]["post"]
    headers = {p["name"] for p in checkout_op["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Cart-Id", "X-Cart-Token"} <= headers
    assert set(checkout_op["responses"]) >= {"201", "400", "402", "409", "422", "503"}
    assert (checkout_op["responses"]["400"]["content"]["application/problem+json"]
            ["schema"]["required"]) == ["type", "title", "status", "detail", "request_id"]
    schemas = doc["components"]["schemas"]
    body_ref = checkout_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body_ref.endswith("/CheckoutIn")
    assert schemas["CardIn"]["properties"] == CardIn.model_json_schema()["properties"]
    assert schemas["CheckoutIn"]["additionalProperties"] is False
    assert CheckoutIn.model_config["strict"] is True
