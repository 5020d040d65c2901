"""The card processor's client, as a shop team writes one for Oscar (Oscar's "Integrating
payment gateways" docs: a small facade that raises Oscar's payment exceptions).

One call takes the money (authorize and capture together, `capture: true`), keyed by the
shopper's Idempotency-Key, so a retried checkout never charges twice.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from django.conf import settings
from oscar.apps.payment.exceptions import PaymentError, UnableToTakePayment


def charge(order_number: str, amount: Decimal, currency: str, card: dict,
           idempotency_key: str) -> str:
    """Take `amount` for the order; the charge's id. UnableToTakePayment when the card is
    declined, PaymentError when the processor cannot be reached or answers otherwise."""
    try:
        answer = httpx.post(
            f"{settings.PAYMENTS_URL}/v1/charges",
            json={"order_id": order_number, "amount_cents": int(amount * 100),
                  "currency": currency.lower(), "card": card, "capture": True},
            headers={"Idempotency-Key": idempotency_key,
                     "Authorization": f"Bearer {settings.PAYMENTS_TOKEN}"},
            timeout=settings.PAYMENTS_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise PaymentError("the card processor did not answer") from exc
    if answer.status_code in (400, 402):  # a card the processor refuses or declines
        raise UnableToTakePayment("the card was declined")
    if answer.status_code not in (200, 201):
        raise PaymentError(f"the card processor answered {answer.status_code}")
    body = answer.json()
    if body.get("status") == "declined":
        raise UnableToTakePayment("the card was declined")
    if body.get("status") != "captured":
        raise PaymentError(f"the charge is {body.get('status')}")
    return str(body["charge_id"])
