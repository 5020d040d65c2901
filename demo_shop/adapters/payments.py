"""The shop's client of the payments service (a simulated card processor)."""

from __future__ import annotations

from typing import Any

import httpx

from ..cards import InvalidCard
from ..domain import Charge
from ..errors import PaymentDeclined
from ..resilience import Deadline
from .http import DependencyClient

DEPENDENCY = "payments"


def charge_from_json(body: dict[str, Any]) -> Charge:
    """A charge from the processor's JSON."""
    return Charge(
        charge_id=str(body["charge_id"]),
        status=str(body["status"]),
        amount_cents=int(body["amount_cents"]),
        idempotency_key=str(body["idempotency_key"]),
        order_id=str(body["order_id"]),
    )


class PaymentsClient(DependencyClient):
    """authorize / capture / void / refund / find, each one instrumented HTTP call."""

    dependency = DEPENDENCY

    def business_error(self, response: httpx.Response, body: dict[str, Any]) -> None:
        """402: the card was declined. Any other 4xx: the processor refused what it was
        sent (a card it will not take, a charge in the wrong state) — an answer about this
        request, never an outage: no breaker counts it and the status page stays green."""
        if response.status_code == 402:
            raise PaymentDeclined(str(body.get("decline_code", "card_declined")))
        if response.status_code == 400:
            raise InvalidCard("card", "the card processor did not accept this card: "
                              "please check the card details")
        if 400 <= response.status_code < 500:
            raise PaymentDeclined(f"rejected_{response.status_code}")

    def authorize(
        self,
        idempotency_key: str,
        order_id: str,
        amount_cents: int,
        card: dict[str, Any],
        deadline: Deadline,
        merchant_initiated: bool = False,
    ) -> Charge:
        """Place a hold for amount on card; the same key never authorizes twice.
        merchant_initiated: a payment the shop takes later with a stored card (no CVC)."""
        body = self._call(
            "authorize", "POST", "/v1/charges", deadline,
            json={"order_id": order_id, "amount_cents": amount_cents, "currency": "usd",
                  "card": card, "capture": False, "merchant_initiated": merchant_initiated},
            headers={"Idempotency-Key": idempotency_key},
        )
        return charge_from_json(body)

    def capture(self, charge_id: str, deadline: Deadline) -> Charge:
        """Move the held money; capturing a captured charge is a no-op."""
        return charge_from_json(
            self._call("capture", "POST", f"/v1/charges/{charge_id}/capture", deadline)
        )

    def void(self, charge_id: str, deadline: Deadline) -> Charge:
        """Release a hold that was never captured."""
        return charge_from_json(
            self._call("void", "POST", f"/v1/charges/{charge_id}/void", deadline)
        )

    def refund(self, charge_id: str, deadline: Deadline) -> Charge:
        """Give back captured money."""
        return charge_from_json(
            self._call("refund", "POST", f"/v1/charges/{charge_id}/refund", deadline)
        )

    def find(self, idempotency_key: str, deadline: Deadline) -> Charge | None:
        """The charge made with this key, if any (for reconciling a lost answer)."""
        body = self._call(
            "find", "GET", "/v1/charges", deadline, params={"idempotency_key": idempotency_key}
        )
        charges = body.get("charges", [])
        return charge_from_json(charges[0]) if charges else None
