"""The shape of the shop under test, as the load and the harness's pollers need it: its
routes, how a cart is named, the test cards, the page markers of the brand and the banner,
and how to read its status page. The reference shop's is the default; a target file
(chaos/target.py) makes another, handed to Locust as a JSON file (--target-shape).

Import-light on purpose: the Locust process, the banner watch and the harness's status
poller all read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from chaos.vocabulary import DECLINED_CARD, DEPENDENCIES, GOOD_CARD

# The status page's words for a dependency's state, as the harness judges them.
STATES = ("operational", "degraded", "down")


@dataclass(frozen=True, slots=True)
class StatusFormat:
    """How to read the shop's status page into {dependency: state} in the harness's words.

    json: `at` is a dotted path to either a mapping (name -> {state_key: ...} or
    name -> state) or a list of objects with `name_key` and `state_key`.
    lines: a plain-text page, one dependency per line matched by `line` (named groups
    `name` and `state`).
    html: a page a shopper reads; each element matched by the CSS selector `rows` is one
    dependency, its text (spaces collapsed) matched by `line`.
    banner: the status banner of a storefront page (the CSS selector `rows`): a dependency
    is down while the banner's text matches its pattern in `says` (any case), operational
    when it does not or there is no banner.
    `names` maps the shop's names to the harness's (payments, inventory, database, cache);
    `states` maps the shop's state words (any case) to operational, degraded or down."""

    route: str = "/api/status"
    format: str = "json"
    at: str = "dependencies"
    name_key: str = "name"
    state_key: str = "state"
    line: str = r"^\s*(?P<name>[\w .-]+?)\s*[:=]\s*(?P<state>\w+)\s*$"
    names: dict[str, str] = field(default_factory=lambda: {d: d for d in DEPENDENCIES})
    states: dict[str, str] = field(default_factory=lambda: {s: s for s in STATES})
    rows: str = ""
    says: dict[str, str] = field(default_factory=dict)

    def read(self, text: str) -> dict[str, str] | None:
        """Each named dependency's state in the harness's words; None when the page is not
        in this format or says a state word it does not list."""
        pairs = self._pairs(text)
        if pairs is None:
            return None
        states: dict[str, str] = {}
        lowered = {k.lower(): v for k, v in self.states.items()}
        for name, state in pairs:
            if name not in self.names:
                continue  # a component the target does not map (e.g. the shop's own disk)
            word = lowered.get(str(state).strip().lower())
            if word is None:
                return None
            states[self.names[name]] = word
        return states

    def _pairs(self, text: str) -> list[tuple[str, Any]] | None:
        if self.format in ("lines", "html"):
            lines = text.splitlines() if self.format == "lines" else self._row_texts(text)
            pattern = re.compile(self.line)
            found = [(m.group("name").strip(), m.group("state")) for m in
                     (pattern.match(line) for line in lines) if m is not None]
            return found or None
        if self.format == "banner":
            return self._banner(text)
        try:
            node: Any = json.loads(text)
            for key in filter(None, self.at.split(".")):
                node = node[key]
        except (ValueError, KeyError, TypeError, IndexError):
            return None
        if isinstance(node, dict) and node:
            return [(str(k), v.get(self.state_key) if isinstance(v, dict) else v)
                    for k, v in node.items()]
        if isinstance(node, list) and node and all(isinstance(i, dict) for i in node):
            return [(str(i.get(self.name_key)), i.get(self.state_key)) for i in node]
        return None

    def _row_texts(self, text: str) -> list[str]:
        from selectolax.lexbor import LexborHTMLParser

        return [" ".join(node.text(separator=" ").split())
                for node in LexborHTMLParser(text).css(self.rows)]

    def _banner(self, text: str) -> list[tuple[str, Any]] | None:
        from selectolax.lexbor import LexborHTMLParser

        head = text[:2000].lower()
        if "<html" not in head and "<body" not in head:
            return None  # not a page (an error in another format): nothing is known
        node = LexborHTMLParser(text).css_first(self.rows)
        said = " ".join(node.text(separator=" ").split()) if node is not None else ""
        return [(name, "down" if re.search(pattern, said, re.IGNORECASE) else "operational")
                for name, pattern in self.says.items()]


@dataclass(frozen=True, slots=True)
class Markers:
    """What makes a page the shop's own, and its status banner (CSS selectors)."""

    brand_selector: str = "header a.brand"
    brand_text: str = "Outpost Outfitters"
    banner_selector: str = "#site-banner"
    # Per dependency (the status API's words), what the banner says when it names it (a
    # regular expression, any case); {}: the banner is judged on being there only. The
    # reference shop's words by default, as targets/reference.yaml gives them.
    says: dict[str, str] = field(default_factory=lambda: {
        "payments": "card payments", "inventory": r"\bstock\b", "database": r"\borders\b",
        "cache": r"\bcarts\b"})


@dataclass(frozen=True, slots=True)
class Pages:
    """The storefront's pages every shopper browses; `checkout` says the shop has the
    reference storefront's cart and checkout forms (else shoppers fill carts through the
    API only)."""

    home: str = "/"
    product: str = "/products/{sku}"
    status: str = "/status"
    checkout: bool = True
    markers: Markers = field(default_factory=Markers)


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
# What an answer told the shopper of their order, in the harness's words.
MEANINGS = ("confirmed", "payment_pending", "declined")


