"""The storefront's HTML pages: catalog, product, cart, checkout, order and status."""

from __future__ import annotations

import re
import uuid

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound

from ..cards import DIGITS, InvalidCard
from ..domain import InvalidQuantity, format_cents
from ..errors import PaymentDeclined
from ..health import HealthBoard
from ..resilience import Deadline
from .errors import BadInput
from .shopping import (
    add_to_cart,
    cart_view,
    current_cart,
    products_by_sku,
    run_checkout,
    shop,
    stock_levels,
)

bp = Blueprint("pages", __name__)
KEY = re.compile(r"[A-Za-z0-9]+")  # str.isalnum() also takes letters no key is made of


def _form_int(name: str, low: int, high: int) -> int:
    raw = request.form.get(name, "").strip()
    if not (DIGITS.match(raw) and len(raw) <= 6) or not low <= int(raw) <= high:
        raise BadInput(f"{name.replace('_', ' ')} must be a number from {low} to {high}")
    return int(raw)


@bp.get("/")
def index() -> str:
    """The catalog with Labor Day sale prices."""
    return render_template("index.html", products=list(products_by_sku().values()))


@bp.get("/products/<sku>")
def product(sku: str) -> str:
    """One product."""
    found = products_by_sku().get(sku)
    if found is None:
        raise NotFound()
    return render_template("product.html", p=found, available=stock_levels().get(sku))


@bp.post("/cart/add")
def cart_add() -> Response:
    """Add a product from a form, then show the cart (post/redirect/get)."""
    sku = request.form.get("sku", "")
    try:
        qty = _form_int("qty", 1, 99)
    except BadInput as exc:
        raise InvalidQuantity(str(exc)) from exc
    add_to_cart(sku, qty)
    return redirect(url_for("pages.cart"), code=303)  # type: ignore[return-value]


@bp.get("/cart")
def cart() -> str:
    """The cart with its total."""
    products = products_by_sku()
    view = cart_view(current_cart(), products)
    return render_template("cart.html", cart=view, products=products)


@bp.get("/checkout")
def checkout_form() -> str:
    """The payment form; its hidden key makes a double submit place one order."""
    products = products_by_sku()
    view = cart_view(current_cart(), products)
    return render_template("checkout.html", cart=view, idempotency_key=uuid.uuid4().hex,
                           error=None)


@bp.post("/checkout")
def checkout_submit() -> Response | tuple[str, int]:
    """Place the order and go to its page; a declined card shows the form again."""
    key = request.form.get("idempotency_key", "")
    if not (8 <= len(key) <= 64 and KEY.fullmatch(key)):
        raise BadInput("the checkout form is incomplete; please reload the checkout page")
    card = {
        "number": request.form.get("card_number", ""),
        "exp_month": request.form.get("exp_month", "").strip(),
        "exp_year": request.form.get("exp_year", "").strip(),
        "cvc": request.form.get("cvc", "").strip(),
    }
    try:
        result = run_checkout(key, card)
    except InvalidCard as exc:
        # The shopper's typo: the form again, saying which field to fix (a fresh key: the
        # corrected card is another request).
        return _checkout_again(uuid.uuid4().hex, f"Please check your card: {exc.message}."), 400
    except PaymentDeclined as exc:
        return _checkout_again(uuid.uuid4().hex, f"Your card was declined ({exc.code}). "
                               "You have not been charged."), 402
    return redirect(  # type: ignore[return-value]
        url_for("pages.order", order_id=result.order.order_id), code=303
    )


def _checkout_again(key: str, error: str) -> str:
    products = products_by_sku()
    view = cart_view(current_cart(), products)
    return render_template("checkout.html", cart=view, idempotency_key=key, error=error)


@bp.get("/orders/<order_id>")
def order(order_id: str) -> str:
    """An order's page."""
    found = shop().orders.get(order_id[:64], Deadline(2.0))
    if found is None:
        raise NotFound()
    return render_template("order.html", order=found)


@bp.get("/status")
def status() -> str:
    """The status page: each dependency's state in plain words."""
    snapshot = shop().board.snapshot()
    return render_template("status.html", snapshot=snapshot,
                           overall=HealthBoard.overall(snapshot))


def register_filters(app: object) -> None:
    """Template helpers."""
    app.jinja_env.filters["money"] = format_cents  # type: ignore[attr-defined]
