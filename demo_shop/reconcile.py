"""Reconciliation: finish what a checkout could not, once the dependencies answer again.

- A confirmed order whose stock commit failed: commit the reservation.
- An order accepted as payment_pending (payments was down): once payments answers,
  authorize and capture with the order's idempotency key (a hold made earlier is reused,
  never a second charge); a decline, a lost card or the limit passing cancels the order
  and gives its stock back.
- Stock a checkout could not give back (inventory did not answer the release): release
  it as soon as inventory answers, before the hold would expire on its own.
- An order whose payment outcome is unknown (the capture's answer was lost), or one left
  pending by a worker that died: ask the processor by the order's idempotency key. A
  captured charge confirms the order; a hold is voided and the order fails; no charge
  fails the order. Stock follows the order: committed or released.

Every step is idempotent (the processor and inventory dedupe by key and id), and an order
is settled under a lease (longer than a settle) with every change conditional on the
version read: a shopper's retry or another worker can never settle the same order too.
An order whose checkout is still going is under the checkout's lease and not touched.
An order that cannot be settled (whatever the error) is set aside with a backoff
(`next_attempt_at`) and counted in `shop_reconcile_errors_total`: it never holds up the
orders behind it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .checkout import CheckoutDeps
from .domain import Charge, Order, OrderStatus, StaleOrder
from .errors import DependencyUnavailable, PaymentDeclined, ReservationClosed
from .metrics import RECONCILE_ERRORS
from .resilience import Deadline

log = logging.getLogger(__name__)


class ReleaseQueue:
    """Reservations to give back once inventory answers (this worker's; the reservation's
    own expiry backs it up if the worker dies)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, reservation_id: str) -> None:
        """Queue a release (once; the oldest is dropped past the limit)."""
        with self._lock:
            self._ids[reservation_id] = None
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)

    def drain(self, release: Callable[[str], None]) -> int:
        """Release in order; stop at the first that inventory does not answer (it stays
        queued). How many were given back."""
        done = 0
        while True:
            with self._lock:
                if not self._ids:
                    return done
                rid = next(iter(self._ids))
            try:
                release(rid)
            except ReservationClosed:
                pass  # committed or already gone: nothing to give back
            except DependencyUnavailable:
                return done
            with self._lock:
                self._ids.pop(rid, None)
            done += 1


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one pass did."""

    released: int = 0
    stock_committed: int = 0
    confirmed: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0


class Reconciler:
    """One pass at a time over unfinished orders; call `run_once` from a background thread."""

    def __init__(self, deps: CheckoutDeps, orders: object, settle_seconds: float = 10.0,
                 batch: int = 20, releases: ReleaseQueue | None = None) -> None:
        self._deps = deps
        self._orders = orders  # the OrdersStore: needing_reconciliation, claim
        self._settle = settle_seconds
        self._batch = batch
        self._releases = releases

    def run_once(self) -> Reconciled:
        """Give back queued stock, then reconcile a batch of unfinished orders; a dependency
        still down skips the rest."""
        counts = {"released": 0, "stock_committed": 0, "confirmed": 0, "failed": 0,
                  "cancelled": 0, "skipped": 0}
        if self._releases is not None:
            counts["released"] = self._releases.drain(
                lambda rid: self._deps.inventory.release(rid, Deadline(2.0)))
        try:
            candidates = self._orders.needing_reconciliation(  # type: ignore[attr-defined]
                self._settle, self._batch, Deadline(2.0))
        except DependencyUnavailable:
            return Reconciled()
        for order in candidates:
            try:
                if not self._orders.claim(order, Deadline(2.0)):  # type: ignore[attr-defined]
                    counts["skipped"] += 1
                    continue
            except StaleOrder:
                counts["skipped"] += 1
                continue
            except DependencyUnavailable:
                break  # the database is down: nothing can be settled this pass
            try:
                counts[self._settle_order(order)] += 1
            except StaleOrder:
                counts["skipped"] += 1  # a shopper's retry or another worker got there first
                self._end_lease(order)
            except DependencyUnavailable as exc:
                # Not this order's fault: the dependency is down for every order. It is not
                # set aside (a backoff would keep it waiting after the dependency is back).
                log.info("reconciliation waits", extra={"order_id": order.order_id,
                                                        "error": str(exc)})
                counts["skipped"] += 1
                self._end_lease(order)
                break  # try again next pass
            except Exception as exc:
                counts["skipped"] += 1
                self._set_aside(order, exc)
            else:
                self._end_lease(order)
        return Reconciled(**counts)

    def _set_aside(self, order: Order, exc: Exception) -> None:
        """This order could not be settled now (a sold-out re-reserve, a closed reservation,
        a processor's refusal): log it, count it, and let it wait its
        backoff behind nobody — the orders after it are settled meanwhile."""
        RECONCILE_ERRORS.labels(type(exc).__name__).inc()
        waits = 0.0
        with contextlib.suppress(DependencyUnavailable):  # if not, its lease ends by itself
            waits = self._orders.set_aside(order, Deadline(1.0))  # type: ignore[attr-defined]
        log.warning("reconciliation set an order aside",
                    extra={"order_id": order.order_id, "status": str(order.status),
                           "error": f"{type(exc).__name__}: {exc}", "retry_in": waits})

    def _end_lease(self, order: Order) -> None:
        with contextlib.suppress(DependencyUnavailable):  # if not, the lease ends by itself
            self._orders.release(order, Deadline(1.0))  # type: ignore[attr-defined]

    def _settle_order(self, order: Order) -> str:
        if order.status is OrderStatus.CONFIRMED:
            self._commit_stock(order)
            return "stock_committed"
        charge = self._deps.payments.find(f"{order.order_id}:{order.attempt}", Deadline(2.0))
        if charge is not None and charge.status == "captured":
            return self._confirm(order, charge.charge_id)
        if order.status is OrderStatus.PAYMENT_PENDING:
            return self._take_payment(order, charge)
        return self._give_up(order, charge, OrderStatus.FAILED)

    def _confirm(self, order: Order, charge_id: str) -> str:
        log.info("reconciled: confirmed", extra={"order_id": order.order_id,
                                                 "from": str(order.status),
                                                 "version": order.version})
        order.charge_id = charge_id
        order.transition(OrderStatus.CONFIRMED)
        self._deps.orders.save(order, Deadline(2.0))
        self._commit_stock(order)
        return "confirmed"

    def _take_payment(self, order: Order, charge: Charge | None) -> str:
        """A payment_pending order: capture it now (same key), or cancel it."""
        deps = self._deps
        key = f"{order.order_id}:{order.attempt}"
        overdue = time.time() - order.created_at > deps.payment_pending_seconds
        card = None
        if not overdue and deps.vault is not None:
            sealed = self._orders.sealed_card(  # type: ignore[attr-defined]
                order.order_id, Deadline(2.0))
            card = deps.vault.open(sealed) if sealed else None
        if overdue or card is None or (charge is not None and
                                       charge.status not in ("authorized", "captured")):
            return self._cancel(order, charge)
        try:
            if charge is None:
                charge = deps.payments.authorize(key, order.order_id, order.total_cents, card,
                                                 Deadline(2.0), merchant_initiated=True)
            if charge.status != "captured":
                charge = deps.payments.capture(charge.charge_id, Deadline(2.0))
        except PaymentDeclined:
            return self._cancel(order, None)
        return self._confirm(order, charge.charge_id)

    def _cancel(self, order: Order, charge: Charge | None) -> str:
        log.info("payment pending cancelled", extra={"order_id": order.order_id})
        return self._give_up(order, charge, OrderStatus.CANCELLED)

    def _give_up(self, order: Order, charge: Charge | None, status: OrderStatus) -> str:
        """End the order without a payment: void any hold, give the stock back."""
        if charge is not None and charge.status == "authorized":
            self._deps.payments.void(charge.charge_id, Deadline(2.0))
        if order.reservation_id:
            with contextlib.suppress(ReservationClosed):  # expired, or never made
                self._deps.inventory.release(order.reservation_id, Deadline(2.0))
        order.transition(status)
        self._deps.orders.save(order, Deadline(2.0))
        return str(status)

    def _commit_stock(self, order: Order) -> None:
        """Turn the reservation into a sale; if it expired meanwhile, reserve anew and commit."""
        if not order.reservation_id or order.stock_committed:
            return
        try:
            self._deps.inventory.commit(order.reservation_id, Deadline(2.0))
        except ReservationClosed as closed:
            if closed.state == "committed":
                pass  # committed earlier, the flag was not saved: nothing to do twice
            else:
                order.reservation_id = f"{order.order_id}-{order.attempt}-r"
                self._deps.inventory.reserve_stock(order.reservation_id, order.items,
                                                   self._deps.reservation_ttl_seconds,
                                                   Deadline(2.0))
                self._deps.inventory.commit(order.reservation_id, Deadline(2.0))
        order.stock_committed = True
        self._deps.orders.save(order, Deadline(2.0))
