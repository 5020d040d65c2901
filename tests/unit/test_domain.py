"""Money, carts and the order state machine."""

from __future__ import annotations

import pytest

from demo_shop.domain import (
    Cart,
    IllegalTransition,
    InvalidQuantity,
    Order,
    OrderStatus,
    UnknownProduct,
    check_transition,
    format_cents,
    validate_qty,
)


@pytest.mark.parametrize("cents,text", [(0, "$0.00"), (5, "$0.05"), (12345, "$123.45"),
                                         (123456789, "$1,234,567.89"), (-250, "-$2.50")])
def test_format_cents(cents: int, text: str) -> None:
    assert format_cents(cents) == text


@pytest.mark.parametrize("qty", [0, 100, -1, 1.5, "2", True, None])
def test_quantity_outside_1_to_99_is_rejected(qty: object) -> None:
    with pytest.raises(InvalidQuantity):
        validate_qty(qty)


def test_cart_total_is_integer_cents() -> None:
    cart = Cart("c")
    cart.add("A", 3)
    cart.add("B", 1)
    assert cart.total_cents({"A": 1999, "B": 1}) == 5998


def test_cart_add_keeps_each_line_within_99() -> None:
    cart = Cart("c")
    cart.add("A", 60)
    with pytest.raises(InvalidQuantity):
        cart.add("A", 40)
    assert cart.lines == {"A": 60}


def test_cart_set_zero_removes_the_line() -> None:
    cart = Cart("c", {"A": 2})
    cart.set("A", 0)
    assert cart.is_empty


def test_cart_total_with_unknown_sku_raises() -> None:
    with pytest.raises(UnknownProduct):
        Cart("c", {"X": 1}).total_cents({})


def test_items_are_sorted_for_deterministic_orders() -> None:
    assert [line.sku for line in Cart("c", {"B": 1, "A": 1}).items()] == ["A", "B"]


@pytest.mark.parametrize("current,new", [
    ("pending", "confirmed"), ("pending", "declined"), ("pending", "failed"),
    ("failed", "pending"), ("payment_unknown", "confirmed"), ("payment_pending", "cancelled"),
])
def test_allowed_transitions(current: str, new: str) -> None:
    check_transition(OrderStatus(current), OrderStatus(new))


@pytest.mark.parametrize("current,new", [
    ("confirmed", "failed"), ("declined", "confirmed"), ("cancelled", "pending"),
    ("failed", "confirmed"), ("confirmed", "pending"),
])
def test_forbidden_transitions(current: str, new: str) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(OrderStatus(current), OrderStatus(new))


def test_order_transition_changes_status_only_when_allowed() -> None:
    order = Order("o", "k", OrderStatus.CONFIRMED, 100, [])
    with pytest.raises(IllegalTransition):
        order.transition(OrderStatus.FAILED)
    assert order.status is OrderStatus.CONFIRMED
