"""A card as a processor would demand it, checked before any dependency is called: ASCII
digits, the Luhn checksum, an expiry not yet past, a CVC of 3 or 4 digits. A card that
fails is the shopper's typo, answered 400 naming the field — never sent to payments, never
an order, never a held unit of stock, never a failure a breaker counts."""

from __future__ import annotations

import re
import time
from typing import Any

from .errors import PaymentDeclined

DIGITS = re.compile(r"[0-9]+\Z")  # str.isdigit() also takes '²' and '٣', which int() does not
MIN_DIGITS, MAX_DIGITS = 12, 19


class InvalidCard(PaymentDeclined):
    """A card that cannot be charged as given: the shopper must fix `field`.

    A kind of decline (no payment, the order does not go on), answered 400 not 402."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("invalid_card")
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


def luhn_ok(number: str) -> bool:
    """The Luhn checksum every card number carries (number: ASCII digits)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and DIGITS.match(value) and len(value) <= 4:
        return int(value)
    return None


def validate_card(card: Any, *, now: time.struct_time | None = None) -> dict[str, Any]:
    """The card as {number, exp_month, exp_year, cvc} (number without spaces), or
    InvalidCard naming the first field to fix."""
    if not isinstance(card, dict):
        raise InvalidCard("card", "card must be an object with number, exp_month, exp_year "
                          "and cvc")
    raw = card.get("number")
    number = raw.replace(" ", "") if isinstance(raw, str) else ""
    if not (DIGITS.match(number) and MIN_DIGITS <= len(number) <= MAX_DIGITS):
        raise InvalidCard("card.number", f"card number must be {MIN_DIGITS} to {MAX_DIGITS} "
                          "digits")
    if not luhn_ok(number):
        raise InvalidCard("card.number", "card number is not valid: please check it")
    month, year = _whole(card.get("exp_month")), _whole(card.get("exp_year"))
    if month is None or not 1 <= month <= 12:
        raise InvalidCard("card.exp_month", "expiry month must be a number from 1 to 12")
    if year is None or not 2000 <= year <= 2100:
        raise InvalidCard("card.exp_year", "expiry year must be a four-digit year")
    today = now or time.gmtime()
    if (year, month) < (today.tm_year, today.tm_mon):
        raise InvalidCard("card.exp_year", "the card has expired")
    cvc = card.get("cvc")
    if not (isinstance(cvc, str) and DIGITS.match(cvc) and 3 <= len(cvc) <= 4):
        raise InvalidCard("card.cvc", "security code (CVC) must be 3 or 4 digits")
    return {"number": number, "exp_month": month, "exp_year": year, "cvc": cvc}
