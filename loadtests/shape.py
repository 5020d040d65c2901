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
    `name` and `state`). `names` maps the shop's names to the harness's (payments,
    inventory, database, cache); `states` maps the shop's state words (any case) to
    operational, degraded or down."""

    route: str = "/api/status"
    format: str = "json"
    at: str = "dependencies"
    name_key: str = "name"
    state_key: str = "state"
    line: str = r"^\s*(?P<name>[\w .-]+?)\s*[:=]\s*(?P<state>\w+)\s*$"
    names: dict[str, str] = field(default_factory=lambda: {d: d for d in DEPENDENCIES})
    states: dict[str, str] = field(default_factory=lambda: {s: s for s in STATES})

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
        if self.format == "lines":
            pattern = re.compile(self.line)
            found = [(m.group("name").strip(), m.group("state")) for m in
                     (pattern.match(line) for line in text.splitlines()) if m is not None]
            return found or None
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


@dataclass(frozen=True, slots=True)
class Markers:
    """What makes a page the shop's own, and its status banner (CSS selectors)."""

    brand_selector: str = "header a.brand"
    brand_text: str = "Outpost Outfitters"
    banner_selector: str = "#site-banner"


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
    cart_named_by: str = "shopper"  # or "shop": it is read from the first answer's header
    good_card: dict[str, Any] = field(default_factory=lambda: dict(GOOD_CARD))
    declined_card: dict[str, Any] = field(default_factory=lambda: dict(DECLINED_CARD))
    status: StatusFormat = field(default_factory=StatusFormat)
    pages: Pages | None = field(default_factory=Pages)

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
        return cls(**data, status=status, pages=None if pages is None else Pages(
            **{**pages, "markers": Markers(**pages["markers"])}))


REFERENCE = ShopShape()
