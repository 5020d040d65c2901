"""A checkout that outlives its deadline can never charge an order the shop gave up, and the
reconciler never stops at one order it cannot settle. Against fakes, at the exact step."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest

from demo_shop import reconcile, resilience
from demo_shop.adapters.http import JsonHttp
from demo_shop.checkout import CheckoutDeps, CheckoutFailed, checkout
from demo_shop.domain import Charge, OrderStatus
from demo_shop.errors import OutOfStock
from demo_shop.reconcile import Reconciler
from demo_shop.resilience import Deadline

from .fakes import FakeClock, checkout_deps

GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


Clock = FakeClock  # time.monotonic for the deadlines, moved on by a slow dependency's fake


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    tick = Clock()
    monkeypatch.setattr(resilience.time, "monotonic", tick)
    return tick


@pytest.fixture
def deps() -> CheckoutDeps:
    return checkout_deps({"A": 2})


def slow(fake: Any, method: str, clock: Clock, seconds: float) -> None:
    """The fake's method answers, but only after seconds (a dependency trickling bytes)."""
    real = getattr(fake, method)

    def late(*args: Any, **kwargs: Any) -> Any:
        clock.now += seconds
        return real(*args, **kwargs)

    setattr(fake, method, late)


def test_stock_that_took_the_deadline_means_no_authorize(deps: CheckoutDeps,
                                                        clock: Clock) -> None:
    slow(deps.inventory, "reserve_stock", clock, 6.0)
    with pytest.raises(CheckoutFailed) as failed:
        checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert failed.value.charged is False
    assert deps.payments.calls == []
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
    assert deps.inventory.states() == ["released"]


def test_a_hold_that_came_back_too_late_is_voided_not_captured(deps: CheckoutDeps,
                                                              clock: Clock) -> None:
    slow(deps.payments, "authorize", clock, 4.5)  # the work deadline is 5 - 1 s of reserve
    with pytest.raises(CheckoutFailed) as failed:
        checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert failed.value.charged is False
    assert "capture" not in deps.payments.calls
    assert [c.status for c in deps.payments.charges.values()] == ["voided"]


def test_retry_of_a_failed_order_whose_charge_was_captured_charges_once(
        deps: CheckoutDeps) -> None:
    """The race the issue found: the reconciler gave the order up while its checkout still
    ran, and the checkout captured after. A retry of the same key must find that capture,
    not make a second charge with attempt + 1."""
    checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))  # o1, captured
    order = deps.orders.orders["o1"]
    order.status, order.stock_committed = OrderStatus.FAILED, False  # given up by mistake
    deps.inventory.reservations.clear()
    deps.carts.carts["cart1"] = {"A": 2}
    result = checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert result.order.status is OrderStatus.CONFIRMED
    assert len(deps.payments.charges) == 1 and len(deps.payments.captured()) == 1
    assert result.order.charge_id == deps.payments.captured()[0].charge_id


def test_retry_of_a_failed_order_whose_processor_cannot_be_asked_charges_nothing(
        deps: CheckoutDeps) -> None:
    deps.payments.charges["o9:1"] = Charge("ch_9", "voided", 2000, "o9:1", "o9")
    checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    deps.orders.orders["o1"].status = OrderStatus.FAILED
    deps.carts.carts["cart1"] = {"A": 2}
    deps.payments.fail_on["find"] = resilience.DependencyUnavailable("payments", "refused", "")
    with pytest.raises(CheckoutFailed) as failed:
        checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert failed.value.charged is None  # it cannot say
    assert deps.payments.calls.count("authorize") == 1
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED


def test_a_poison_order_is_set_aside_and_the_one_behind_it_is_settled(
        deps: CheckoutDeps) -> None:
    """o1: confirmed, its reservation expired, and the stock is gone (re-reserving it is
    OutOfStock). o2: its payment unknown but captured. Before: OutOfStock escaped the pass
    and o1 stayed first forever; o2 was never confirmed."""
    checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    first = deps.orders.orders["o1"]
    first.stock_committed = False
    deps.inventory.reservations[first.reservation_id] = ("expired", first.items)
    deps.inventory.stock["A"] = 0
    deps.orders.orders["o2"] = second = first.__class__(
        **{f: getattr(first, f) for f in first.__slots__})
    second.order_id, second.idempotency_key = "o2", "key2"
    second.status, second.reservation_id = OrderStatus.PAYMENT_UNKNOWN, None
    deps.payments.charges["o2:1"] = Charge("ch_2", "captured", 2000, "o2:1", "o2")
    before = reconcile.RECONCILE_ERRORS.labels("OutOfStock")._value.get()
    done = Reconciler(deps, deps.orders, settle_seconds=0).run_once()
    assert done.confirmed == 1 and deps.orders.orders["o2"].status is OrderStatus.CONFIRMED
    assert deps.orders.set_aside_ids == ["o1"]
    assert reconcile.RECONCILE_ERRORS.labels("OutOfStock")._value.get() == before + 1
    again = Reconciler(deps, deps.orders, settle_seconds=0).run_once()
    assert again.skipped == 0 and again.confirmed == 0  # o1 waits its backoff


