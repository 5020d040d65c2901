"""Reconciliation with fakes: unfinished checkouts end confirmed or failed, never lost."""

from __future__ import annotations

import pytest

from demo_shop.checkout import CheckoutDeps, CheckoutFailed, checkout
from demo_shop.domain import OrderStatus
from demo_shop.errors import PaymentDeclined
from demo_shop.reconcile import Reconciler, ReleaseQueue
from demo_shop.resilience import Deadline

from .fakes import checkout_deps, down, lost

GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}


@pytest.fixture
def deps() -> CheckoutDeps:
    return checkout_deps({"A": 2})


def reconciler(deps: CheckoutDeps) -> Reconciler:
    return Reconciler(deps, deps.orders, settle_seconds=0)


def lose_the_capture_answer(deps: CheckoutDeps, captured: bool) -> None:
    """A checkout whose capture answer is lost and whose lookup fails: payment_unknown."""
    deps.payments.fail_on.update({"capture": lost("payments"), "find": down("payments")})
    deps.payments.capture_happens_before_failure = captured
    with pytest.raises(CheckoutFailed):
        checkout(deps, "cart1", "key1", GOOD, Deadline(5))
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_UNKNOWN
    deps.payments.fail_on.clear()


def test_unknown_payment_that_was_captured_confirms_the_order(deps: CheckoutDeps) -> None:
    lose_the_capture_answer(deps, captured=True)
    done = reconciler(deps).run_once()
    order = deps.orders.orders["o1"]
    assert (done.confirmed, order.status, order.stock_committed) == (
        1, OrderStatus.CONFIRMED, True)
    assert deps.inventory.states() == ["committed"]
    assert len(deps.payments.captured()) == 1


def test_unknown_payment_that_only_held_is_voided_and_stock_released(deps: CheckoutDeps) -> None:
    lose_the_capture_answer(deps, captured=False)
    done = reconciler(deps).run_once()
    assert done.failed == 1
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
    assert [c.status for c in deps.payments.charges.values()] == ["voided"]
    assert deps.inventory.states() == ["released"]


def test_deferred_stock_commit_is_finished(deps: CheckoutDeps) -> None:
    deps.inventory.fail_on["commit"] = down("inventory")
    assert checkout(deps, "cart1", "key1", GOOD, Deadline(5)).order.stock_committed is False
    deps.inventory.fail_on.clear()
    assert reconciler(deps).run_once().stock_committed == 1
    assert deps.orders.orders["o1"].stock_committed
    assert deps.inventory.states() == ["committed"]


def test_an_expired_reservation_of_a_paid_order_is_reserved_again(deps: CheckoutDeps) -> None:
    deps.inventory.fail_on["commit"] = down("inventory")
    checkout(deps, "cart1", "key1", GOOD, Deadline(5))
    deps.inventory.fail_on.clear()
    rid = deps.orders.orders["o1"].reservation_id
    deps.inventory.reservations[rid] = ("expired", deps.inventory.reservations[rid][1])
    reconciler(deps).run_once()
    assert deps.inventory.stock["A"] == 8  # sold once, from a fresh reservation
    order = deps.orders.orders["o1"]
    assert order.stock_committed and order.reservation_id == "o1-1-r"
    assert deps.inventory.reservations["o1-1-r"][0] == "committed"


def test_a_dependency_still_down_leaves_the_order_for_the_next_pass(deps: CheckoutDeps) -> None:
    lose_the_capture_answer(deps, captured=True)
    deps.payments.fail_on["find"] = down("payments")
    done = reconciler(deps).run_once()
    assert (done.confirmed, done.skipped) == (0, 1)
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_UNKNOWN
    deps.payments.fail_on.clear()
    assert reconciler(deps).run_once().confirmed == 1


def test_an_order_another_worker_claimed_is_left_alone(deps: CheckoutDeps) -> None:
    lose_the_capture_answer(deps, captured=True)
    deps.orders.claimed_elsewhere.add("o1")
    assert reconciler(deps).run_once().skipped == 1
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_UNKNOWN


def test_database_down_means_nothing_to_do_yet(deps: CheckoutDeps) -> None:
    deps.orders.fail_on["find_unreconciled"] = down("database")
    assert reconciler(deps).run_once() == reconciler(deps).run_once()


def test_stock_a_checkout_could_not_give_back_is_released_by_the_next_pass(
    deps: CheckoutDeps,
) -> None:
    """A decline whose release finds inventory unreachable: the hold is queued, not left to
    expire, and the pass gives it back once inventory answers."""
    releases = ReleaseQueue()
    deps.release_later = releases.add
    deps.inventory.fail_on["release"] = down("inventory")
    with pytest.raises(PaymentDeclined):
        checkout(deps, "cart1", "key1", {**GOOD, "number": "4000000000000002"}, Deadline(5))
    assert deps.inventory.states() == ["active"] and len(releases) == 1
    passes = Reconciler(deps, deps.orders, settle_seconds=0, releases=releases)
    assert passes.run_once().released == 0  # inventory still down: it stays queued
    assert len(releases) == 1
    deps.inventory.fail_on.clear()
    assert passes.run_once().released == 1
    assert deps.inventory.states() == ["released"] and len(releases) == 0
