"""The PostgreSQL orders store against the real server (through its Toxiproxy proxy)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chaos.waiting import eventually
from demo_shop.adapters.orders import OrdersStore
from demo_shop.domain import CartLine, Order, OrderStatus, StaleOrder
from demo_shop.errors import DependencyUnavailable
from demo_shop.resilience import Deadline

pytestmark = pytest.mark.integration


def new_order(status: OrderStatus = OrderStatus.PENDING) -> Order:
    oid = uuid.uuid4().hex
    return Order(oid, f"key-{oid}", status, 2 * 999 + 1199,
                 [CartLine("LAMP-001", 1), CartLine("TOWL-001", 2)], cart_id="c" * 32,
                 reservation_id=f"{oid}-1")


def test_catalog_is_seeded_with_twenty_sale_priced_products(orders_via_proxy: OrdersStore) -> None:
    products = orders_via_proxy.products(Deadline(5))
    assert len(products) == 20
    assert all(p["sale_price_cents"] < p["price_cents"] for p in products)


def test_insert_save_and_read_back(orders_via_proxy: OrdersStore) -> None:
    order = new_order()
    prices = {"LAMP-001": 1199, "TOWL-001": 999}
    assert orders_via_proxy.insert_pending(order, prices, Deadline(5))
    order.transition(OrderStatus.CONFIRMED)
    order.charge_id, order.stock_committed = "ch_1", True
    orders_via_proxy.save(order, Deadline(5))
    loaded = orders_via_proxy.get(order.order_id, Deadline(5))
    assert loaded is not None and loaded.created_at > 0  # stamped by the database
    loaded.created_at = order.created_at
    assert loaded == order


def test_idempotency_key_is_unique(orders_via_proxy: OrdersStore) -> None:
    first = new_order()
    prices = {"LAMP-001": 1199, "TOWL-001": 999}
    assert orders_via_proxy.insert_pending(first, prices, Deadline(5))
    twin = new_order()
    twin.idempotency_key = first.idempotency_key
    assert not orders_via_proxy.insert_pending(twin, prices, Deadline(5))
    assert orders_via_proxy.get(twin.order_id, Deadline(5)) is None


def test_claim_for_retry_takes_failed_orders_once(orders_via_proxy: OrdersStore) -> None:
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    assert orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5)) is None
    order.transition(OrderStatus.FAILED)
    orders_via_proxy.save(order, Deadline(5))
    claimed = orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5))
    assert claimed is not None and claimed.status is OrderStatus.PENDING
    assert orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5)) is None


def test_blackholed_database_answers_within_the_read_timeout(
    orders_via_proxy: OrdersStore, database_faults
) -> None:
    orders_via_proxy.products(Deadline(5))  # the pool has a live connection
    database_faults.inject("postgres", "timeout", name="blackhole", attributes={"timeout": 0})
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        orders_via_proxy.products(Deadline(5))
    elapsed = time.monotonic() - started
    assert info.value.dependency == "database" and info.value.kind == "timeout"
    assert elapsed < 2.0  # read timeout is 1 s: the socket guard cut the wait short


def test_pool_recovers_after_the_proxy_was_disabled(
    orders_via_proxy: OrdersStore, database_faults,
) -> None:
    orders_via_proxy.products(Deadline(5))
    database_faults.disable("postgres")
    with pytest.raises(DependencyUnavailable):
        orders_via_proxy.products(Deadline(2))
    database_faults.enable("postgres")
    # The first call after recovery may still find the pool refilling.
    products = eventually(lambda: orders_via_proxy.products(Deadline(2)), 10,
                          "the pool serves again", ignore=(DependencyUnavailable,))
    assert len(products) == 20


def test_two_settlers_of_one_order_can_never_both_win(orders_via_proxy: OrdersStore) -> None:
    """Each reads the order, each decides; the second change is refused, not stored over
    the first (a retry confirming while the reconciler fails it)."""
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    retry = orders_via_proxy.get(order.order_id, Deadline(5))
    reconciler = orders_via_proxy.get(order.order_id, Deadline(5))
    assert retry is not None and reconciler is not None
    retry.transition(OrderStatus.CONFIRMED)
    orders_via_proxy.save(retry, Deadline(5))
    reconciler.transition(OrderStatus.FAILED)
    with pytest.raises(StaleOrder):
        orders_via_proxy.save(reconciler, Deadline(5))
    stored = orders_via_proxy.get(order.order_id, Deadline(5))
    assert stored is not None and stored.status is OrderStatus.CONFIRMED


def test_the_reconcilers_lease_keeps_a_shoppers_retry_out_until_it_ends(
        orders_via_proxy: OrdersStore) -> None:
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    order.transition(OrderStatus.PAYMENT_UNKNOWN)
    orders_via_proxy.save(order, Deadline(5))
    stale_copy = orders_via_proxy.get(order.order_id, Deadline(5))
    assert orders_via_proxy.claim(order, Deadline(5))
    assert stale_copy is not None and not orders_via_proxy.claim(stale_copy, Deadline(5))
    # The lease outlasts a settle: the shopper's retry is told "in progress", not let in.
    assert orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5)) is None
    orders_via_proxy.release(order, Deadline(5))
    retried = orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5))
    assert retried is not None and retried.status is OrderStatus.PENDING
    # ...and now the reconciler's copy is stale: it cannot settle what the retry took.
    assert not orders_via_proxy.claim(order, Deadline(5))


def test_a_checkouts_lease_keeps_the_reconciler_out_until_it_stores_an_outcome(
        orders_via_proxy: OrdersStore) -> None:
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))

    def waiting() -> set[str]:
        return {o.order_id for o in orders_via_proxy.needing_reconciliation(0, 1000,
                                                                            Deadline(5))}

    # Pending and old enough for the reconciler, but its checkout still holds it.
    assert order.order_id not in waiting()
    assert not orders_via_proxy.claim(order, Deadline(5))
    order.transition(OrderStatus.FAILED)
    orders_via_proxy.save(order, Deadline(5))  # an outcome: the lease ends with it
    retried = orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5))
    assert retried is not None  # a shopper's retry takes it at once, under its own lease
    assert retried.order_id not in waiting()


def test_an_order_set_aside_waits_its_backoff_behind_nobody(
        orders_via_proxy: OrdersStore) -> None:
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    order.transition(OrderStatus.PAYMENT_UNKNOWN)
    orders_via_proxy.save(order, Deadline(5))
    ids = {o.order_id for o in orders_via_proxy.needing_reconciliation(0, 1000, Deadline(5))}
    assert order.order_id in ids
    assert orders_via_proxy.claim(order, Deadline(5))
    assert orders_via_proxy.set_aside(order, Deadline(5)) == 1.0
    assert orders_via_proxy.set_aside(order, Deadline(5)) == 2.0  # the backoff doubles
    ids = {o.order_id for o in orders_via_proxy.needing_reconciliation(0, 1000, Deadline(5))}
    assert order.order_id not in ids


def test_racing_claims_on_the_real_store_have_one_winner(orders_via_proxy: OrdersStore) -> None:
    """Eight reconcilers and eight retries at once, each from its own read: one wins."""
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    order.transition(OrderStatus.PAYMENT_UNKNOWN)
    orders_via_proxy.save(order, Deadline(5))
    copies = [orders_via_proxy.get(order.order_id, Deadline(5)) for _ in range(8)]
    start = threading.Barrier(16)

    def reconcile(copy: Order | None) -> bool:
        assert copy is not None
        start.wait(10)
        return orders_via_proxy.claim(copy, Deadline(5))

    def retry(_: int) -> bool:
        start.wait(10)
        return orders_via_proxy.claim_for_retry(order.idempotency_key, 60,
                                                Deadline(5)) is not None

    with ThreadPoolExecutor(16) as pool:
        wins = [f.result() for f in [pool.submit(reconcile, c) for c in copies]
                + [pool.submit(retry, i) for i in range(8)]]
    assert sum(wins) == 1


def test_postgres_takes_only_its_generated_password(database) -> None:  # type: ignore[no-untyped-def]
    """scram-sha-256, directly and through its proxy; no trust, no other password."""
    import psycopg

    for port in (database.config.ports.postgres, database.config.ports.proxy_postgres):
        for dsn in (f"postgresql://postgres@127.0.0.1:{port}/shop",
                    f"postgresql://postgres:guess@127.0.0.1:{port}/shop"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(dsn, connect_timeout=3)
        with psycopg.connect(database.config.postgres_url(port), connect_timeout=3) as conn:
            method = conn.execute("SELECT current_setting('password_encryption')").fetchone()
            assert method == ("scram-sha-256",)


def test_parking_a_retried_order_stores_the_attempt_and_reservation_it_holds(
        orders_via_proxy: OrdersStore) -> None:
    """The reconciler takes a parked order's payment with the stored attempt's key: a
    retried order (attempt 2) parked with attempt 1 stored is charged anew under key :1
    while attempt 2's hold stays open (found by the trickle experiments)."""
    order = new_order()
    orders_via_proxy.insert_pending(order, {"LAMP-001": 1, "TOWL-001": 1}, Deadline(5))
    order.transition(OrderStatus.FAILED)
    orders_via_proxy.save(order, Deadline(5))
    retried = orders_via_proxy.claim_for_retry(order.idempotency_key, 60, Deadline(5))
    assert retried is not None
    retried.attempt, retried.reservation_id = 2, f"{retried.order_id}-2"
    retried.charge_id = "ch_hold"
    orders_via_proxy.park_for_payment(retried, "sealed", Deadline(5))
    stored = orders_via_proxy.get(retried.order_id, Deadline(5))
    assert stored is not None and stored.status is OrderStatus.PAYMENT_PENDING
    assert (stored.attempt, stored.reservation_id, stored.charge_id) == (
        2, f"{retried.order_id}-2", "ch_hold")
