"""The checkout service against fakes: the happy path and every compensation path."""

from __future__ import annotations

import itertools

import pytest

from demo_shop.checkout import CheckoutDeps, CheckoutFailed, CheckoutInProgress, checkout
from demo_shop.domain import EmptyCart, OrderStatus, UnknownProduct
from demo_shop.errors import OutOfStock, PaymentDeclined
from demo_shop.resilience import Deadline

from .fakes import FakeCarts, FakeInventory, FakeOrders, FakePayments, down, lost

GOOD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED = {**GOOD, "number": "4000000000000002"}


@pytest.fixture
def deps() -> CheckoutDeps:
    ids = itertools.count(1)
    return CheckoutDeps(
        carts=FakeCarts({"cart1": {"A": 2, "B": 1}}), orders=FakeOrders(),
        payments=FakePayments(), inventory=FakeInventory(), new_id=lambda: f"o{next(ids)}",
    )


def run(deps: CheckoutDeps, key: str = "key1", card: dict | None = None):
    return checkout(deps, "cart1", key, card or GOOD, Deadline(5.0))


def test_happy_path_confirms_captures_commits_and_clears(deps: CheckoutDeps) -> None:
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED
    assert result.order.total_cents == 2 * 1000 + 250
    assert [c.status for c in deps.payments.charges.values()] == ["captured"]
    assert deps.inventory.states() == ["committed"]
    assert deps.inventory.stock["A"] == 8
    assert "cart1" not in deps.carts.carts
    assert deps.orders.orders["o1"].stock_committed


def test_same_key_twice_returns_same_order_and_charges_once(deps: CheckoutDeps) -> None:
    first = run(deps)
    deps.carts.carts["cart1"] = {"A": 1}
    second = run(deps)
    assert second.replayed and second.order.order_id == first.order.order_id
    assert len(deps.payments.captured()) == 1


def test_empty_cart_is_rejected_before_anything_happens(deps: CheckoutDeps) -> None:
    deps.carts.carts["cart1"] = {}
    with pytest.raises(EmptyCart):
        run(deps)
    assert deps.inventory.reservations == {} and deps.payments.calls == []


def test_unknown_sku_in_cart_is_rejected(deps: CheckoutDeps) -> None:
    deps.carts.carts["cart1"] = {"ZZZ": 1}
    with pytest.raises(UnknownProduct):
        run(deps)


def test_declined_card_releases_stock_and_records_decline(deps: CheckoutDeps) -> None:
    with pytest.raises(PaymentDeclined):
        run(deps, card=DECLINED)
    assert deps.inventory.states() == ["released"]
    assert deps.orders.orders["o1"].status is OrderStatus.DECLINED
    with pytest.raises(PaymentDeclined):  # the same key replays the decline
        run(deps, card=DECLINED)


def test_out_of_stock_reserves_nothing_and_fails_the_order(deps: CheckoutDeps) -> None:
    deps.carts.carts["cart1"] = {"A": 11}
    with pytest.raises(OutOfStock):
        run(deps)
    assert [o.status for o in deps.orders.orders.values()] == [OrderStatus.FAILED]
    assert deps.inventory.states() == [] and deps.payments.calls == []


def test_database_down_at_the_key_lookup_never_promises_not_charged(
        deps: CheckoutDeps) -> None:
    """Found by make mutants (the unmutated shop, postgres-hard-down): a first try took the
    money and could not confirm it as the database went down; its retry, with the
    database still down, was told "you have not been charged"."""
    deps.orders.fail_on["save:confirmed"] = down("database")
    deps.orders.fail_on["save:payment_unknown"] = down("database")
    with pytest.raises(CheckoutFailed) as first:
        run(deps)
    assert first.value.charged is None and len(deps.payments.captured()) == 1
    deps.orders.fail_on["get"] = down("database")
    with pytest.raises(CheckoutFailed) as retry:
        run(deps)
    assert retry.value.dependency == "database"
    assert retry.value.charged is None and retry.value.cart_saved  # never "not charged"


def test_cache_down_does_not_claim_the_cart_is_saved(deps: CheckoutDeps) -> None:
    deps.carts.fail_load = down("cache")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.cart_saved is False and info.value.charged is False


