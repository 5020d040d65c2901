"""payments idempotency and inventory reservations against the real running services."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chaos.stack import Stack
from chaos.vocabulary import GOOD_CARD
from chaos.waiting import eventually
from tests.conftest import service_post

pytestmark = pytest.mark.integration
_TOKEN: list[Stack] = []


@pytest.fixture(autouse=True)
def _services(upstreams: Stack) -> None:
    _TOKEN[:] = [upstreams]


def post(url: str, **kwargs: object) -> httpx.Response:
    """As the shop calls the services: JSON, with the install's token."""
    return service_post(_TOKEN[0], url, **kwargs)


def charge(base: str, key: str, order_id: str, capture: bool = True) -> httpx.Response:
    return post(f"{base}/v1/charges", headers={"Idempotency-Key": key}, timeout=15,
                      json={"order_id": order_id, "amount_cents": 4599, "card": GOOD_CARD,
                            "capture": capture})


def ledger(base: str, **params: str) -> list[dict]:
    return httpx.get(f"{base}/v1/charges", params=params, timeout=5).json()["charges"]


def test_concurrent_double_submit_captures_once(upstreams: Stack) -> None:
    base, key, order_id = upstreams.config.payments_url, uuid.uuid4().hex, uuid.uuid4().hex
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: charge(base, key, order_id), range(16)))
    assert {a.status_code for a in answers} <= {200, 201}
    assert sum(a.status_code == 201 for a in answers) == 1
    assert len({a.json()["charge_id"] for a in answers}) == 1
    charges = ledger(base, idempotency_key=key)
    assert [(c["status"], c["amount_cents"]) for c in charges] == [("captured", 4599)]


def test_same_key_for_a_different_request_is_refused(upstreams: Stack) -> None:
    base, key = upstreams.config.payments_url, uuid.uuid4().hex
    assert charge(base, key, "order-a").status_code == 201
    again = charge(base, key, "order-b")
    assert again.status_code == 422 and again.headers["Content-Type"] == "application/problem+json"
    assert len(ledger(base, idempotency_key=key)) == 1


def test_authorize_capture_void_refund_state_machine(upstreams: Stack) -> None:
    base = upstreams.config.payments_url
    held = charge(base, uuid.uuid4().hex, uuid.uuid4().hex, capture=False).json()
    assert held["status"] == "authorized"
    cid = held["charge_id"]
    assert post(f"{base}/v1/charges/{cid}/refund").status_code == 409  # nothing captured
    assert post(f"{base}/v1/charges/{cid}/capture").json()["status"] == "captured"
    assert post(f"{base}/v1/charges/{cid}/capture").json()["status"] == "captured"
    assert post(f"{base}/v1/charges/{cid}/void").status_code == 409
    assert post(f"{base}/v1/charges/{cid}/refund").json()["status"] == "refunded"


@pytest.mark.parametrize("number,code", [("4000000000000002", "card_declined"),
                                         ("4000000000009995", "insufficient_funds")])
def test_test_cards_decline(upstreams: Stack, number: str, code: str) -> None:
    response = post(
        f"{upstreams.config.payments_url}/v1/charges",
        headers={"Idempotency-Key": uuid.uuid4().hex},
        json={"order_id": "o", "amount_cents": 100, "card": {**GOOD_CARD, "number": number}},
    )
    assert response.status_code == 402 and response.json()["decline_code"] == code


def stock_of(base: str, sku: str) -> dict:
    return next(i for i in httpx.get(f"{base}/v1/stock").json()["items"] if i["sku"] == sku)


def test_reservation_expires_and_frees_its_stock(upstreams: Stack) -> None:
    base, rid = upstreams.config.inventory_url, uuid.uuid4().hex
    before = stock_of(base, "KAYK-001")["available"]
    made = post(f"{base}/v1/reservations", json={
        "reservation_id": rid, "ttl_seconds": 1, "items": [{"sku": "KAYK-001", "qty": 3}]})
    assert made.status_code == 201
    assert stock_of(base, "KAYK-001")["available"] == before - 3
    eventually(lambda: httpx.get(f"{base}/v1/reservations/{rid}").json()["state"] == "expired",
               10, "the reservation expires")
    assert stock_of(base, "KAYK-001")["available"] == before
    late = post(f"{base}/v1/reservations/{rid}/commit")
    assert late.status_code == 409  # an expired reservation cannot become a sale


def test_reservation_commit_takes_stock_and_never_goes_below_zero(upstreams: Stack) -> None:
    base = upstreams.config.inventory_url
    rid = uuid.uuid4().hex
    post(f"{base}/v1/reservations", json={"reservation_id": rid,
                                                 "items": [{"sku": "BIKE-001", "qty": 1}]})
    on_hand = stock_of(base, "BIKE-001")["on_hand"]
    assert post(f"{base}/v1/reservations/{rid}/commit").json()["state"] == "committed"
    assert stock_of(base, "BIKE-001")["on_hand"] == on_hand - 1
    assert post(f"{base}/v1/reservations/{rid}/release").status_code == 409

    available = stock_of(base, "BIKE-001")["available"]
    everything = uuid.uuid4().hex  # hold every remaining bike, in lines of at most 99
    lines = [{"sku": "BIKE-001", "qty": min(99, available - done)}
             for done in range(0, available, 99)]
    assert post(f"{base}/v1/reservations", timeout=30, json={
        "reservation_id": everything, "items": lines}).status_code == 201
    try:
        assert stock_of(base, "BIKE-001")["available"] == 0
        one_more = post(f"{base}/v1/reservations", json={
            "reservation_id": uuid.uuid4().hex, "items": [{"sku": "BIKE-001", "qty": 1}]})
        assert one_more.status_code == 409 and one_more.json()["sku"] == "BIKE-001"
    finally:
        post(f"{base}/v1/reservations/{everything}/release")
    assert stock_of(base, "BIKE-001")["available"] == available


