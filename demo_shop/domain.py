"""The shop's domain: money in integer cents, carts, orders and their state machine.

Nothing here knows about Flask, SQL, Redis or HTTP.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

MIN_QTY = 1
MAX_QTY = 99


class ShopError(Exception):
    """Base of every error the shop's domain and adapters raise."""


class InvalidQuantity(ShopError):
    """A quantity outside 1..99."""


class UnknownProduct(ShopError):
    """A sku the catalog does not have."""


class EmptyCart(ShopError):
    """Checkout of a cart with no items."""


class IllegalTransition(ShopError):
    """An order state change the state machine forbids."""


class StaleOrder(ShopError):
    """An order changed since it was read (another settler won): this change was not made."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} changed since it was read")
        self.order_id = order_id


def format_cents(cents: int) -> str:
    """Render integer cents as dollars for people: 12345 -> '$123.45'."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def validate_qty(qty: object) -> int:
    """Return qty as an int in 1..99, or raise InvalidQuantity."""
    if isinstance(qty, bool) or not isinstance(qty, int):
        raise InvalidQuantity("qty must be a whole number from 1 to 99")
    if not MIN_QTY <= qty <= MAX_QTY:
        raise InvalidQuantity("qty must be from 1 to 99")
    return qty


@dataclass(frozen=True, slots=True)
class CartLine:
    """One sku in a cart and how many."""

    sku: str
    qty: int


@dataclass(slots=True)
class Cart:
    """A shopper's cart: sku -> quantity."""

    cart_id: str
    lines: dict[str, int] = field(default_factory=dict)

    def add(self, sku: str, qty: int) -> None:
        """Add qty of sku; the total per sku stays within 1..99."""
        validate_qty(qty)
        new_qty = self.lines.get(sku, 0) + qty
        validate_qty(new_qty)
        self.lines[sku] = new_qty

    def set(self, sku: str, qty: int) -> None:
        """Set the quantity of sku; 0 removes it."""
        if qty == 0:
            self.lines.pop(sku, None)
            return
        self.lines[sku] = validate_qty(qty)

    def items(self) -> list[CartLine]:
        """The lines, sorted by sku so totals and orders are deterministic."""
        return [CartLine(sku, qty) for sku, qty in sorted(self.lines.items())]

    def total_cents(self, unit_prices: dict[str, int]) -> int:
        """Sum of qty x unit price; raises UnknownProduct for a sku without a price."""
        total = 0
        for line in self.items():
            if line.sku not in unit_prices:
                raise UnknownProduct(line.sku)
            total += unit_prices[line.sku] * line.qty
        return total

    @property
    def is_empty(self) -> bool:
        """True when the cart has no lines."""
        return not self.lines


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge on a shopper's card, as the processor reports it."""

    charge_id: str
    status: str  # authorized, captured, voided, refunded, declined, processing
    amount_cents: int
    idempotency_key: str
    order_id: str


class OrderStatus(enum.StrEnum):
    """Where an order is in its life.

    pending: being checked out now. confirmed: paid and told to the shopper.
    declined: the card was declined. failed: a dependency failed and every step was
    compensated, nothing charged. payment_unknown: the capture's answer was lost; the
    order keeps its reservation until a retry or reconciliation learns the truth.
    payment_pending: accepted without payment, to be captured later.
    cancelled: given up after payment_pending.
    """

    PENDING = "pending"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    FAILED = "failed"
    PAYMENT_UNKNOWN = "payment_unknown"
    PAYMENT_PENDING = "payment_pending"
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset(
        {
            OrderStatus.CONFIRMED,
            OrderStatus.DECLINED,
            OrderStatus.FAILED,
            OrderStatus.PAYMENT_UNKNOWN,
            OrderStatus.PAYMENT_PENDING,
        }
    ),
    OrderStatus.FAILED: frozenset({OrderStatus.PENDING}),
    OrderStatus.PAYMENT_UNKNOWN: frozenset(
        {OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.FAILED}
    ),
    OrderStatus.PAYMENT_PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(),
    OrderStatus.DECLINED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}

# States from which a checkout retried with the same idempotency key may run again.
RETRYABLE = frozenset({OrderStatus.FAILED, OrderStatus.PAYMENT_UNKNOWN})


def check_transition(current: OrderStatus, new: OrderStatus) -> None:
    """Raise IllegalTransition unless the state machine allows current -> new."""
    if new not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(f"order cannot go from {current} to {new}")


@dataclass(slots=True)
class Order:
    """An order as the shop stores it."""

    order_id: str
    idempotency_key: str
    status: OrderStatus
    total_cents: int
    items: list[CartLine]
    cart_id: str = ""
    attempt: int = 1
    reservation_id: str | None = None
    charge_id: str | None = None
    stock_committed: bool = False
    created_at: float = 0.0  # seconds since the epoch, as stored
    # Bumped by every stored change: a change is stored only if the version read is still
    # the stored one, so two settlers can never both win.
    version: int = 0
    # What the idempotency key was first used for (keyed digest of cart and card, no CVC):
    # the same key with another cart or body is refused, never replayed.
    request_digest: str = ""

    def transition(self, new: OrderStatus) -> None:
        """Move to a new status, or raise IllegalTransition."""
        check_transition(self.status, new)
        self.status = new
