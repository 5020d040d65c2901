"""Read a storefront page as a shopper's browser would, with a real HTML parser.

selectolax (the Lexbor engine) was chosen by measured cost per page inside Locust: see the
benchmark table in docs/performance.md (`make bench`, section "HTML judging"), where it is
set against the standard library's html.parser and lxml on the shop's own pages.

`read_page` pulls out what the harness judges — the brand marker, the banner, the sorry
page's promises, the forms a shopper submits — and nothing else, so a page is parsed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from .shape import Markers

# The shop's own layout: the header's brand link carries the shop's name. A framework's
# error page, a proxy's or a bare "Service Unavailable" has no such header. Another shop
# says its own markers in its target file.
REFERENCE_MARKERS = Markers()
BRAND_TEXT = REFERENCE_MARKERS.brand_text
_MONEY = re.compile(r"-?\$[\d,]+\.\d{2}")


@dataclass(frozen=True, slots=True)
class Form:
    """A form on the page: where it posts and its hidden and prefilled fields."""

    action: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Page:
    """What a shopper sees on one page, as far as the harness judges it. Forms and the
    status table are read from the parsed tree only when asked for (most pages are judged
    without them)."""

    branded: bool = False
    banner: bool = False
    banner_text: str = ""  # its words, spaces collapsed
    sorry: bool = False
    request_id: str = ""
    payment_statement: str = ""
    cart_saved: bool = False
    cart_total_cents: int | None = None
    order_id: str = ""
    order_status: str = ""
    parsed_forms: tuple[Form, ...] | None = None
    tree: Any = field(default=None, compare=False, repr=False)

    @property
    def forms(self) -> tuple[Form, ...]:
        """Every form on the page with its named inputs."""
        if self.parsed_forms is not None:
            return self.parsed_forms
        if self.tree is None:
            return ()
        return tuple(
            Form(str(node.attributes.get("action") or ""),
                 {str(i.attributes.get("name")): str(i.attributes.get("value") or "")
                  for i in node.css("input") if i.attributes.get("name")})
            for node in self.tree.css("form"))

    def form(self, action: str) -> Form | None:
        """The first form posting to action."""
        return next((f for f in self.forms if f.action == action), None)

    @property
    def status_states(self) -> dict[str, str]:
        """The status page's state per dependency (empty on other pages)."""
        states: dict[str, str] = {}
        for row in self.tree.css("tr[id^='dep-']") if self.tree is not None else ():
            cells = row.css("td")
            if len(cells) >= 2:
                states[str(row.attributes.get("id", ""))[4:]] = cells[1].text(strip=True)
        return states

    @property
    def charged(self) -> bool | None:
        """What the page promised about the shopper's money: False 'not charged', None when
        it says nothing or that it does not know."""
        text = self.payment_statement.lower()
        if "have not been charged" in text or "not been charged" in text:
            return False
        return None


def cents(text: str) -> int | None:
    """'$1,234.56' in a text -> 123456; None when there is no amount."""
    match = _MONEY.search(text)
    if match is None:
        return None
    value = match.group(0).replace("$", "").replace(",", "")
    negative = value.startswith("-")
    whole, _, frac = value.lstrip("-").partition(".")
    amount = int(whole) * 100 + int(frac)
    return -amount if negative else amount


def read_page(html: str, markers: Markers | None = None) -> Page:
    """Parse one page and pull out what is judged (the brand and the banner by the shop's
    markers: the reference shop's by default)."""
    tree = LexborHTMLParser(html)
    markers = markers or REFERENCE_MARKERS

    def text(selector: str) -> str:
        node = tree.css_first(selector)
        return node.text(strip=True) if node is not None else ""

    brand = tree.css_first(markers.brand_selector)
    total = text("#cart-total")
    banner = tree.css_first(markers.banner_selector) if markers.banner_selector else None
    return Page(
        branded=brand is not None and markers.brand_text in brand.text(),
        banner=banner is not None,
        banner_text=" ".join(banner.text(separator=" ").split()) if banner is not None else "",
        sorry=tree.css_first("#sorry") is not None,
        request_id=text("#request-id"),
        payment_statement=text("#payment-statement"),
        cart_saved=tree.css_first("#cart-saved") is not None,
        cart_total_cents=cents(total) if total else None,
        order_id=text("#order-id"),
        order_status=text("#order-status"),
        tree=tree,
    )