def test_inventory_down_fails_without_charging(deps: CheckoutDeps) -> None:
    deps.inventory.fail_on["reserve"] = down("inventory")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.dependency == "inventory" and info.value.charged is False
    assert deps.payments.calls == []
    assert [o.status for o in deps.orders.orders.values()] == [OrderStatus.FAILED]


def test_reservation_with_lost_answer_is_released(deps: CheckoutDeps) -> None:
    deps.inventory.fail_on["reserve"] = lost("inventory")
    deps.inventory.reserve_happens_before_failure = True
    with pytest.raises(CheckoutFailed):
        run(deps)
    assert deps.inventory.states() == ["released"]


def test_database_down_at_order_insert_holds_no_stock(deps: CheckoutDeps) -> None:
    """The order row comes before the hold: no row, no hold (a worker that died between
    the two would leave a hold nobody knows of)."""
    deps.orders.fail_on["insert"] = down("database")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert deps.inventory.states() == [] and deps.payments.calls == []


def test_payments_down_at_authorize_releases_stock_and_fails_order(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.dependency == "payments" and info.value.charged is False
    assert deps.inventory.states() == ["released"]
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED


def test_lost_authorize_answer_voids_the_hold_it_finds(deps: CheckoutDeps) -> None:
    deps.payments.authorize("o1:1", "o1", 2250, GOOD, Deadline(1))  # the hold was made...
    deps.payments.calls.clear()
    deps.payments.fail_on["authorize"] = lost("payments")  # ...but its answer was lost
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False  # a hold moves no money
    assert deps.payments.calls == ["authorize", "find", "void"]
    assert deps.payments.charges["o1:1"].status == "voided"


def test_payments_down_at_capture_voids_and_releases(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["capture"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert [c.status for c in deps.payments.charges.values()] == ["voided"]
    assert deps.inventory.states() == ["released"]


def test_lost_capture_answer_that_did_capture_is_confirmed(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["capture"] = lost("payments")
    deps.payments.capture_happens_before_failure = True
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED
    assert len(deps.payments.captured()) == 1


def test_lost_capture_answer_with_no_lookup_tells_the_truth(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["capture"] = lost("payments")
    deps.payments.fail_on["find"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is None  # unknown: the page must not say "not charged"
    order = deps.orders.orders["o1"]
    assert order.status is OrderStatus.PAYMENT_UNKNOWN
    assert deps.inventory.states() == ["active"]  # stock is kept for the order


def test_retry_after_unknown_uses_the_same_charge_and_never_charges_twice(
    deps: CheckoutDeps,
) -> None:
    deps.payments.fail_on["capture"] = lost("payments")
    deps.payments.fail_on["find"] = down("payments")
    deps.payments.capture_happens_before_failure = True
    with pytest.raises(CheckoutFailed):
        run(deps)
    deps.payments.fail_on.clear()
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED and not result.replayed
    assert len(deps.payments.charges) == 1 and len(deps.payments.captured()) == 1


def test_retry_after_failure_is_a_fresh_attempt(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    with pytest.raises(CheckoutFailed):
        run(deps)
    deps.payments.fail_on.clear()
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED and result.order.attempt == 2
    assert deps.inventory.states() == ["released", "committed"]
    assert len(deps.payments.captured()) == 1


def test_database_down_at_confirm_refunds_the_capture(deps: CheckoutDeps) -> None:
    deps.orders.fail_on["save:confirmed"] = down("database")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert [c.status for c in deps.payments.charges.values()] == ["refunded"]
    assert deps.inventory.states() == ["released"]


def test_confirm_and_refund_both_failing_does_not_claim_not_charged(deps: CheckoutDeps) -> None:
    deps.orders.fail_on["save:confirmed"] = down("database")
    deps.payments.fail_on["refund"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is None
    assert deps.inventory.states() == ["active"]


def test_stock_commit_failure_still_confirms_the_paid_order(deps: CheckoutDeps) -> None:
    deps.inventory.fail_on["commit"] = down("inventory")
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED
    assert not result.order.stock_committed


def test_cart_clear_failure_still_confirms(deps: CheckoutDeps) -> None:
    deps.carts.fail_clear = down("cache")
    assert run(deps).order.status is OrderStatus.CONFIRMED


def test_concurrent_same_key_sees_in_progress(deps: CheckoutDeps) -> None:
    run(deps)
    order = deps.orders.orders["o1"]
    order.status = OrderStatus.PENDING
    with pytest.raises(CheckoutInProgress):
        run(deps)


def test_failed_checkout_reports_revenue_at_risk(deps: CheckoutDeps) -> None:
    deps.payments.fail_on["authorize"] = down("payments")
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.total_cents == 2250


def test_compensation_respects_the_deadline(deps: CheckoutDeps) -> None:
    deadline = Deadline(5.0)
    work = deadline.earlier(deps.compensation_reserve)
    assert deadline.remaining() - work.remaining() == pytest.approx(1.0, abs=0.01)


def lose_capture_answer_after_capturing(deps: CheckoutDeps) -> None:
    deps.payments.fail_on.update({"capture": lost("payments"), "find": down("payments")})
    deps.payments.capture_happens_before_failure = True
    with pytest.raises(CheckoutFailed):
        run(deps)
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_UNKNOWN
    deps.payments.fail_on.clear()


def test_retry_while_payments_refuse_keeps_an_unknown_payment_unknown(deps: CheckoutDeps) -> None:
    """The gate found this: the retry's refused authorize was taken for 'nothing charged',
    the order failed and its stock was released, though the first capture had gone through."""
    lose_capture_answer_after_capturing(deps)
    deps.payments.fail_on.update({"authorize": down("payments"), "find": down("payments")})
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is None  # never "you have not been charged"
    assert deps.orders.orders["o1"].status is OrderStatus.PAYMENT_UNKNOWN
    assert deps.inventory.states() == ["active"]  # the paid-for stock stays held
    deps.payments.fail_on.clear()
    assert run(deps).order.status is OrderStatus.CONFIRMED
    assert len(deps.payments.captured()) == 1 and deps.inventory.states() == ["committed"]


def test_resuming_when_the_processor_shows_the_capture_confirms(deps: CheckoutDeps) -> None:
    lose_capture_answer_after_capturing(deps)
    deps.payments.fail_on["authorize"] = down("payments")  # refused, but find answers
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED
    assert len(deps.payments.captured()) == 1


def test_resuming_when_the_processor_has_no_capture_fails_honestly(deps: CheckoutDeps) -> None:
    deps.payments.fail_on.update({"capture": lost("payments"), "find": down("payments")})
    with pytest.raises(CheckoutFailed):
        run(deps)  # capture never happened: only a hold exists
    deps.payments.fail_on = {"authorize": down("payments")}
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is False
    assert deps.orders.orders["o1"].status is OrderStatus.FAILED
    assert [c.status for c in deps.payments.charges.values()] == ["voided"]


class _ConfirmLandsThenBreaks(FakeOrders):
    """The database commits the confirmation, then the connection breaks before the
    answer (PostgreSQL restarting under load)."""

    def save(self, order, deadline) -> None:  # type: ignore[no-untyped-def]
        super().save(order, deadline)
        if order.status is OrderStatus.CONFIRMED and not order.stock_committed:
            order.version -= 1  # stored, but the caller never heard
            raise down("database")


def test_a_confirmation_that_landed_is_never_refunded(deps: CheckoutDeps) -> None:
    deps.orders = _ConfirmLandsThenBreaks()
    result = run(deps)
    assert result.order.status is OrderStatus.CONFIRMED
    assert [c.status for c in deps.payments.charges.values()] == ["captured"]


def test_a_confirmation_of_unknown_outcome_keeps_the_money_and_says_unknown(
        deps: CheckoutDeps) -> None:
    deps.orders = _ConfirmLandsThenBreaks()
    original_get = deps.orders.get_by_key
    calls = itertools.count()

    def get_once(key, deadline):  # type: ignore[no-untyped-def]
        if next(calls) > 0:  # the look after the broken save cannot be made either
            raise down("database")
        return original_get(key, deadline)

    deps.orders.get_by_key = get_once  # type: ignore[method-assign]
    with pytest.raises(CheckoutFailed) as info:
        run(deps)
    assert info.value.charged is None  # the truth: we do not know yet
    assert [c.status for c in deps.payments.charges.values()] == ["captured"]  # no refund
