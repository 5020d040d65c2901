"""The ledger audit against real stores, with each kind of violation planted in them."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from chaos.audit import run_audit
from chaos.stack import Stack

pytestmark = pytest.mark.integration
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def plant_order(stack: Stack, status: str, *, charge_id: str | None = None,
                stock_committed: bool = False, reservation_id: str | None = None,
                created_ago: float = 0.0) -> str:
    order_id = uuid.uuid4().hex
    with psycopg.connect(stack.config.direct_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, idempotency_key, cart_id, status, total_cents, "
            "reservation_id, charge_id, stock_committed, created_at) VALUES (%s, %s, 'c', %s, "
            "1199, %s, %s, %s, now() - make_interval(secs => %s))",
            (order_id, f"key-{order_id}", status, reservation_id, charge_id, stock_committed,
             created_ago))
    return order_id


def capture(stack: Stack, order_id: str, key: str | None = None) -> str:
    response = httpx.post(f"{stack.config.payments_url}/v1/charges",
                          headers={"Idempotency-Key": key or uuid.uuid4().hex},
                          json={"order_id": order_id, "amount_cents": 1199, "card": CARD,
                                "capture": True}, timeout=10)
    return str(response.json()["charge_id"])


def reserve(stack: Stack, reservation_id: str) -> None:
    httpx.post(f"{stack.config.inventory_url}/v1/reservations", json={
        "reservation_id": reservation_id, "items": [{"sku": "LAMP-001", "qty": 1}]})


def audit(stack: Stack, since: float, evidence: list[dict] | None = None):
    return run_audit(evidence or [], stack.config.direct_database_url,
                     stack.config.payments_url, stack.config.inventory_url, since=since)


def rules(result) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for v in result.violations:
        found.setdefault(v.rule, []).append(v.ids)
    return found


def test_every_kind_of_violation_is_reported_with_its_ids(stack: Stack) -> None:
    since = time.time()  # only what this test plants
    # A shopper told "confirmed" about an order that does not exist.
    ghost = {"status": 201, "order_status": "confirmed", "idempotency_key": "ghost-key",
             "order_id": "ghost", "total_cents": 1199}
    # Money captured for an order that failed: an orphan charge.
    failed = plant_order(stack, "failed")
    orphan = capture(stack, failed)
    # Two captured charges for one confirmed order: a double charge.
    paid = plant_order(stack, "confirmed", stock_committed=True)
    first = capture(stack, paid)
    plant_charge_link(stack, paid, first)
    capture(stack, paid)
    # A declined order that still holds its stock.
    declined = plant_order(stack, "declined")
    reserve(stack, f"{declined}-1")
    # A paid order whose stock was never committed; an order left unresolved.
    uncommitted = plant_order(stack, "confirmed", charge_id="ch_x")
    unresolved = plant_order(stack, "payment_unknown")
    # A reservation whose checkout failed before its order was written.
    stray = f"{uuid.uuid4().hex}-1"
    reserve(stack, stray)
    # Orders accepted as payment_pending: one past its limit, one never settled, one the
    # shopper was told about that is not stored at all.
    overdue = plant_order(stack, "payment_pending", created_ago=30)
    waiting = plant_order(stack, "payment_pending")
    lost_pending = {"status": 201, "order_status": "payment_pending",
                    "idempotency_key": "lost-key", "order_id": "lost", "total_cents": 1199}

    found = rules(run_audit([ghost, lost_pending], stack.config.direct_database_url,
                            stack.config.payments_url, stack.config.inventory_url,
                            since=since - 60, pending_limit_seconds=20))
    assert {"order_id": "ghost", "idempotency_key": "ghost-key"} in found[
        "confirmed order missing"]
    assert {"charge_id": orphan, "order_id": failed} in found["orphan charge"]
    assert any(ids["order_id"] == paid for ids in found["double charge"])
    assert {"order_id": declined, "reservation_id": f"{declined}-1"} in found[
        "reservation not released"]
    assert {"reservation_id": stray} in found["reservation not released"]
    assert {"order_id": uncommitted} in found["stock not committed"]
    assert {"order_id": unresolved} in found["order left unresolved"]
    assert {"order_id": overdue} in found["payment pending too long"]
    assert {"order_id": waiting} in found["payment pending not settled"]
    assert {"order_id": "lost", "idempotency_key": "lost-key"} in found["pending order missing"]


def plant_charge_link(stack: Stack, order_id: str, charge_id: str) -> None:
    with psycopg.connect(stack.config.direct_database_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET charge_id = %s WHERE order_id = %s",
                     (charge_id, order_id))


def test_a_consistent_ledger_is_clean(stack: Stack) -> None:
    since = time.time()  # only what this test plants
    order_id = uuid.uuid4().hex
    reservation = f"{order_id}-1"
    reserve(stack, reservation)
    httpx.post(f"{stack.config.inventory_url}/v1/reservations/{reservation}/commit")
    charge = capture(stack, order_id)
    with psycopg.connect(stack.config.direct_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, idempotency_key, cart_id, status, total_cents, "
            "reservation_id, charge_id, stock_committed) VALUES (%s, %s, 'c', 'confirmed', "
            "1199, %s, %s, true)", (order_id, f"key-{order_id}", reservation, charge))
    told = {"status": 201, "order_status": "confirmed", "idempotency_key": f"key-{order_id}",
            "order_id": order_id, "total_cents": 1199}
    result = audit(stack, since, [told])
    assert result.clean, result.violations
    assert result.told_confirmed == 1 and result.charges >= 1


def test_a_charge_taken_now_for_an_order_made_before_the_window_is_not_an_orphan(
    stack: Stack,
) -> None:
    """A payment taken after recovery for an order accepted (payment pending) earlier."""
    order_id = plant_order(stack, "confirmed", stock_committed=True, created_ago=120)
    since = time.time()
    charge = capture(stack, order_id)
    plant_charge_link(stack, order_id, charge)
    found = rules(audit(stack, since))
    assert not any(ids.get("charge_id") == charge for ids in found.get("orphan charge", []))
