"""The API's request and answer models: pydantic validates every request with them and
flask-openapi3 turns the same models into the OpenAPI 3.1 document at /api/openapi.json.

Request models are strict (no "12" for 12, no unknown fields): what the document says is
what the shop takes. A request that does not fit is answered 400 problem+json naming the
field (`validation_problem`).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from flask import Response, request
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
)

from ..domain import OrderStatus
from .errors import BadInput, render_trouble, trouble_for

CART_ID_PATTERN = r"^[a-f0-9]{32}$"


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


def _whole_float(value: Any) -> Any:
    """JSON Schema counts 74.0 as an integer: take it as 74 (and still no "74")."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = Annotated[int, BeforeValidator(_whole_float)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional_header(**kwargs: Any) -> Any:
    """A header that may be left out: documented as a string (never "null" — a header
    has no null); absent means None (a default pydantic does not validate)."""
    return Field(default=None, json_schema_extra=_no_default, **kwargs)


CartId = Annotated[str, StringConstraints(pattern=CART_ID_PATTERN)]
CartToken = Annotated[str, StringConstraints(max_length=4096)]  # a cart of 50 lines fits


class CardIn(_Request):
    """A card as the shopper typed it. Luhn and expiry are checked too (400 naming the
    field); the CVC is used for this authorization only and never stored."""

    number: str = Field(pattern=r"^[0-9 ]{12,23}$", description="12-19 digits, spaces allowed")
    exp_month: Whole = Field(ge=1, le=12)
    exp_year: Whole = Field(ge=2000, le=2100)
    cvc: str = Field(pattern=r"^[0-9]{3,4}$")


class CheckoutIn(_Request):
    """The checkout's body."""

    card: CardIn


class CartItemIn(_Request):
    """One catalog sku and how many to add (the cart holds at most 99 of each)."""

    sku: str = Field(min_length=1, max_length=64)
    qty: Whole = Field(ge=1, le=99)


@functools.cache
def _schema_once(model: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
    return BaseModel.model_json_schema.__func__(model, *args, **kwargs)  # type: ignore[attr-defined,no-any-return]


class CartHeaders(BaseModel):
    """How an API client names its cart."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Made once per model: flask-openapi3 asks for it on every request it validates
        the headers of (0.6 ms each time, on the shop's hot path)."""
        return _schema_once(cls, *args, **kwargs)

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    x_cart_id: CartId = _optional_header(
        alias="X-Cart-Id",
        description="The cart_id the shop answered; leave out for a new cart. Anything "
        "else is refused (400), never silently a new cart.")
    x_cart_token: CartToken = _optional_header(
        alias="X-Cart-Token",
        description="Send back the last X-Cart-Token the shop answered (while its cart "
        "store is down the cart travels in it); forget it when answered empty.")


class CheckoutHeaders(CartHeaders):
    """The cart, and the key that makes a retried checkout the same order."""

    idempotency_key: str = Field(
        min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$", alias="Idempotency-Key",
        description="Unique per order. Bound to the cart and the card it was first sent "
        "with: the same key with another cart or card answers 422.")


class OrderPath(BaseModel):
    """An order's id."""

    order_id: str = Field(max_length=64)


_CART_TOKEN_HEADER = {"X-Cart-Token": {
    "description": "While the cart store is down: the cart, signed. Send it back as "
    "X-Cart-Token; an empty value means forget it.",
    "schema": {"type": "string"}}}


class CartLineAnswer(BaseModel):
    """A line of a cart or an order."""

    sku: str
    qty: int = Field(ge=1, le=99)


class CartAnswer(BaseModel):
    """A cart with its total in cents."""

    model_config = ConfigDict(openapi_extra={"headers": _CART_TOKEN_HEADER})  # type: ignore[typeddict-unknown-key]

    cart_id: str = Field(pattern=CART_ID_PATTERN)
    items: list[CartLineAnswer]
    total_cents: int = Field(ge=0)


class CheckoutAnswer(BaseModel):
    """The order taken: confirmed, or accepted with its payment taken later."""

    order_id: str
    status: Literal["confirmed", "payment_pending"]
    total_cents: int = Field(ge=0)


class OrderAnswer(CheckoutAnswer):
    """An order and its items."""

    status: OrderStatus  # type: ignore[assignment]
    items: list[CartLineAnswer]


class ProductAnswer(BaseModel):
    """A product at its sale price; available is null while stock is unknown."""

    sku: str
    name: str
    price_cents: int
    sale_price_cents: int
    available: int | None

    @classmethod
    def listed(cls) -> type[BaseModel]:
        """The catalog: a list of products."""
        return RootModel[list[cls]]  # type: ignore[valid-type]


class DependencyAnswer(BaseModel):
    """One dependency as shoppers are told."""

    state: Literal["operational", "degraded", "down"]
    since: str
    message: str


class StatusAnswer(BaseModel):
    """Every dependency, and the shop overall."""

    overall: Literal["operational", "degraded", "major_outage"]
    dependencies: dict[str, DependencyAnswer]


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    field: str | None = Field(default=None, description="The request field to fix (400)")
    retry_after: int | None = None
    cart_saved: bool | None = None
    charged: bool | None = Field(default=None, description="false: not charged; null: "
                                 "unknown yet (never charged twice)")


_DESCRIPTIONS = {
    400: "The request is not valid: `detail` says what to fix, `field` names it",
    402: "The card was declined; nothing was charged",
    404: "No such product or order",
    409: "Sold out, or this order is being placed right now",
    422: "The Idempotency-Key was used for another cart or request",
    429: "Too busy to start a checkout now: retry after Retry-After seconds",
    503: "A dependency is down: retry after Retry-After seconds; `charged` and "
         "`cart_saved` say what is true",
}


def problem_content() -> dict[str, Any]:
    """An answer's content as documented for every error: application/problem+json."""
    return {"application/problem+json": {"schema": Problem.model_json_schema()}}


def problems(*statuses: int) -> dict[int | str, Any]:
    """The error answers an operation documents, each application/problem+json; whatever
    else (405, 413, 415, 500) is a problem+json too (`default`)."""
    described: dict[int | str, str] = {status: _DESCRIPTIONS[status] for status in statuses}
    described["default"] = "Any other error"
    return {status: {"description": text, "content": problem_content()}
            for status, text in described.items()}


def validation_problem(error: ValidationError) -> Response:
    """A request that does not fit its model: 400 problem+json naming the first field."""
    first = error.errors(include_url=False, include_context=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    if field == "body" or first["type"] == "model_attributes_type":
        if not request.is_json:
            detail = "send a JSON body with Content-Type: application/json"
        elif request.get_json(silent=True) is None:
            detail = "the body is not valid JSON"
        else:
            detail = "the body must be a JSON object"
    elif first["type"] == "extra_forbidden":
        detail = f"{field} is not a field this request takes"
    elif first["type"] == "missing":
        detail = f"{field} is required"
    else:
        detail = f"{field}: {first['msg']}"
    return render_trouble(trouble_for(BadInput(detail, field), 0))


__all__ = [
    "CartAnswer", "CartHeaders", "CartItemIn", "CheckoutAnswer", "CheckoutHeaders",
    "CheckoutIn", "OrderAnswer", "OrderPath", "Problem", "ProductAnswer", "StatusAnswer",
    "problems", "validation_problem",
]
