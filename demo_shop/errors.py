"""The errors adapters raise when an outside system fails, in the shop's own words."""

from __future__ import annotations

from .domain import ShopError

DEPENDENCIES = ("payments", "inventory", "database", "cache")


class DependencyUnavailable(ShopError):
    """A dependency did not do what was asked, and certainly did nothing.

    Raised when the request never reached it (refused, connect timeout, proxy down)
    or when it answered that it could not take the request (a 5xx before processing).
    """

    def __init__(self, dependency: str, kind: str, detail: str = "") -> None:
        super().__init__(f"{dependency} unavailable ({kind}) {detail}".strip())
        self.dependency = dependency
        self.kind = kind
        self.detail = detail


class OutcomeUnknown(DependencyUnavailable):
    """The request was sent but its answer was lost: it may or may not have taken effect."""


class OutOfStock(ShopError):
    """Inventory cannot reserve the asked quantity of a sku."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"not enough stock for {sku}")
        self.sku = sku


class ReservationClosed(ShopError):
    """A reservation that is no longer active (expired, released or already committed)."""

    def __init__(self, reservation_id: str, state: str) -> None:
        super().__init__(f"reservation {reservation_id} is {state}")
        self.reservation_id = reservation_id
        self.state = state


class PaymentDeclined(ShopError):
    """The card processor declined the card."""

    def __init__(self, code: str) -> None:
        super().__init__(f"card declined: {code}")
        self.code = code
