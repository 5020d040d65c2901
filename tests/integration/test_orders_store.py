"""The PostgreSQL orders store against the real server (through its Toxiproxy proxy)."""

from __future__ import annotations

import time
import uuid

import pytest

from chaos.waiting import eventually
from demo_shop.adapters.orders import OrdersStore
from demo_shop.domain import CartLine, Order, OrderStatus
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
