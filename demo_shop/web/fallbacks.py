"""Fallbacks the web layer owns: a cart in a signed cookie (or, for API clients, the same
signed value in the X-Cart-Token header) when Redis is unavailable, and
load shedding at the door of checkout (429 + Retry-After). Each fallback that engages
(here, the stock cache in demo_shop.stock, payment_pending in checkout) is counted in
`shop_fallbacks_total` and named in the answer's `X-Degraded` header, so the harness
classes the answer as degraded.

All of them are off in fragile mode (SHOP_RESILIENCE=off).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer

from ..config import SafeguardPolicy
from ..domain import Cart, ShopError
from ..errors import DependencyUnavailable
from ..metrics import FALLBACKS

COOKIE_CART = "cart_fallback"
# The same signed cart for API clients that keep no cookies: answered in this header while
# Redis is unavailable, sent back by the client on its next calls; an empty value means the
# cart is safe in Redis again (or ordered) and the token is to be forgotten.
CART_TOKEN = "X-Cart-Token"
MAX_COOKIE_LINES = 50


def resilient() -> bool:
    """Whether the shop's fallbacks are on."""
    policy: SafeguardPolicy = current_app.config.get("SAFEGUARDS") or SafeguardPolicy()
    return policy.on("fallbacks")


def note_fallback(name: str) -> None:
    """This answer was given by a fallback: count it and say so in X-Degraded."""
    used: set[str] = g.setdefault("fallbacks", set())
    if name not in used:
        used.add(name)
        FALLBACKS.labels(name).inc()


def mark_degraded(response: Any) -> Any:
    """after_request: name the fallbacks used, and keep or drop the cookie cart."""
    used = g.get("fallbacks")
    if used:
        response.headers["X-Degraded"] = ",".join(sorted(used))
    if "cookie_cart" in g:
        cart: Cart | None = g.cookie_cart
        if cart is None:
            response.delete_cookie(COOKIE_CART)
            response.headers[CART_TOKEN] = ""
        else:
            token = _serializer().dumps({"cart_id": cart.cart_id, "lines": cart.lines})
            response.set_cookie(COOKIE_CART, token, max_age=7 * 24 * 3600, httponly=True,
                                samesite="Lax")
            response.headers[CART_TOKEN] = token
    return response


# ---- the cart: Redis, or a signed cookie while Redis is unavailable ---------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="cart-fallback")


def _cookie_cart(cart_id: str) -> Cart | None:
    raw = request.headers.get(CART_TOKEN) or request.cookies.get(COOKIE_CART)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw)
    except BadSignature:
        return None  # tampered or from another shop: ignored, never trusted
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, dict) or data.get("cart_id") != cart_id:
        return None
    cart = Cart(cart_id, {})
    for sku, qty in list(lines.items())[:MAX_COOKIE_LINES]:
        if isinstance(sku, str) and isinstance(qty, int) and 1 <= qty <= 99:
            cart.lines[sku] = qty
    return cart


def load_cart(store: Any, cart_id: str) -> Cart:
    """The shopper's cart: from Redis, or from the signed cookie while Redis is unavailable.
    A cookie cart made during an outage is merged into Redis once it answers again."""
    try:
        cart: Cart = store.load(cart_id)
    except DependencyUnavailable:
        if not resilient():
            raise
        note_fallback("cookie_cart")
        return _cookie_cart(cart_id) or Cart(cart_id, {})
    kept = _cookie_cart(cart_id)
    if kept is not None and kept.lines:
        for sku, qty in kept.lines.items():
            cart.set(sku, max(qty, cart.lines.get(sku, 0)))
        try:
            store.save(cart)
            g.cookie_cart = None  # merged: the cookie is no longer needed
        except DependencyUnavailable:
            note_fallback("cookie_cart")
    return cart


def save_cart(store: Any, cart: Cart) -> None:
    """Store the cart in Redis, or in the signed cookie while Redis is unavailable."""
    try:
        store.save(cart)
    except DependencyUnavailable:
        if not resilient():
            raise
        note_fallback("cookie_cart")
        g.cookie_cart = cart


def forget_cart() -> None:
    """After an order: drop a cookie cart or cart token too (Redis's is cleared by checkout)."""
    if request.cookies.get(COOKIE_CART) or request.headers.get(CART_TOKEN):
        g.cookie_cart = None


# ---- load shedding ----------------------------------------------------------------------------

class Overloaded(ShopError):
    """Too many checkouts in flight in this worker: answer 429 now instead of queueing."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many checkouts in flight")
        self.retry_after = retry_after


class CheckoutGate:
    """At most `slots` checkouts at once per worker; a checkout waits at most `wait` seconds
    for a slot, then is shed, so no shopper queues past the checkout deadline."""

    def __init__(self, slots: int, wait: float, retry_after: int = 2) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._wait = wait
        self._retry_after = retry_after

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a slot for the block, or raise Overloaded."""
        if not self._slots.acquire(timeout=self._wait):
            raise Overloaded(self._retry_after)
        try:
            yield
        finally:
            self._slots.release()
