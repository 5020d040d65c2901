"""In-memory fakes of the checkout's adapters, with switches to make each step fail."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any

from demo_shop.domain import Cart, CartLine, Charge, Order, OrderStatus, StaleOrder
from demo_shop.errors import (
    DependencyUnavailable,
    OutcomeUnknown,
    OutOfStock,
    PaymentDeclined,
    ReservationClosed,
)
from demo_shop.resilience import Deadline


def down(dependency: str) -> DependencyUnavailable:
    """The error a refused connection gives."""
    return DependencyUnavailable(dependency, "refused")


def lost(dependency: str) -> OutcomeUnknown:
    """The error a lost answer gives."""
    return OutcomeUnknown(dependency, "timeout")


@dataclass
class FakeCarts:
    carts: dict[str, dict[str, int]] = field(default_factory=dict)
    fail_load: Exception | None = None
    fail_clear: Exception | None = None

    def load(self, cart_id: str) -> Cart:
        if self.fail_load:
            raise self.fail_load
        return Cart(cart_id, dict(self.carts.get(cart_id, {})))

    def save(self, cart: Cart) -> None:
        if self.fail_load:
            raise self.fail_load
        self.carts[cart.cart_id] = dict(cart.lines)

    def clear(self, cart_id: str) -> None:
        if self.fail_clear:
            raise self.fail_clear
        self.carts.pop(cart_id, None)


@dataclass
class FakeOrders:
    prices: dict[str, int] = field(default_factory=lambda: {"A": 1000, "B": 250})
    orders: dict[str, Order] = field(default_factory=dict)
    fail_on: dict[str, Exception] = field(default_factory=dict)
    saves: list[str] = field(default_factory=list)
    claimed_elsewhere: set[str] = field(default_factory=set)
    cards: dict[str, str] = field(default_factory=dict)  # order id -> sealed card
    released: list[str] = field(default_factory=list)  # reconciler leases ended
    set_aside_ids: list[str] = field(default_factory=list)  # waiting their backoff

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail_on:
            raise self.fail_on[op]

    def products(self, deadline: Deadline) -> list[dict[str, Any]]:
        self._maybe_fail("products")
        return [{"sku": s, "name": f"Product {s}", "price_cents": p * 2, "sale_price_cents": p}
                for s, p in sorted(self.prices.items())]

    def get(self, order_id: str, deadline: Deadline) -> Order | None:
        self._maybe_fail("get")
        found = self.orders.get(order_id)
        return copy.deepcopy(found) if found else None

    def unit_prices(self, skus: list[str], deadline: Deadline) -> dict[str, int]:
        self._maybe_fail("prices")
        return {s: self.prices[s] for s in skus if s in self.prices}

    def insert_pending(self, order: Order, unit_prices: dict[str, int], deadline: Deadline) -> bool:
        self._maybe_fail("insert")
        if any(o.idempotency_key == order.idempotency_key for o in self.orders.values()):
            return False
        self.orders[order.order_id] = copy.deepcopy(order)
        return True

    def _bump(self, order: Order) -> None:
        """As the real store: a change is made only on the version read (StaleOrder)."""
        stored = self.orders.get(order.order_id)
        if stored is not None and stored.version != order.version:
            raise StaleOrder(order.order_id)
        order.version += 1

    def save(self, order: Order, deadline: Deadline) -> None:
        self._maybe_fail(f"save:{order.status}")
        self._bump(order)
        self.saves.append(str(order.status))
        self.orders[order.order_id] = copy.deepcopy(order)
        if order.status is not OrderStatus.PAYMENT_PENDING:
            self.cards.pop(order.order_id, None)  # as the real store: erased once settled

    def park_for_payment(self, order: Order, sealed_card: str, deadline: Deadline) -> None:
        """As the real store: status, charge, attempt and reservation are stored (the
        order's other fields stay as they were stored)."""
        self._maybe_fail("park")
        self._bump(order)
        stored = copy.deepcopy(self.orders.get(order.order_id, order))
        stored.status = OrderStatus.PAYMENT_PENDING
        stored.charge_id, stored.attempt = order.charge_id, order.attempt
        stored.reservation_id, stored.version = order.reservation_id, order.version
        self.orders[order.order_id] = stored
        self.cards[order.order_id] = sealed_card

    def sealed_card(self, order_id: str, deadline: Deadline) -> str | None:
        self._maybe_fail("get_card")
        return self.cards.get(order_id)

    def get_by_key(self, key: str, deadline: Deadline) -> Order | None:
        self._maybe_fail("get")
        found = [o for o in self.orders.values() if o.idempotency_key == key]
        return copy.deepcopy(found[0]) if found else None

    def needing_reconciliation(self, older_than: float, limit: int,
                               deadline: Deadline) -> list[Order]:
        self._maybe_fail("find_unreconciled")
        return [copy.deepcopy(o) for o in self.orders.values()
                if o.order_id not in self.set_aside_ids and (
                    o.status in (OrderStatus.PAYMENT_UNKNOWN, OrderStatus.PENDING,
                                 OrderStatus.PAYMENT_PENDING)
                    or (o.status is OrderStatus.CONFIRMED and not o.stock_committed))][:limit]

    def set_aside(self, order: Order, deadline: Deadline) -> float:
        self._maybe_fail("set_aside")
        self.set_aside_ids.append(order.order_id)
        return 1.0

    def claim(self, order: Order, deadline: Deadline) -> bool:
        self._maybe_fail("claim")
        return order.order_id not in self.claimed_elsewhere

    def release(self, order: Order, deadline: Deadline) -> None:
        self.released.append(order.order_id)

    def claim_for_retry(self, key: str, stale: float, deadline: Deadline) -> Order | None:
        order = next((o for o in self.orders.values() if o.idempotency_key == key), None)
        if order is None or order.status not in ("failed", "payment_unknown"):
            return None
        order.status = OrderStatus.PENDING
        order.version += 1
        return copy.deepcopy(order)


@dataclass
class FakePayments:
    charges: dict[str, Charge] = field(default_factory=dict)  # by idempotency key
    fail_on: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)  # every card it was sent
    ids: Any = field(default_factory=lambda: itertools.count(1))
    capture_happens_before_failure: bool = False

    def _charge(self, key: str, **changes: Any) -> Charge:
        old = self.charges[key]
        new = Charge(**{**{f: getattr(old, f) for f in old.__slots__}, **changes})
        self.charges[key] = new
        return new

    def _by_id(self, charge_id: str) -> str:
        return next(k for k, c in self.charges.items() if c.charge_id == charge_id)

    def authorize(self, key: str, order_id: str, amount: int, card: dict[str, Any],
                  deadline: Deadline, merchant_initiated: bool = False) -> Charge:
        self.calls.append("authorize")
        self.cards.append(dict(card))
        if "authorize" in self.fail_on:  # a processor that is down cannot decline
            raise self.fail_on["authorize"]
        if card.get("number") == "4000000000000002":
            raise PaymentDeclined("card_declined")
        if key not in self.charges:
            self.charges[key] = Charge(f"ch_{next(self.ids)}", "authorized", amount, key, order_id)
        return self.charges[key]

    def capture(self, charge_id: str, deadline: Deadline) -> Charge:
        self.calls.append("capture")
        key = self._by_id(charge_id)
        if "capture" in self.fail_on:
            if self.capture_happens_before_failure:
                self._charge(key, status="captured")
            raise self.fail_on["capture"]
        return self._charge(key, status="captured")

    def void(self, charge_id: str, deadline: Deadline) -> Charge:
        self.calls.append("void")
        if "void" in self.fail_on:
            raise self.fail_on["void"]
        return self._charge(self._by_id(charge_id), status="voided")

    def refund(self, charge_id: str, deadline: Deadline) -> Charge:
        self.calls.append("refund")
        if "refund" in self.fail_on:
            raise self.fail_on["refund"]
        return self._charge(self._by_id(charge_id), status="refunded")

    def find(self, key: str, deadline: Deadline) -> Charge | None:
        self.calls.append("find")
        if "find" in self.fail_on:
            raise self.fail_on["find"]
        return self.charges.get(key)

    def captured(self) -> list[Charge]:
        return [c for c in self.charges.values() if c.status == "captured"]