@pytest.fixture
def trickler() -> Any:
    """A loopback HTTP server that sends its whole answer one byte every 50 ms: each read
    gets something well inside any read timeout, the answer takes about 2.5 s."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                body = b'{"ok": true}'
                data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                for byte in data:
                    if stop.wait(0.05):
                        return
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()
    thread.join(5)


def test_an_answer_trickled_past_the_deadline_is_a_timeout_at_the_deadline(
        trickler: str) -> None:
    """Per-read timeouts would wait for the whole answer (about 2.5 s) and return it."""
    client = JsonHttp(trickler, resilience.Timeouts(connect=0.5, read=2.0))
    with pytest.raises(httpx.ReadTimeout):
        client.request("GET", "/", Deadline(0.6))
    client.close()


def test_a_shop_without_deadlines_waits_the_whole_trickle(trickler: str) -> None:
    """The fragile shop (within_deadline off) keeps httpx's per-read timeouts."""
    client = JsonHttp(trickler, resilience.Timeouts(connect=0.5, read=2.0,
                                                    within_deadline=False))
    assert client.request("GET", "/", Deadline(0.6)).json() == {"ok": True}
    client.close()


def test_a_retried_order_parked_for_payment_is_paid_with_its_own_attempts_key(
        deps: CheckoutDeps) -> None:
    """Found by payments/inventory-trickle: a failed order retried (attempt 2) and parked
    as payment_pending kept attempt 1 in the store, so the reconciler charged key o1:1 anew
    and attempt 2's hold stayed open on a confirmed order."""
    from demo_shop.vault import CardVault

    deps.vault, deps.payment_pending_seconds = CardVault("test-secret"), 600
    deps.inventory.fail_on["reserve"] = resilience.DependencyUnavailable(
        "inventory", "refused", "")
    with pytest.raises(CheckoutFailed):
        checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))  # o1 failed, nothing charged
    deps.inventory.fail_on.clear()
    deps.payments.fail_on["authorize"] = resilience.OutcomeUnknown("payments", "timeout", "")
    real_authorize = deps.payments.authorize

    def held_then_lost(*args: Any, **kwargs: Any) -> Any:
        deps.payments.fail_on.pop("authorize")
        real_authorize(*args, **kwargs)  # the hold is made; its answer is lost
        raise resilience.OutcomeUnknown("payments", "timeout", "")

    deps.payments.authorize = held_then_lost  # type: ignore[method-assign]
    retried = checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert retried.order.status is OrderStatus.PAYMENT_PENDING and retried.order.attempt == 2
    deps.payments.authorize = real_authorize  # type: ignore[method-assign]
    assert deps.orders.orders["o1"].attempt == 2  # stored with the attempt it holds
    Reconciler(deps, deps.orders, settle_seconds=0).run_once()
    assert deps.orders.orders["o1"].status is OrderStatus.CONFIRMED
    assert [(c.idempotency_key, c.status) for c in deps.payments.charges.values()] == [
        ("o1:2", "captured")]


def test_a_charge_found_on_a_retried_order_goes_back_when_the_stock_is_gone(
        deps: CheckoutDeps) -> None:
    checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))  # o1, captured
    order = deps.orders.orders["o1"]
    order.status, order.stock_committed = OrderStatus.FAILED, False  # given up by mistake
    deps.carts.carts["cart1"] = {"A": 2}
    deps.inventory.stock["A"] = 0
    with pytest.raises(OutOfStock):
        checkout(deps, "cart1", "key1", GOOD, Deadline(5.0))
    assert [c.status for c in deps.payments.charges.values()] == ["refunded"]
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
