"""What the API and the pages share: who the shopper's cart is, and running a checkout."""

from __future__ import annotations

import re
import time
import uuid
from contextlib import nullcontext
from typing import Any

from flask import current_app, g, request

from ..checkout import CheckoutFailed, CheckoutResult, checkout
from ..domain import Cart, ShopError, UnknownProduct
from ..errors import DependencyUnavailable, PaymentDeclined
from ..metrics import CHECKOUT_LATENCY, CHECKOUT_OUTCOMES, REVENUE_AT_RISK, REVENUE_CONFIRMED
from ..resilience import Deadline
from ..wiring import Shop
from .errors import BadInput
from .fallbacks import CheckoutGate, forget_cart, load_cart, note_fallback, resilient, save_cart
from .schemas import CART_ID_PATTERN

CART_COOKIE = "cart_id"
_CART_ID = re.compile(CART_ID_PATTERN)


def shop() -> Shop:
    """The app's wired collaborators."""
    result: Shop = current_app.extensions["shop"]
    return result


def cart_id() -> str:
    """The cart named by the X-Cart-Id header or cart_id cookie; a new one on first use.
    A header that is not a cart id is refused (400): an API client that sent a bad one
    must learn it now, not from an empty cart at checkout. A bad cookie (a browser cannot
    fix it) just starts a new cart."""
    if "cart_id" not in g:
        header = request.headers.get("X-Cart-Id")
        if header is not None:
            if not _CART_ID.fullmatch(header):
                raise BadInput("X-Cart-Id must be 32 lowercase hex characters (the cart_id "
                               "the shop answered), or leave it out for a new cart",
                               field="X-Cart-Id")
            g.cart_id = header
        elif _CART_ID.fullmatch(given := request.cookies.get(CART_COOKIE, "")):
            g.cart_id = given
        else:
            g.cart_id = uuid.uuid4().hex
            g.new_cart = True
    return str(g.cart_id)


def remember_cart(response: Any) -> Any:
    """Set the cart cookie when this request created the cart."""
    if g.get("new_cart"):
        response.set_cookie(CART_COOKIE, g.cart_id, max_age=7 * 24 * 3600, httponly=True,
                            samesite="Lax")
    return response


def products_by_sku() -> dict[str, dict[str, Any]]:
    """The catalog from the orders database (through its short-lived cache), by sku; a
    catalog served stale while the database fails marks the answer degraded."""
    wired = shop()
    if wired.catalog is None:
        rows = wired.orders.products(Deadline(2.0))
    else:
        rows, fresh = wired.catalog()
        if not fresh:
            note_fallback("catalog_cache")
    return {row["sku"]: row for row in rows}


def current_cart() -> Cart:
    """The shopper's cart (from the signed cookie while Redis is unavailable)."""
    return load_cart(shop().carts, cart_id())


def stock_levels() -> dict[str, int]:
    """Available units per sku for the pages; {} when unknown. Cached stock that is not
    fresh (inventory slow or down) marks the answer degraded."""
    try:
        levels, fresh = shop().stock_levels()
    except DependencyUnavailable:
        if not resilient():
            raise
        levels, fresh = {}, False  # nothing known yet: the page says "checking"
    if not fresh:
        note_fallback("stock_cache")
    return levels


def cart_view(cart: Cart, products: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cart as the API shows it."""
    prices = {sku: p["sale_price_cents"] for sku, p in products.items()}
    items = [line for line in cart.items() if line.sku in prices]
    return {
        "cart_id": cart.cart_id,
        "items": [{"sku": line.sku, "qty": line.qty} for line in items],
        "total_cents": sum(prices[line.sku] * line.qty for line in items),
    }


def add_to_cart(sku: str, qty: int) -> tuple[Cart, dict[str, dict[str, Any]]]:
    """Add qty of a catalog sku to the shopper's cart and store it."""
    products = products_by_sku()
    if sku not in products:
        raise UnknownProduct(sku)
    store = shop().carts
    cart = load_cart(store, cart_id())
    cart.add(sku, qty)
    save_cart(store, cart)
    return cart, products


def run_checkout(idempotency_key: str, card: dict[str, Any]) -> CheckoutResult:
    """Check out the shopper's cart, recording the outcome, latency and revenue."""
    started = time.perf_counter()
    outcome = "error"
    gate: CheckoutGate | None = current_app.extensions.get("checkout_gate")
    try:
        # A checkout that cannot start in time is shed (429) rather than queued past the
        # deadline; it is counted like every other outcome.
        with gate.admit() if gate is not None else nullcontext():
            result, outcome = _checkout(idempotency_key, card)
        return result
    except PaymentDeclined:
        outcome = "declined"
        raise
    except CheckoutFailed as exc:
        outcome = "graceful_error"
        REVENUE_AT_RISK.inc(exc.total_cents or _cart_value())
        raise
    except ShopError:  # sold out, empty cart, shed, ...
        outcome = "graceful_error"
        raise
    finally:
        CHECKOUT_OUTCOMES.labels(outcome).inc()
        CHECKOUT_LATENCY.labels(outcome).observe(time.perf_counter() - started)


def _cart_value() -> int:
    """The cart's value at the prices the shopper was shown, for a checkout that failed
    before it could be priced (its orders database unreachable: the revenue most at risk);
    0 when even that is unknown."""
    try:
        return int(cart_view(current_cart(), products_by_sku())["total_cents"])
    except ShopError:
        return 0


def _checkout(idempotency_key: str, card: dict[str, Any]) -> tuple[CheckoutResult, str]:
    """The checkout, and its outcome label: success or pending_payment."""
    deadline = Deadline(current_app.config["CHECKOUT_DEADLINE"])
    cart = current_cart()
    result = checkout(shop().deps, cart_id(), idempotency_key, card, deadline, cart)
    forget_cart()
    if not result.replayed:
        REVENUE_CONFIRMED.inc(result.order.total_cents)
    if result.order.status == "payment_pending":
        note_fallback("payment_pending")
        return result, "pending_payment"
    return result, "success"