def at_path(data: Any, path: str) -> Any:
    """The value at a dotted path in parsed JSON ("" is the whole of it; a number steps
    into a list); None when the path is not there."""
    node = data
    for key in filter(None, path.split(".")):
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def fill(template: Any, values: dict[str, Any]) -> Any:
    """A request body from its template: a string that is one placeholder ("{qty}")
    becomes the value itself (a number stays a number, {card} a whole object); other
    strings have each placeholder replaced by its text. Dotted names step into values
    ({card.number}). KeyError names a placeholder without a value."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if not isinstance(template, str):
        return template

    def value(name: str) -> Any:
        head, _, rest = name.partition(".")
        found = at_path(values[head], rest) if rest else values[head]
        if found is None:
            raise KeyError(name)
        return found

    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return value(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(value(m.group(1))), template)


def cents(value: Any, money: str) -> int | None:
    """An amount in cents from a shop's figure: whole cents ("cents") or a decimal
    string or number in the currency's units ("decimal"); None when it is neither."""
    if isinstance(value, bool):
        return None
    if money == "cents":
        return value if isinstance(value, int) else None
    try:
        amount = Decimal(str(value)) * 100
    except (InvalidOperation, ValueError):
        return None
    return int(amount) if amount == amount.to_integral_value() else None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One rule of how a checkout answer tells its outcome: an HTTP status, and where the
    shop says it in the body, a field (a dotted path) and the value it holds there."""

    means: str  # confirmed, payment_pending or declined
    status: int
    field: str = ""
    equals: str | None = None

    def matches(self, status: int, body: Any) -> bool:
        """Whether this answer is this outcome."""
        if status != self.status:
            return False
        return not self.field or str(at_path(body, self.field)) == self.equals


@dataclass(frozen=True, slots=True)
class Api:
    """How the load speaks to a shop's own JSON API: where its answers keep what the
    harness reads (dotted paths), how money is written, the request bodies as templates
    (placeholders {product}, {qty}, {cart}, {card}, {email}, {key}), and how a checkout
    answer tells its outcome (the first rule that matches). `declared`: a target file
    gave it (False: the reference shop's API, judged by its own contract)."""

    products_at: str = ""
    product_id: str = "sku"
    product_ref: str = "sku"
    cart_ref: str = "cart_id"
    cart_total: str = "total_cents"
    money: str = "cents"
    add_body: Any = field(default_factory=lambda: {"sku": "{product}", "qty": "{qty}"})
    checkout_body: Any = field(default_factory=lambda: {"card": "{card}"})
    order_id: str = "order_id"
    order_status: str = "status"
    order_total: str = "total_cents"
    outcomes: tuple[Outcome, ...] = (
        Outcome("confirmed", 201, "status", "confirmed"),
        Outcome("payment_pending", 201, "status", "payment_pending"),
        Outcome("declined", 402))
    declared: bool = False

    def outcome(self, status: int, body: Any) -> str | None:
        """What a checkout answer told: confirmed, payment_pending, declined, or None
        (no rule matches: an error, judged by the graceful-failure contract)."""
        return next((o.means for o in self.outcomes if o.matches(status, body)), None)

    def total_cents(self, body: Any, path: str) -> int | None:
        """An amount at a path of an answer, in cents."""
        return cents(at_path(body, path), self.money)


@dataclass(frozen=True, slots=True)
class ShopShape:
    """Routes (with {sku} and {order_id} where they take one), the cart's header and who
    names the cart (the shopper, or the shop in its answer), the test cards, the pages."""

    products: str = "/api/products"
    cart: str = "/api/cart"
    cart_items: str = "/api/cart/items"
    checkout: str = "/api/checkout"
    order: str = "/api/orders/{order_id}"
    ready: str = "/readyz"
    cart_header: str = "X-Cart-Id"
    # "shopper": a fresh id in cart_header (cart_value, a template with {id} and {host},
    # builds its value); "shop": read from the first answer's header; "cookie": the shop's
    # session cookie (each shopper's cookie jar)
    cart_named_by: str = "shopper"
    cart_value: str = "{id}"
    good_card: dict[str, Any] = field(default_factory=lambda: dict(GOOD_CARD))
    declined_card: dict[str, Any] = field(default_factory=lambda: dict(DECLINED_CARD))
    status: StatusFormat = field(default_factory=StatusFormat)
    pages: Pages | None = field(default_factory=Pages)
    api: Api = field(default_factory=Api)
    order_readable: bool = True  # False: an anonymous shopper may not read an order back

    def to_file(self, path: Path) -> Path:
        """Written as JSON, for Locust (--target-shape)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def from_file(cls, path: str | Path | None) -> ShopShape:
        """The shape in a file written by to_file; the reference shop's when none."""
        if not path:
            return cls()
        data = json.loads(Path(path).read_text())
        pages = data.pop("pages", None)
        status = StatusFormat(**data.pop("status"))
        api = data.pop("api", None)
        return cls(**data, status=status, pages=None if pages is None else Pages(
            **{**pages, "markers": Markers(**pages["markers"])}),
            api=Api() if api is None else Api(**{
                **api, "outcomes": tuple(Outcome(**o) for o in api["outcomes"])}))


REFERENCE = ShopShape()
