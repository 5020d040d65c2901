"""The graceful-failure contract: every failure becomes an honest sorry page or problem+json.

One table turns each shop error into what a shopper is told: the status, a plain-words
reason, what is safe (only what is true), and when to retry. Internal names (hosts, ports,
exception classes) never reach the body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..cards import InvalidCard
from ..checkout import CheckoutFailed, CheckoutInProgress, IdempotencyKeyReused
from ..domain import EmptyCart, InvalidQuantity, ShopError, UnknownProduct
from ..errors import DependencyUnavailable, OutOfStock, PaymentDeclined
from ..metrics import ERROR_PAGES
from .fallbacks import Overloaded

log = logging.getLogger("demo_shop")

WHAT_HAPPENED = {
    "payments": "Our card payment provider is not answering right now, so we could not take "
    "your payment.",
    "inventory": "We could not check stock for your items right now.",
    "database": "We could not save or look up orders right now.",
    "cache": "We could not load your shopping cart right now.",
}
PAYMENT_STATEMENT = {
    "not_charged": "You have not been charged.",
    "unknown": "We could not confirm whether your payment went through. You will never be "
    "charged twice: check out again with the same button, or wait for our email — if money "
    "was taken, your order will be confirmed or the charge refunded.",
}


@dataclass(frozen=True, slots=True)
class Trouble:
    """What to tell the shopper about one failure."""

    status: int
    reason: str  # low-cardinality, for metrics and the problem type
    title: str
    detail: str
    retry_after: int | None = None
    cart_saved: bool = False
    payment: str | None = None  # not_charged | unknown | None (no payment was involved)
    field: str | None = None  # the request field to fix, for a 400


def trouble_for(exc: BaseException, retry_after: int) -> Trouble:
    """The one mapping from an error to what a shopper sees."""
    if isinstance(exc, CheckoutFailed):
        return Trouble(
            503, f"{exc.dependency}_unavailable", "We could not take your order just now",
            WHAT_HAPPENED.get(exc.dependency, "Part of our shop is not answering right now."),
            retry_after=exc.retry_after, cart_saved=exc.cart_saved,
            payment="not_charged" if exc.charged is False else "unknown",
        )
    if isinstance(exc, DependencyUnavailable):
        return Trouble(
            503, f"{exc.dependency}_unavailable", "This part of the shop is not available",
            WHAT_HAPPENED.get(exc.dependency, "Part of our shop is not answering right now."),
            retry_after=retry_after, cart_saved=exc.dependency != "cache",
        )
    if isinstance(exc, Overloaded):
        return Trouble(429, "overloaded", "We are very busy right now",
                       "So many shoppers are checking out that we could not start yours "
                       "in time. Nothing was ordered and you have not been charged; please "
                       "try again in a moment.", retry_after=exc.retry_after, cart_saved=True,
                       payment="not_charged")
    if isinstance(exc, CheckoutInProgress):
        return Trouble(409, "checkout_in_progress", "Your order is already being placed",
                       "We are still working on this order. Please wait a moment and refresh.",
                       retry_after=2, cart_saved=True)
    if isinstance(exc, InvalidCard):
        return Trouble(400, "invalid_card", "Please check your card details", exc.message,
                       cart_saved=True, payment="not_charged", field=exc.field)
    if isinstance(exc, IdempotencyKeyReused):
        return Trouble(422, "idempotency_key_reused", "That order key was used for another "
                       "order", "This Idempotency-Key was already used with a different cart "
                       "or request. Send a new key for a new order.", cart_saved=True)
    if isinstance(exc, PaymentDeclined):
        return Trouble(402, "payment_declined", "Your card was declined",
                       f"The card issuer declined the payment ({exc.code}). "
                       "Please try another card.", cart_saved=True, payment="not_charged")
    if isinstance(exc, OutOfStock):
        return Trouble(409, "out_of_stock", "Some items sold out",
                       f"We do not have enough of {exc.sku} left. Please change your cart.",
                       cart_saved=True, payment="not_charged")
    if isinstance(exc, EmptyCart):
        return Trouble(400, "empty_cart", "Your cart is empty", "Add something first.")
    if isinstance(exc, InvalidQuantity):
        return Trouble(400, "invalid_quantity", "That quantity does not work", str(exc))
    if isinstance(exc, UnknownProduct):
        return Trouble(404, "unknown_product", "We do not sell that product",
                       "The product you asked for is not in our catalog.")
    if isinstance(exc, BadInput):
        return Trouble(400, "bad_input", "Something in the request is not right", str(exc),
                       field=exc.field)
    if isinstance(exc, CSRFError):
        return Trouble(400, "csrf", "Your page expired",
                       "For your safety, forms expire. Please go back, reload and try again.")
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        texts = {
            404: ("We could not find that page", "The page or item does not exist."),
            405: ("That action is not allowed here", "Please use the shop's buttons and links."),
            413: ("That request is too large", "Please send less data."),
            400: ("Something in the request is not right", "Please check what you sent."),
        }
        title, detail = texts.get(code, ("Something went wrong", "Please try again."))
        return Trouble(code, f"http_{code}", title, detail)
    return Trouble(500, "internal_error", "Something went wrong on our side",
                   "An unexpected error stopped this page. It has been logged.",
                   retry_after=retry_after)


class BadInput(ShopError):
    """A request body or form the shop cannot read: says what to fix (and which field)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def wants_json() -> bool:
    """API paths and clients that ask for JSON get problem+json; people get pages."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def render_trouble(trouble: Trouble) -> Response:
    """problem+json (RFC 9457) or the branded sorry page, with Retry-After where it helps."""
    fmt = "json" if wants_json() else "html"
    ERROR_PAGES.labels(trouble.reason, fmt).inc()
    request_id = g.get("request_id", "")
    if fmt == "json":
        body: dict[str, object] = {
            "type": f"/problems/{trouble.reason}", "title": trouble.title,
            "status": trouble.status, "detail": trouble.detail, "request_id": request_id,
        }
        if trouble.retry_after is not None:
            body["retry_after"] = trouble.retry_after
        if trouble.field is not None:
            body["field"] = trouble.field
        if trouble.status >= 402:
            body["cart_saved"] = trouble.cart_saved
        if trouble.payment is not None:
            body["charged"] = False if trouble.payment == "not_charged" else None
        response = jsonify(body)
        response.content_type = "application/problem+json"
    else:
        response = Response(render_template(
            "sorry.html", trouble=trouble, request_id=request_id,
            payment_statement=PAYMENT_STATEMENT.get(trouble.payment or ""),
        ), mimetype="text/html")
    response.status_code = trouble.status
    if trouble.retry_after is not None:
        response.headers["Retry-After"] = str(trouble.retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    """Every error the shop can meet ends in render_trouble, never a traceback."""

    def handle(exc: BaseException) -> Response:
        trouble = trouble_for(exc, app.config["RETRY_AFTER_SECONDS"])
        if trouble.status >= 500:
            log.warning("answered %s", trouble.reason, extra={"reason": trouble.reason,
                                                             "error": repr(exc)})
        response = render_trouble(trouble)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110
        return response

    def handle_unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return handle(exc)
        log.exception("unexpected error", extra={"reason": "internal_error"})
        return handle(exc)

    app.register_error_handler(ShopError, handle)
    app.register_error_handler(HTTPException, handle)
    app.register_error_handler(Exception, handle_unexpected)
