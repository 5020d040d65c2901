"""The JSON API beside the pages: same behaviour, problem+json errors (DESIGN.md contract).

Requests are validated by the pydantic models in `schemas`, and the same models describe
the API in the OpenAPI 3.1 document at /api/openapi.json (flask-openapi3 builds it from the
routes and models below), so the document cannot drift from what the shop accepts.
"""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag
from werkzeug.exceptions import NotFound

from ..health import HealthBoard
from ..resilience import Deadline
from .schemas import (
    CartAnswer,
    CartHeaders,
    CartItemIn,
    CheckoutAnswer,
    CheckoutHeaders,
    CheckoutIn,
    OrderAnswer,
    OrderPath,
    ProductAnswer,
    StatusAnswer,
    problems,
)
from .shopping import (
    add_to_cart,
    cart_view,
    current_cart,
    products_by_sku,
    run_checkout,
    shop,
    stock_levels,
)

bp = APIBlueprint("api", __name__, url_prefix="/api")
SHOP = Tag(name="shop", description="Catalog, cart, checkout and orders")
STATUS = Tag(name="status", description="What the shop knows of its dependencies")


@bp.get("/products", tags=[SHOP], responses={200: ProductAnswer.listed(), **problems(503)})
def products() -> Response:
    """The catalog with list and sale prices, and available units (null when unknown)."""
    available = stock_levels()
    return jsonify([
        {**{k: p[k] for k in ("sku", "name", "price_cents", "sale_price_cents")},
         "available": available.get(p["sku"])}
        for p in products_by_sku().values()
    ])


@bp.get("/cart", tags=[SHOP], responses={200: CartAnswer, **problems(400, 503)})
def get_cart(header: CartHeaders) -> Response:
    """The shopper's cart (X-Cart-Id, or the cart cookie; a new cart when neither)."""
    products_ = products_by_sku()
    return jsonify(cart_view(current_cart(), products_))


@bp.post("/cart/items", tags=[SHOP], responses={200: CartAnswer, **problems(400, 404, 503)})
def add_item(header: CartHeaders, body: CartItemIn) -> Response:
    """Add qty of sku to the cart."""
    cart, products_ = add_to_cart(body.sku, body.qty)
    return jsonify(cart_view(cart, products_))


@bp.post("/checkout", tags=[SHOP],
         responses={201: CheckoutAnswer, **problems(400, 402, 404, 409, 422, 429, 503)})
def checkout(header: CheckoutHeaders, body: CheckoutIn) -> tuple[Response, int]:
    """Take the order for the cart. The same Idempotency-Key with the same cart and card
    returns the same order; with another cart or card it is refused (422)."""
    result = run_checkout(header.idempotency_key, body.card.model_dump())
    order = result.order
    return jsonify({
        "order_id": order.order_id, "status": str(order.status),
        "total_cents": order.total_cents,
    }), 201


@bp.get("/orders/<order_id>", tags=[SHOP], responses={200: OrderAnswer, **problems(404, 503)})
def get_order(path: OrderPath) -> Response:
    """One order with its items."""
    order = shop().orders.get(path.order_id, Deadline(2.0))
    if order is None:
        raise NotFound()
    return jsonify({
        "order_id": order.order_id, "status": str(order.status),
        "total_cents": order.total_cents,
        "items": [{"sku": line.sku, "qty": line.qty} for line in order.items],
    })


@bp.get("/status", tags=[STATUS], responses={200: StatusAnswer})
def status() -> Response:
    """What the shop knows of each dependency, as shoppers are told."""
    snapshot = shop().board.snapshot()
    return jsonify({
        "overall": HealthBoard.overall(snapshot),
        "dependencies": {name: s.as_json() for name, s in snapshot.items()},
    })