@dataclass
class FakeInventory:
    stock: dict[str, int] = field(default_factory=lambda: {"A": 10, "B": 10})
    reservations: dict[str, tuple[str, list[CartLine]]] = field(default_factory=dict)
    fail_on: dict[str, Exception] = field(default_factory=dict)
    reserve_happens_before_failure: bool = False
    held_for: dict[str, int] = field(default_factory=dict)  # reservation id -> ttl asked

    def reserve_stock(self, rid: str, lines: list[CartLine], ttl: int, deadline: Deadline) -> None:
        if "reserve" in self.fail_on:
            if self.reserve_happens_before_failure:
                self.reservations[rid] = ("active", lines)
            raise self.fail_on["reserve"]
        for line in lines:
            if self.available(line.sku) < line.qty:
                raise OutOfStock(line.sku)
        self.reservations[rid] = ("active", lines)

    def available(self, sku: str) -> int:
        held = sum(line.qty for state, lines in self.reservations.values() if state == "active"
                   for line in lines if line.sku == sku)
        return self.stock[sku] - held

    def commit(self, rid: str, deadline: Deadline) -> None:
        if "commit" in self.fail_on:
            raise self.fail_on["commit"]
        state, lines = self.reservations[rid]
        if state != "active":  # as the real service: 409, the reservation is closed
            raise ReservationClosed(rid, state)
        for line in lines:
            self.stock[line.sku] -= line.qty
        self.reservations[rid] = ("committed", lines)

    def extend(self, rid: str, ttl: int, deadline: Deadline) -> None:
        if "extend" in self.fail_on:
            raise self.fail_on["extend"]
        state, _ = self.reservations[rid]
        if state != "active":
            raise ReservationClosed(rid, state)
        self.held_for[rid] = ttl

    def stock_levels(self, deadline: Deadline) -> dict[str, int]:
        if "stock" in self.fail_on:
            raise self.fail_on["stock"]
        return {sku: self.available(sku) for sku in self.stock}

    def release(self, rid: str, deadline: Deadline) -> None:
        if "release" in self.fail_on:
            raise self.fail_on["release"]
        if rid in self.reservations and self.reservations[rid][0] == "active":
            self.reservations[rid] = ("released", self.reservations[rid][1])

    def states(self) -> list[str]:
        return [state for state, _ in self.reservations.values()]