def test_inventory_and_ledger_survive_a_restart(tmp_path) -> None:
    """Both services keep their state in SQLite files: a new process sees the old state."""
    from demo_shop.upstreams import inventory, payments

    config = {"DB_PATH": str(tmp_path / "inventory.sqlite3"), "PROCESSING_MS": 0}
    first = inventory.create_app(config).test_client()
    first.post("/v1/reservations", json={"reservation_id": "r1",
                                         "items": [{"sku": "FIRE-001", "qty": 2}]})
    first.post("/v1/reservations/r1/commit", json={})
    restarted = inventory.create_app(config).test_client()
    stock = {i["sku"]: i for i in restarted.get("/v1/stock").get_json()["items"]}
    assert stock["FIRE-001"]["on_hand"] == 11998  # seeded 12000, not re-seeded on restart
    assert restarted.get("/v1/reservations/r1").get_json()["state"] == "committed"

    ledger = {"DB_PATH": str(tmp_path / "payments.sqlite3"), "PROCESSING_MS": 0,
              "PROCESSING_JITTER_MS": 0, "FINGERPRINT_KEY": "k" * 32}
    payments.create_app(ledger).test_client().post(
        "/v1/charges", headers={"Idempotency-Key": "k1"},
        json={"order_id": "o1", "amount_cents": 500, "card": GOOD_CARD, "capture": True})
    again = payments.create_app(ledger).test_client().post(
        "/v1/charges", headers={"Idempotency-Key": "k1"},
        json={"order_id": "o1", "amount_cents": 500, "card": GOOD_CARD, "capture": True})
    assert again.status_code == 200 and again.get_json()["status"] == "captured"


def test_ledger_keeps_last4_and_a_keyed_fingerprint_only_in_a_private_file(tmp_path) -> None:
    """No CVC and no digest anyone could brute-force from the card: two installs with their
    own keys fingerprint one card differently, and the ledger file is the owner's alone."""
    import sqlite3
    import stat

    from demo_shop.upstreams import payments

    rows = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.sqlite3"
        app = payments.create_app({"DB_PATH": str(path), "PROCESSING_MS": 0,
                                   "PROCESSING_JITTER_MS": 0, "FINGERPRINT_KEY": name * 16})
        placed = app.test_client().post(
            "/v1/charges", headers={"Idempotency-Key": "k1"},
            json={"order_id": "o1", "amount_cents": 500, "card": GOOD_CARD})
        assert placed.status_code == 201
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        rows.append(dict(conn.execute("SELECT * FROM charges").fetchone()))
        conn.close()
    assert rows[0]["card_last4"] == GOOD_CARD["number"][-4:]
    assert rows[0]["card_fingerprint"] != rows[1]["card_fingerprint"]
    for row in rows:
        stored = " ".join(str(v) for v in row.values())
        assert GOOD_CARD["cvc"] not in stored.split() and GOOD_CARD["number"] not in stored


@pytest.mark.parametrize("card", [
    {**GOOD_CARD, "number": "²" * 16}, {**GOOD_CARD, "exp_month": "²"},
    {**GOOD_CARD, "cvc": "\uff11\uff12\uff13"}, {**GOOD_CARD, "number": 4242424242424242}, "4242",
])
def test_payments_answers_a_malformed_card_400_never_500(tmp_path, card: object) -> None:
    from demo_shop.upstreams import payments

    app = payments.create_app({"DB_PATH": str(tmp_path / "p.sqlite3"), "PROCESSING_MS": 0,
                               "FINGERPRINT_KEY": "k" * 32})
    answer = app.test_client().post("/v1/charges", headers={"Idempotency-Key": "k1"},
                                    json={"order_id": "o1", "amount_cents": 5, "card": card})
    assert answer.status_code == 400 and answer.json["title"].startswith("card")


def test_a_stored_card_is_charged_without_cvc_only_when_merchant_initiated(tmp_path) -> None:
    from demo_shop.upstreams import payments

    app = payments.create_app({"DB_PATH": str(tmp_path / "p.sqlite3"), "PROCESSING_MS": 0,
                               "FINGERPRINT_KEY": "k" * 32}).test_client()
    stored = {k: v for k, v in GOOD_CARD.items() if k != "cvc"}
    body = {"order_id": "o1", "amount_cents": 5, "card": stored}
    assert app.post("/v1/charges", headers={"Idempotency-Key": "k1"},
                    json=body).status_code == 400
    assert app.post("/v1/charges", headers={"Idempotency-Key": "k1"},
                    json={**body, "merchant_initiated": True}).status_code == 201
