"""Checkout: write the order as pending, reserve stock, authorize, capture, confirm,
commit the reservation, clear the cart — and compensate on every failure path.

The order of operations keeps one promise above all: a shopper is never charged
without an order. Money only moves at capture, which happens after the order row
exists; if the order cannot be confirmed after capture, the charge is refunded.
When payments cannot be reached the order is not lost: it is accepted as
`payment_pending`, its stock held and its card sealed, and the reconciliation pass
takes the payment later with the same idempotency key (or cancels the order and gives
the stock back after a limit). The service takes its collaborators as arguments and
knows nothing of Flask or HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from .cards import validate_card
from .domain import (
    Cart,
    CartLine,
    Charge,
    EmptyCart,
    Order,
    OrderStatus,
    ShopError,
    StaleOrder,
    UnknownProduct,
)
from .errors import (
    DependencyUnavailable,
    OutcomeUnknown,
    OutOfStock,
    PaymentDeclined,
    ReservationClosed,
)
from .resilience import Deadline
from .vault import CardVault

log = logging.getLogger(__name__)

# The most one compensation step (release, void, refund, save) may take.
COMPENSATION_STEP_SECONDS = 0.5


class CartStorePort(Protocol):
    """What checkout needs of the cart store."""

    def load(self, cart_id: str) -> Cart: ...
    def clear(self, cart_id: str) -> None: ...


class OrdersStorePort(Protocol):
    """What checkout needs of the orders store."""

    def unit_prices(self, skus: list[str], deadline: Deadline) -> dict[str, int]: ...
    def insert_pending(
        self, order: Order, unit_prices: dict[str, int], deadline: Deadline
    ) -> bool: ...
    def save(self, order: Order, deadline: Deadline) -> None: ...
    def park_for_payment(self, order: Order, sealed_card: str, deadline: Deadline) -> None: ...
    def get_by_key(self, idempotency_key: str, deadline: Deadline) -> Order | None: ...
    def claim_for_retry(
        self, idempotency_key: str, stale_after_seconds: float, deadline: Deadline
    ) -> Order | None: ...


class PaymentsPort(Protocol):
    """What checkout needs of the card processor."""

    def authorize(
        self, idempotency_key: str, order_id: str, amount_cents: int,
        card: dict[str, Any], deadline: Deadline, merchant_initiated: bool = False,
    ) -> Charge: ...
    def capture(self, charge_id: str, deadline: Deadline) -> Charge: ...
    def void(self, charge_id: str, deadline: Deadline) -> Charge: ...
    def refund(self, charge_id: str, deadline: Deadline) -> Charge: ...
    def find(self, idempotency_key: str, deadline: Deadline) -> Charge | None: ...


class InventoryPort(Protocol):
    """What checkout needs of inventory."""

    def reserve_stock(
        self, reservation_id: str, lines: list[CartLine], ttl_seconds: int, deadline: Deadline
    ) -> None: ...
    def commit(self, reservation_id: str, deadline: Deadline) -> None: ...
    def release(self, reservation_id: str, deadline: Deadline) -> None: ...
    def extend(self, reservation_id: str, ttl_seconds: int, deadline: Deadline) -> None: ...


@dataclass(slots=True)
class CheckoutDeps:
    """The collaborators a checkout runs against."""

    carts: CartStorePort
    orders: OrdersStorePort
    payments: PaymentsPort
    inventory: InventoryPort
    reservation_ttl_seconds: int = 30
    stale_pending_seconds: float = 60.0
    compensation_reserve: float = 1.0
    # The payment_pending fallback: a vault to seal cards, and how long a payment may be
    # taken later before the order is cancelled. None / 0: no fallback (fragile mode).
    vault: CardVault | None = None
    payment_pending_seconds: int = 0
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex
    # Stock whose release failed (inventory unreachable) is handed here and given back by
    # the reconciliation pass, not left held until the reservation expires.
    release_later: Callable[[str], None] | None = None
    # Keys the digest that binds an idempotency key to its cart and request.
    request_key: bytes = b"checkout requests"


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    """A checkout that took the order; replayed when the idempotency key was seen before."""

    order: Order
    replayed: bool = False


class CheckoutFailed(ShopError):
    """The order could not be taken now. Says only what is true about cart and charge.

    charged: False when no money moved (or it was given back), None when unknown.
    """

    def __init__(
        self, dependency: str, *, charged: bool | None, cart_saved: bool, retry_after: int = 30
    ) -> None:
        super().__init__(f"checkout failed: {dependency} unavailable")
        self.dependency = dependency
        self.charged = charged
        self.cart_saved = cart_saved
        self.retry_after = retry_after
        self.total_cents = 0


class CheckoutInProgress(ShopError):
    """The same idempotency key is being checked out right now."""


class IdempotencyKeyReused(ShopError):
    """The idempotency key was first used for another cart or another request body."""


def request_digest(key: bytes, cart_id: str, card: dict[str, Any]) -> str:
    """What a checkout request asked for — the cart and the card without its CVC — keyed,
    so the stored digest tells a replay from a reuse and reveals nothing of the card."""
    parts = [cart_id, card["number"], card["exp_month"], card["exp_year"]]
    return hmac.new(key, json.dumps(parts).encode(), hashlib.sha256).hexdigest()


def checkout(
    deps: CheckoutDeps,
    cart_id: str,
    idempotency_key: str,
    card: dict[str, Any],
    deadline: Deadline,
    cart: Cart | None = None,
) -> CheckoutResult:
    """Take the order for cart_id, once per idempotency key, answering within deadline.
    cart: the cart when the caller already has it (e.g. from the cookie fallback).
    A malformed card is InvalidCard before any dependency is asked anything."""
    card = validate_card(card)
    flow = _Checkout(deps, deadline)
    try:
        return flow.run(cart_id, idempotency_key, card, cart)
    except CheckoutFailed as exc:
        exc.total_cents = flow.total_cents  # the revenue this failure put at risk
        raise


class _Checkout:
    """One checkout run: forward steps bounded by `work`, compensations by what remains."""

    def __init__(self, deps: CheckoutDeps, deadline: Deadline) -> None:
        self.deps = deps
        self.deadline = deadline
        self.work = deadline.earlier(deps.compensation_reserve)
        self.total_cents = 0
        # Resuming an order whose payment outcome is unknown: a refusal now proves nothing
        # about the earlier attempt, only the processor's record does.
        self.resuming = False

    def run(self, cart_id: str, idempotency_key: str, card: dict[str, Any],
            given_cart: Cart | None = None) -> CheckoutResult:
        deps, work = self.deps, self.work
        digest = request_digest(deps.request_key, cart_id, card)
        try:
            existing = deps.orders.get_by_key(idempotency_key, work)
        except DependencyUnavailable as exc:
            # Nothing is charged by this request — but it may be a retry, and the shop
            # cannot tell without its orders: an earlier try with this key may have taken
            # the money. "Not charged" would be a promise it cannot back.
            raise CheckoutFailed(exc.dependency, charged=None, cart_saved=True) from exc
        if existing is not None:
            # Stripe's rule: a key answers only the request it was first used for — never
            # another cart's order, never another card charged for those items.
            if existing.cart_id != cart_id or existing.request_digest != digest:
                raise IdempotencyKeyReused(idempotency_key)
            return self._replay_or_retry(existing, card)

        try:
            cart = given_cart if given_cart is not None else deps.carts.load(cart_id)
        except DependencyUnavailable as exc:
            raise CheckoutFailed(exc.dependency, charged=False, cart_saved=False) from exc
        if cart.is_empty:
            raise EmptyCart("the cart is empty")
        lines = cart.items()
        try:
            prices = deps.orders.unit_prices([line.sku for line in lines], work)
        except DependencyUnavailable as exc:
            raise CheckoutFailed(exc.dependency, charged=False, cart_saved=True) from exc
        total = cart.total_cents(prices)  # raises UnknownProduct for a sku no longer sold
        self.total_cents = total

        order_id = deps.new_id()
        order = Order(
            order_id=order_id, idempotency_key=idempotency_key, status=OrderStatus.PENDING,
            total_cents=total, items=lines, cart_id=cart_id, attempt=1,
            reservation_id=f"{order_id}-1", created_at=time.time(), request_digest=digest,
        )
        # The order row comes first, then the hold on stock: a worker that dies between the
        # two leaves a pending order the reconciler finds (and gives its stock back), never
        # a hold that nobody knows of and only expiry can return.
        try:
            inserted = deps.orders.insert_pending(order, prices, work)
        except DependencyUnavailable as exc:
            raise CheckoutFailed(exc.dependency, charged=False, cart_saved=True) from exc
        if not inserted:
            raise CheckoutInProgress(idempotency_key)
        self._reserve(order, persisted=True)
        return self._pay_and_confirm(order, card)

    def _replay_or_retry(self, existing: Order, card: dict[str, Any]) -> CheckoutResult:
        """Same key again: the same answer for a finished order, another try for a failed one."""
        if existing.status in (OrderStatus.CONFIRMED, OrderStatus.PAYMENT_PENDING):
            return CheckoutResult(existing, replayed=True)
        if existing.status is OrderStatus.DECLINED:
            raise PaymentDeclined("card_declined")
        if existing.status is OrderStatus.CANCELLED:
            raise CheckoutFailed("payments", charged=False, cart_saved=True)
        try:
            order = self.deps.orders.claim_for_retry(
                existing.idempotency_key, self.deps.stale_pending_seconds, self.work
            )
        except DependencyUnavailable as exc:
            charged = False if existing.status is OrderStatus.FAILED else None
            raise CheckoutFailed(exc.dependency, charged=charged, cart_saved=True) from exc
        if order is None:
            raise CheckoutInProgress(existing.idempotency_key)
        self.total_cents = order.total_cents
        if existing.status is OrderStatus.FAILED:
            self._retry_failed(order)
        else:
            # payment_unknown or a stale pending: keep the attempt, so the processor's
            # idempotency key finds the charge that may exist instead of making a second one.
            self.resuming = True
        return self._pay_and_confirm(order, card)

    def _retry_failed(self, order: Order) -> None:
        """Another try at a failed order. The order failing does not prove no money moved:
        a checkout that outlived its deadline may still have authorized, or captured, after
        the order was given up. So the processor is asked first: a charge of the last attempt
        that holds or took money is this try's charge (same key, no second one); only when
        there is none (or it was voided or refunded) does a fresh attempt get its own keys.
        A processor that cannot be asked: no try now, and no promise about the money."""
        answered, found = self._lookup(f"{order.order_id}:{order.attempt}")
        if not answered:
            self._mark_failed(order)
            raise CheckoutFailed("payments", charged=None, cart_saved=True)
        reused = found if found is not None and found.status in (
            "processing", "authorized", "captured") else None
        if reused is not None:
            log.warning("failed order has a charge: retried with it",
                        extra={"ref": order.order_id, "charge": reused.charge_id,
                               "status": reused.status})
            order.reservation_id = f"{order.order_id}-{order.attempt}-{self.deps.new_id()[:8]}"
            self.resuming = True  # as for an unknown payment: the processor's record rules
        else:
            order.attempt += 1
            order.reservation_id = f"{order.order_id}-{order.attempt}"
        order.charge_id = None
        try:
            self._reserve(order, persisted=True)
        except (OutOfStock, CheckoutFailed):
            if reused is not None:  # no stock for it now: the money found goes back
                if reused.status == "captured":
                    self._quietly(lambda d: self.deps.payments.refund(reused.charge_id, d),
                                  "refund", order.order_id)
                else:
                    self._void_quietly(reused.charge_id)
            raise

    def _reserve(self, order: Order, *, persisted: bool) -> None:
        assert order.reservation_id is not None
        try:
            self.deps.inventory.reserve_stock(
                order.reservation_id, order.items, self.deps.reservation_ttl_seconds, self.work
            )
        except DependencyUnavailable as exc:
            if isinstance(exc, OutcomeUnknown):
                self._release(order)  # it may have been made: give it back
            if persisted:
                self._mark_failed(order)
            raise CheckoutFailed(exc.dependency, charged=False, cart_saved=True) from exc
        except OutOfStock:
            if persisted:
                self._mark_failed(order)
            raise

    def _pay_and_confirm(self, order: Order, card: dict[str, Any]) -> CheckoutResult:
        deps, work = self.deps, self.work
        charge_key = f"{order.order_id}:{order.attempt}"
        if work.expired:
            # The steps before took the time (a dependency trickling its answers): no money
            # has moved in this try, and none will after the shopper was told the outcome.
            if self.resuming:
                self._still_unknown(order, "payments")
            self._fail(order, "inventory", charged=False)
        try:
            charge = deps.payments.authorize(
                charge_key, order.order_id, order.total_cents, card, work
            )
        except PaymentDeclined:
            self._release(order)
            order.transition(OrderStatus.DECLINED)
            self._save_quietly(order)
            raise
        except DependencyUnavailable as exc:
            found = self._settle_authorize_failure(order, charge_key, exc)
            if found is None:
                return self._take_payment_later(order, card, exc.dependency)
            charge = found

        order.charge_id = charge.charge_id
        if charge.status != "captured" and work.expired:
            # The hold came back too late to move the money within the deadline.
            if not self.resuming and self._may_take_payment_later():
                return self._take_payment_later(order, card, "payments")
            self._void_quietly(charge.charge_id)
            self._fail(order, "payments", charged=False)
        if charge.status != "captured":
            captured = self._capture(order, charge, charge_key)
            if captured is None:
                return self._take_payment_later(order, card, "payments")
            charge = captured

        order.transition(OrderStatus.CONFIRMED)
        try:
            deps.orders.save(order, work)
        except StaleOrder:
            order = self._settled_elsewhere(order)
        except DependencyUnavailable as exc:
            order = self._confirmation_lost(order, charge, exc)

        assert order.reservation_id is not None
        rid = order.reservation_id
        if self._quietly(lambda d: deps.inventory.commit(rid, d), "commit", order.order_id):
            order.stock_committed = True
            self._save_quietly(order)
        self._quietly(lambda d: deps.carts.clear(order.cart_id), "clear_cart", order.order_id)
        return CheckoutResult(order)

    def _settled_elsewhere(self, order: Order) -> Order:
        """Another settler (the reconciler, a worker that outlived its deadline) changed the
        order first: it stands as they left it. Confirmed: the same answer. Otherwise the
        money is theirs to settle — the shopper hears the truth: not known yet."""
        settled = self._reread(order)
        if settled is not None and settled.status is OrderStatus.CONFIRMED:
            return settled
        raise CheckoutFailed("database", charged=None, cart_saved=True)

    def _confirmation_lost(self, order: Order, charge: Charge,
                           exc: DependencyUnavailable) -> Order:
        """Money moved and the confirmation's outcome is unknown: it may have landed, or
        still land (a commit in flight when the connection broke). A refund is safe only
        once the order is taken back first, conditionally on the version read — a late
        confirmation then changes nothing. Cannot take it back: keep the money and the
        order; the reconciler confirms it from its captured charge."""
        deps = self.deps
        order.status = OrderStatus.PAYMENT_UNKNOWN
        try:
            deps.orders.save(order, Deadline(self.deadline.cap(COMPENSATION_STEP_SECONDS)))
        except StaleOrder:
            return self._settled_elsewhere(order)  # the confirmation landed after all
        except DependencyUnavailable:
            raise CheckoutFailed(exc.dependency, charged=None, cart_saved=True) from exc
        log.warning("confirmation lost: order taken back, refunding",
                    extra={"ref": order.order_id, "version": order.version})
        refunded = self._quietly(
            lambda d: deps.payments.refund(charge.charge_id, d), "refund", order.order_id)
        if refunded:
            order.status = OrderStatus.FAILED
            self._save_quietly(order)
            self._release(order)
        raise CheckoutFailed(exc.dependency, charged=False if refunded else None,
                             cart_saved=True) from exc

    def _settle_authorize_failure(self, order: Order, charge_key: str,
                                  exc: DependencyUnavailable) -> Charge | None:
        """Authorize failed. On a fresh attempt only a hold can exist, and a hold moves no
        money: the payment is taken later (None) when the fallback is on — a hold found
        stays, the later payment reuses it by key — else the hold is voided and the order
        fails. When resuming an unknown payment an earlier capture may exist: go on with it
        if the processor shows it, keep the order unknown if the processor cannot be asked."""
        answered, found = True, None
        if isinstance(exc, OutcomeUnknown) or self.resuming:
            answered, found = self._lookup(charge_key)
        if found is not None and found.status == "captured":
            return found
        if not self.resuming and self._may_take_payment_later():
            order.charge_id = found.charge_id if found is not None else None
            return None
        if found is not None and found.status == "authorized":
            self._void_quietly(found.charge_id)
        if self.resuming and not answered:
            self._still_unknown(order, exc.dependency)
        self._fail(order, exc.dependency, charged=False)

    def _may_take_payment_later(self) -> bool:
        return self.deps.vault is not None and self.deps.payment_pending_seconds > 0

    def _take_payment_later(self, order: Order, card: dict[str, Any],
                            dependency: str) -> CheckoutResult:
        """Accept the order as payment_pending: hold its stock for the payment limit, keep
        the card sealed, clear the cart. If that cannot be done, the order fails honestly
        (nothing was charged: at most a hold exists, and it is voided)."""
        deps = self.deps
        assert deps.vault is not None and order.reservation_id is not None
        rid, hold_for = order.reservation_id, deps.payment_pending_seconds + 60
        sealed = deps.vault.seal(card)
        try:
            deps.inventory.extend(rid, hold_for, Deadline(self.deadline.cap(
                COMPENSATION_STEP_SECONDS)))
            deps.orders.park_for_payment(order, sealed, Deadline(self.deadline.cap(
                COMPENSATION_STEP_SECONDS)))
        except (DependencyUnavailable, ReservationClosed, StaleOrder) as exc:
            log.warning("payment could not be deferred",
                        extra={"order_id": order.order_id, "error": str(exc)})
            if order.charge_id:
                self._void_quietly(order.charge_id)
            self._fail(order, dependency, charged=False)
        order.transition(OrderStatus.PAYMENT_PENDING)
        self._quietly(lambda d: deps.carts.clear(order.cart_id), "clear_cart", order.order_id)
        return CheckoutResult(order)

    def _still_unknown(self, order: Order, dependency: str) -> NoReturn:
        """Keep the order and its stock; tell the shopper the truth: we do not know yet."""
        order.status = OrderStatus.PAYMENT_UNKNOWN
        self._save_quietly(order)
        raise CheckoutFailed(dependency, charged=None, cart_saved=True)

    def _capture(self, order: Order, charge: Charge, charge_key: str) -> Charge | None:
        """Capture the authorized charge; on a lost answer, ask the processor what happened.
        None: payments is unavailable and the payment (the hold) is to be taken later."""
        try:
            return self.deps.payments.capture(charge.charge_id, self.work)
        except OutcomeUnknown as exc:
            _, found = self._lookup(charge_key)
            if found is not None and found.status == "captured":
                return found
            if found is not None and found.status == "authorized":
                if not self.resuming and self._may_take_payment_later():
                    return None  # the hold stays: captured later, with the same key
                self._void_quietly(found.charge_id)
                self._fail(order, exc.dependency, charged=False)
            # We cannot tell whether money moved: keep the order and its stock, tell the truth.
            self._still_unknown(order, exc.dependency)
        except DependencyUnavailable as exc:
            if not self.resuming and self._may_take_payment_later():
                return None
            self._void_quietly(charge.charge_id)
            self._fail(order, exc.dependency, charged=False)

    def _fail(self, order: Order, dependency: str, *, charged: bool | None) -> NoReturn:
        """Compensate (release stock, mark the order failed) and raise CheckoutFailed."""
        self._release(order)
        self._mark_failed(order)
        raise CheckoutFailed(dependency, charged=charged, cart_saved=True)

    def _mark_failed(self, order: Order) -> None:
        if order.status is OrderStatus.PENDING:
            order.transition(OrderStatus.FAILED)
            self._save_quietly(order)

    def _quietly(self, action: Callable[[Deadline], Any], what: str, ref: str) -> bool:
        """Run a compensation step within what is left of the deadline; log, never raise.

        A step that cannot run is backed by expiry (reservations) or reconciliation.
        """
        step_deadline = Deadline(self.deadline.cap(COMPENSATION_STEP_SECONDS))
        try:
            action(step_deadline)
        except (DependencyUnavailable, PaymentDeclined, ReservationClosed) as exc:
            log.warning("compensation failed", extra={"step": what, "ref": ref, "error": str(exc)})
            return False
        return True

    def _release(self, order: Order) -> None:
        if order.reservation_id:
            rid = order.reservation_id
            released = self._quietly(lambda d: self.deps.inventory.release(rid, d), "release",
                                     order.order_id)
            if not released and self.deps.release_later is not None:
                self.deps.release_later(rid)

    def _save_quietly(self, order: Order) -> None:
        try:
            self._quietly(lambda d: self.deps.orders.save(order, d), "save", order.order_id)
        except StaleOrder:
            # Someone else settled it since: theirs is the state that stands.
            log.warning("order changed under the checkout", extra={"ref": order.order_id})

    def _reread(self, order: Order) -> Order | None:
        try:
            return self.deps.orders.get_by_key(
                order.idempotency_key, Deadline(self.deadline.cap(COMPENSATION_STEP_SECONDS)))
        except DependencyUnavailable:
            return None

    def _void_quietly(self, charge_id: str) -> None:
        self._quietly(lambda d: self.deps.payments.void(charge_id, d), "void", charge_id)

    def _lookup(self, charge_key: str) -> tuple[bool, Charge | None]:
        """(the processor answered, the charge made with this key if any)."""
        found: list[Charge | None] = [None]

        def find(d: Deadline) -> None:
            found[0] = self.deps.payments.find(charge_key, d)

        answered = self._quietly(find, "find", charge_key)
        return answered, found[0]


__all__ = [
    "CheckoutDeps", "CheckoutFailed", "CheckoutInProgress", "CheckoutResult", "EmptyCart",
    "IdempotencyKeyReused", "UnknownProduct", "checkout",
]