def fake_app(deps: Any = None) -> Any:
    """The shop's Flask app on fake adapters (a fresh set unless `deps` are given)."""
    from demo_shop.app import create_app
    from demo_shop.checkout import CheckoutDeps
    from demo_shop.health import HealthBoard, Periodic
    from demo_shop.wiring import Shop

    ids = itertools.count(1)
    deps = deps or CheckoutDeps(carts=FakeCarts(), orders=FakeOrders(), payments=FakePayments(),
                                inventory=FakeInventory(), new_id=lambda: f"o{next(ids)}")
    board = HealthBoard()
    shop = Shop(deps, deps.orders, deps.carts, board, Periodic({}, board, 0))
    return create_app({"SHOP": shop, "TESTING": True, "SECRET_KEY": "test"})


class FakeClock:
    """A monotonic clock a test moves on by hand (`now`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def checkout_deps(cart: dict[str, int]) -> Any:
    """CheckoutDeps over fresh fakes, cart1 holding `cart`, order ids o1, o2, ..."""
    from demo_shop.checkout import CheckoutDeps

    ids = itertools.count(1)
    return CheckoutDeps(carts=FakeCarts({"cart1": dict(cart)}), orders=FakeOrders(),
                        payments=FakePayments(), inventory=FakeInventory(),
                        new_id=lambda: f"o{next(ids)}")
