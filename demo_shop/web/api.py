"""The JSON API beside the pages: same behaviour, problem+json errors (DESIGN.md contract)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import NotFound

from ..domain import validate_qty
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

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_KEY_LENGTH = 200


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, or BadInput saying what is wrong with it."""
    if not request.is_json:
        raise BadInput("send a JSON body with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadInput("the body is not valid JSON")
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


@bp.get("/products")
def products() -> Response:
    """The catalog with list and sale prices, and available units (null when unknown)."""
    available = stock_levels()
    return jsonify([
        {**{k: p[k] for k in ("sku", "name", "price_cents", "sale_price_cents")},
         "available": available.get(p["sku"])}
        for p in products_by_sku().values()
    ])


@bp.get("/cart")
def get_cart() -> Response:
    """The shopper's cart."""
    products_ = products_by_sku()
    return jsonify(cart_view(current_cart(), products_))


@bp.post("/cart/items")
def add_item() -> Response:
    """Add {sku, qty} to the cart."""
    body = json_object()
    sku = body.get("sku")
    if not isinstance(sku, str) or not sku:
        raise BadInput("sku must be a non-empty string")
    cart, products_ = add_to_cart(sku, validate_qty(body.get("qty")))
    return jsonify(cart_view(cart, products_))


@bp.post("/checkout")
def checkout() -> tuple[Response, int]:
    """Take the order; the same Idempotency-Key twice returns the same order."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadInput(f"send an Idempotency-Key header (1-{MAX_KEY_LENGTH} characters)")
    card = json_object().get("card")
    if not isinstance(card, dict):
        raise BadInput("card must be an object with number, exp_month, exp_year and cvc")
    result = run_checkout(key, card)
    order = result.order
    return jsonify({
        "order_id": order.order_id, "status": str(order.status),
        "total_cents": order.total_cents,
    }), 201


@bp.get("/orders/<order_id>")
def get_order(order_id: str) -> Response:
    """One order with its items."""
    order = shop().orders.get(order_id[:64], Deadline(2.0))
    if order is None:
        raise NotFound()
    return jsonify({
        "order_id": order.order_id, "status": str(order.status),
        "total_cents": order.total_cents,
        "items": [{"sku": line.sku, "qty": line.qty} for line in order.items],
    })


@bp.get("/status")
def status() -> Response:
    """What the shop knows of each dependency, as shoppers are told."""
    snapshot = shop().board.snapshot()
    return jsonify({
        "overall": HealthBoard.overall(snapshot),
        "dependencies": {name: s.as_json() for name, s in snapshot.items()},
    })
