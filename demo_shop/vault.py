"""Cards kept for a payment taken later: sealed (Fernet: AES-128-CBC with an HMAC) with a key
derived from the shop's vault key (not the cookie key), stored beside the order only while its
payment is pending, and erased when the order is settled. Only what a merchant-initiated
charge needs is kept — number and expiry, never the CVC (card rules forbid storing it after
authorization, and a stored-credential charge is made without it). Nothing outside this
module sees a sealed card's contents."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

CARD_FIELDS = ("number", "exp_month", "exp_year")  # never "cvc"


class CardVault:
    """Seal a card for storage, open it again for the capture."""

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(b"demo-shop card vault:" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, card: dict[str, Any]) -> str:
        """The card's fields, encrypted and authenticated, as text."""
        kept = {k: card[k] for k in CARD_FIELDS}
        return self._fernet.encrypt(json.dumps(kept).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any] | None:
        """The card, or None when the text was not sealed with this shop's key."""
        try:
            card: dict[str, Any] = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            return None
        return card
