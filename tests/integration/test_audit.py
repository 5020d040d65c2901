"""The ledger audit against real stores: each check shown to fire on a violation planted in
the real PostgreSQL, payments ledger and inventory, and to stay quiet on a consistent one.

Plants that every later audit would see (a hold past its limit, stock that does not add
up) are undone at the end of their test, so no test depends on another's leftovers.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest

from chaos.audit import AuditResult, run_audit, stack_sources
from chaos.stack import Stack
from chaos.waiting import eventually
from tests.conftest import service_post

pytestmark = pytest.mark.integration
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


def plant_order(ledgers: Stack, status: str, *, charge_id: str | None = None,
                stock_committed: bool = False, reservation_id: str | None = None,
                created_ago: float = 0.0, total_cents: int = 1199) -> str:
    order_id = uuid.uuid4().hex
    with psycopg.connect(ledgers.config.direct_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, idempotency_key, cart_id, status, total_cents, "
            "reservation_id, charge_id, stock_committed, created_at) VALUES (%s, %s, 'c', %s, "
            "%s, %s, %s, %s, now() - make_interval(secs => %s))",
            (order_id, f"key-{order_id}", status, total_cents, reservation_id, charge_id,
             stock_committed, created_ago))
    return order_id


def charge(ledgers: Stack, order_id: str, *, capture: bool = True, amount: int = 1199) -> str:
    response = service_post(ledgers, f"{ledgers.config.payments_url}/v1/charges",
                          headers={"Idempotency-Key": uuid.uuid4().hex},
                          json={"order_id": order_id, "amount_cents": amount, "card": CARD,
                                "capture": capture}, timeout=10)
    return str(response.json()["charge_id"])


def move(ledgers: Stack, charge_id: str, operation: str) -> None:
    service_post(ledgers, f"{ledgers.config.payments_url}/v1/charges/{charge_id}/{operation}",
                 timeout=10)


def reserve(ledgers: Stack, reservation_id: str, ttl: float = 900) -> None:
    service_post(ledgers, f"{ledgers.config.inventory_url}/v1/reservations", json={
        "reservation_id": reservation_id, "ttl_seconds": ttl,
        "items": [{"sku": "LAMP-001", "qty": 1}]}, timeout=10)


def finish(ledgers: Stack, reservation_id: str, target: str) -> None:
    service_post(ledgers,
                 f"{ledgers.config.inventory_url}/v1/reservations/{reservation_id}/{target}",
                 timeout=10)


def audit(ledgers: Stack, since: float, evidence: list[dict[str, Any]] | None = None,
          pending_limit: float = 600.0) -> AuditResult:
    return run_audit(evidence or [], stack_sources(ledgers.config), since=since,
                     pending_limit_seconds=pending_limit)


def rules(result: AuditResult) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for v in result.violations:
        found.setdefault(v.rule, []).append(v.ids)
    return found


@contextmanager
def sqlite(ledgers: Stack, name: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(ledgers.run_dir / f"{name}.sqlite3", timeout=10)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


# ---- promises ---------------------------------------------------------------------------------

def test_orders_told_to_shoppers_must_exist_as_told(ledgers: Stack) -> None:
    since = time.time()
    ghost = {"status": 201, "order_status": "confirmed", "idempotency_key": "ghost-key",
             "order_id": "ghost", "total_cents": 1199}
    lost_pending = {"status": 201, "order_status": "payment_pending",
                    "idempotency_key": "lost-key", "order_id": "lost", "total_cents": 1199}
    failed = plant_order(ledgers, "failed")
    told_failed = {"status": 201, "order_status": "confirmed", "order_id": failed,
                   "idempotency_key": f"key-{failed}", "total_cents": 1199}
    cheaper = plant_order(ledgers, "payment_pending")
    told_cheaper = {"status": 201, "order_status": "payment_pending", "order_id": cheaper,
                    "idempotency_key": f"key-{cheaper}", "total_cents": 999}
    found = rules(audit(ledgers, since, [ghost, lost_pending, told_failed, told_cheaper]))
    assert {"order_id": "ghost", "idempotency_key": "ghost-key"} in found[
        "confirmed order missing"]
    assert {"order_id": "lost", "idempotency_key": "lost-key"} in found["pending order missing"]
    assert {"order_id": failed, "idempotency_key": f"key-{failed}"} in found[
        "confirmed order not confirmed"]
    assert {"order_id": cheaper, "idempotency_key": f"key-{cheaper}"} in found["amount differs"]


def test_not_charged_means_no_capture_for_the_key(ledgers: Stack) -> None:
    since = time.time()
    lied = plant_order(ledgers, "failed")
    captured = charge(ledgers, lied)
    honest = plant_order(ledgers, "failed")
    retried = plant_order(ledgers, "confirmed")  # not charged at first, then paid on a retry
    evidence = [
        {"ts": 1, "status": 503, "charged": False, "idempotency_key": f"key-{lied}"},
        {"ts": 2, "status": 503, "charged": False, "idempotency_key": f"key-{honest}"},
        {"ts": 3, "status": 503, "charged": False, "idempotency_key": f"key-{retried}"},
        {"ts": 4, "status": 201, "order_status": "confirmed", "charged": True,
         "idempotency_key": f"key-{retried}", "order_id": retried},
    ]
    charge(ledgers, retried)
    result = audit(ledgers, since, evidence)
    found = rules(result)
    assert found["told not charged but captured"] == [
        {"idempotency_key": f"key-{lied}", "order_id": lied, "charge_id": captured}]
    assert result.told_not_charged == 2


# ---- money ------------------------------------------------------------------------------------

def test_each_confirmed_order_has_exactly_one_capture_of_its_total(ledgers: Stack) -> None:
    since = time.time()
    unpaid = plant_order(ledgers, "confirmed")
    twice = plant_order(ledgers, "confirmed")
    first, second = charge(ledgers, twice), charge(ledgers, twice)
    wrong = plant_order(ledgers, "confirmed", total_cents=1199)
    short = charge(ledgers, wrong, amount=999)
    found = rules(audit(ledgers, since))
    assert {"order_id": unpaid} in found["confirmed order not captured"]
    assert {"order_id": twice, "charge_ids": f"{first},{second}"} in found["double charge"]
    assert {"order_id": wrong, "charge_id": short} in found["charge amount differs"]


def test_a_capture_without_a_confirmed_order_is_an_orphan(ledgers: Stack) -> None:
    since = time.time()
    failed = plant_order(ledgers, "failed")
    orphan = charge(ledgers, failed)
    nowhere = charge(ledgers, "no-such-order")
    found = rules(audit(ledgers, since))
    assert {"charge_id": orphan, "order_id": failed} in found["orphan charge"]
    assert {"charge_id": nowhere, "order_id": "no-such-order"} in found["orphan charge"]


def test_refunds_and_voids_belong_to_orders_that_ended(ledgers: Stack) -> None:
    since = time.time()
    live = plant_order(ledgers, "confirmed")
    refunded = charge(ledgers, live)
    move(ledgers, refunded, "refund")
    pending = plant_order(ledgers, "payment_pending")
    voided = charge(ledgers, pending, capture=False)
    move(ledgers, voided, "void")
    cancelled = plant_order(ledgers, "cancelled")
    fine = charge(ledgers, cancelled, capture=False)
    move(ledgers, fine, "void")
    found = rules(audit(ledgers, since))
    assert {"charge_id": refunded, "order_id": live} in found["refund or void of a live order"]
    assert {"charge_id": voided, "order_id": pending} in found["refund or void of a live order"]
    assert not any(ids["charge_id"] == fine for ids in found["refund or void of a live order"])


def test_an_earlier_attempts_refund_on_a_retried_order_is_not_a_live_refund(
        ledgers: Stack) -> None:
    """A shopper retried a failed order (its first charge given back): the confirmed order
    stands on its second charge. Its own charge refunded is still a violation."""
    since = time.time()
    retried = plant_order(ledgers, "confirmed", stock_committed=True)
    first = charge(ledgers, retried)
    move(ledgers, first, "refund")
    second = charge(ledgers, retried)
    broken = plant_order(ledgers, "confirmed", stock_committed=True)
    own = charge(ledgers, broken)
    move(ledgers, own, "refund")
    with psycopg.connect(ledgers.config.direct_database_url, autocommit=True) as conn:
        conn.execute("UPDATE orders SET charge_id = %s WHERE order_id = %s", (second, retried))
        conn.execute("UPDATE orders SET charge_id = %s WHERE order_id = %s", (own, broken))
    found = rules(audit(ledgers, since)).get("refund or void of a live order", [])
    assert {"charge_id": own, "order_id": broken} in found
    assert not any(ids["order_id"] == retried for ids in found)


def test_no_hold_outlives_its_order_or_the_pending_limit(ledgers: Stack) -> None:
    since = time.time()
    failed = plant_order(ledgers, "failed")
    left = charge(ledgers, failed, capture=False)
    waiting = plant_order(ledgers, "payment_pending")
    kept = charge(ledgers, waiting, capture=False)  # a payment_pending order may hold
    old = charge(ledgers, waiting, capture=False)
    with sqlite(ledgers, "payments") as conn:
        conn.execute("UPDATE charges SET created_at = created_at - 60 WHERE charge_id = ?",
                     (old,))
    try:
        found = rules(audit(ledgers, since - 120, pending_limit=30))
    finally:
        for charge_id in (left, kept, old):
            move(ledgers, charge_id, "void")
    assert {"charge_id": left, "order_id": failed} in found["hold left open"]
    assert {"charge_id": old, "order_id": waiting} in found["hold past its limit"]
    assert not any(ids["charge_id"] == kept for rule in found.values() for ids in rule
                   if "charge_id" in ids)


# ---- stock ------------------------------------------------------------------------------------

def test_a_confirmed_orders_stock_is_committed_in_inventorys_own_records(ledgers: Stack) -> None:
    since = time.time()
    order_id = uuid.uuid4().hex
    reserve(ledgers, f"{order_id}-1")
    # The shop's own column says committed; inventory says the hold is still active.
    with psycopg.connect(ledgers.config.direct_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, idempotency_key, cart_id, status, total_cents, "
            "reservation_id, stock_committed) VALUES (%s, %s, 'c', 'confirmed', 1199, %s, "
            "true)", (order_id, f"key-{order_id}", f"{order_id}-1"))
    charge(ledgers, order_id)
    try:
        found = rules(audit(ledgers, since))
    finally:
        finish(ledgers, f"{order_id}-1", "release")
    assert {"order_id": order_id, "reservation_id": f"{order_id}-1"} in found[
        "reservation not committed"]


def test_failed_orders_stock_is_released_by_the_shop_not_by_expiry(ledgers: Stack) -> None:
    since = time.time()
    held = plant_order(ledgers, "declined")
    reserve(ledgers, f"{held}-1")
    expired = plant_order(ledgers, "failed")
    reserve(ledgers, f"{expired}-1", ttl=0.5)
    released = plant_order(ledgers, "failed")
    reserve(ledgers, f"{released}-1")
    finish(ledgers, f"{released}-1", "release")
    stray = f"{uuid.uuid4().hex}-1"  # a checkout that failed before its order was written
    reserve(ledgers, stray)

    def expired_now() -> bool:
        answer = httpx.get(f"{ledgers.config.inventory_url}/v1/reservations/{expired}-1")
        return bool(answer.json()["state"] == "expired")

    eventually(expired_now, 5, "the short hold expires")
    try:
        found = rules(audit(ledgers, since))
    finally:
        for rid in (f"{held}-1", stray):
            finish(ledgers, rid, "release")
    assert {"reservation_id": f"{held}-1"} in found["reservation not released"]
    assert {"reservation_id": stray} in found["reservation not released"]
    assert {"reservation_id": f"{expired}-1"} in found["reservation left to expire"]
    assert not any(ids.get("reservation_id") == f"{released}-1"
                   for rule in found.values() for ids in rule)


def test_each_skus_units_add_up(ledgers: Stack) -> None:
    since = time.time()
    assert "stock does not add up" not in rules(audit(ledgers, since))
    with sqlite(ledgers, "inventory") as conn:  # a unit that leaves on_hand without a sale
        conn.execute("UPDATE stock SET on_hand = on_hand - 2 WHERE sku = 'TENT-001'")
    try:
        found = rules(audit(ledgers, since))
    finally:
        with sqlite(ledgers, "inventory") as conn:
            conn.execute("UPDATE stock SET on_hand = on_hand + 2 WHERE sku = 'TENT-001'")
    assert found["stock does not add up"] == [{"sku": "TENT-001"}]


# ---- orders -----------------------------------------------------------------------------------

def test_no_order_is_left_half_done(ledgers: Stack) -> None:
    since = time.time()
    unresolved = plant_order(ledgers, "payment_unknown")
    overdue = plant_order(ledgers, "payment_pending", created_ago=30)
    waiting = plant_order(ledgers, "payment_pending")
    found = rules(audit(ledgers, since - 60, pending_limit=20))
    assert {"order_id": unresolved} in found["order left unresolved"]
    assert {"order_id": overdue} in found["payment pending too long"]
    assert {"order_id": waiting} in found["payment pending not settled"]


# ---- a consistent ledger ------------------------------------------------------------------------

def test_a_consistent_ledger_is_clean(ledgers: Stack) -> None:
    since = time.time()  # only what this test plants
    order_id = uuid.uuid4().hex
    reservation = f"{order_id}-1"
    reserve(ledgers, reservation)
    finish(ledgers, reservation, "commit")
    captured = charge(ledgers, order_id)
    with psycopg.connect(ledgers.config.direct_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (order_id, idempotency_key, cart_id, status, total_cents, "
            "reservation_id, charge_id, stock_committed) VALUES (%s, %s, 'c', 'confirmed', "
            "1199, %s, %s, true)", (order_id, f"key-{order_id}", reservation, captured))
    told = {"status": 201, "order_status": "confirmed", "idempotency_key": f"key-{order_id}",
            "order_id": order_id, "total_cents": 1199, "charged": True}
    result = audit(ledgers, since, [told])
    assert result.clean, result.violations
    assert result.told_confirmed == 1 and result.charges >= 1


def test_a_charge_taken_now_for_an_order_made_before_the_window_is_not_an_orphan(
    ledgers: Stack,
) -> None:
    """A payment taken after recovery for an order accepted (payment pending) earlier."""
    reservation = f"{uuid.uuid4().hex}-r"
    reserve(ledgers, reservation)
    finish(ledgers, reservation, "commit")
    order_id = plant_order(ledgers, "confirmed", stock_committed=True, created_ago=120,
                           reservation_id=reservation)
    since = time.time()
    captured = charge(ledgers, order_id)
    found = rules(audit(ledgers, since))
    assert not any(ids.get("charge_id") == captured for ids in found.get("orphan charge", []))
    assert not any(ids.get("order_id") == order_id for rule in found.values() for ids in rule)


@pytest.mark.parametrize("role", ["auditor", "superuser"])
def test_the_audit_cannot_write_whatever_a_target_files_query_says(
        ledgers: Stack, role: str) -> None:
    """A query that got past validation (one that writes inside a WITH) is refused by the
    read-only transaction, as the stack's own auditor role and even through a superuser
    DSN; the order it would delete is still there."""
    from chaos.audit import _fetch
    from chaos.target import Source

    order_id = plant_order(ledgers, "failed")
    dsn = (stack_sources(ledgers.config).orders.dsn if role == "auditor"
           else ledgers.config.direct_database_url)
    hostile = Source.model_construct(
        dsn=dsn, query="WITH gone AS (DELETE FROM orders WHERE order_id = %(id)s "
                       "RETURNING order_id) SELECT * FROM gone")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _fetch(hostile, {"id": order_id})
    with psycopg.connect(ledgers.config.direct_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE order_id = %s",
                            (order_id,)).fetchone() == (1,)


def test_the_auditor_role_reads_every_table_and_can_run_no_program(ledgers: Stack) -> None:
    dsn = stack_sources(ledgers.config).orders.dsn
    assert dsn is not None and "cc_auditor" in dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
