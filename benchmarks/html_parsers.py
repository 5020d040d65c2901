"""The same page facts read by three HTML parsers, for choosing the one the load uses.

`loadtests.pages.read_page` (selectolax, the Lexbor engine) is what the load runs; these are
the two it was measured against, each pulling out the same facts: the brand link, the
banner, the sorry page's reference and promises, every form with its fields, the cart total.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import lxml.html

from loadtests.pages import BRAND_TEXT, Form, Page, cents

IDS = ("request-id", "payment-statement", "cart-total", "order-id", "order-status")


def read_page_lxml(html: str) -> Page:
    """read_page with lxml.html and XPath."""
    tree = lxml.html.fromstring(html)

    def text(element_id: str) -> str:
        found = tree.xpath(f'//*[@id="{element_id}"]')
        return found[0].text_content().strip() if found else ""

    brand = tree.xpath('//header//a[contains(concat(" ", @class, " "), " brand ")]')
    forms = tuple(Form(form.get("action", ""), {i.get("name"): i.get("value") or ""
                                                for i in form.xpath(".//input[@name]")})
                  for form in tree.xpath("//form"))
    total = text("cart-total")
    return Page(branded=bool(brand) and BRAND_TEXT in brand[0].text_content(),
                banner=bool(tree.xpath('//*[@id="site-banner"]')),
                sorry=bool(tree.xpath('//*[@id="sorry"]')), request_id=text("request-id"),
                payment_statement=text("payment-statement"),
                cart_saved=bool(tree.xpath('//*[@id="cart-saved"]')), parsed_forms=forms,
                cart_total_cents=cents(total) if total else None, order_id=text("order-id"),
                order_status=text("order-status"))


class _Collector(HTMLParser):
    """Event-driven: remembers the ids seen, the text of a few, the brand and the forms."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.texts: dict[str, str] = {}
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.brand = ""
        self._open: list[str] = []  # ids (or "brand") whose text is being collected
        self._depth: list[int] = []
        self._level = 0
        self._in_header = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found: dict[str, Any] = dict(attrs)
        self._level += 1
        if tag == "header":
            self._in_header = True
        element_id = found.get("id")
        if element_id:
            self.ids.add(element_id)
            if element_id in IDS:
                self._open.append(element_id)
                self._depth.append(self._level)
                self.texts[element_id] = ""
        if tag == "a" and self._in_header and "brand" in (found.get("class") or "").split():
            self._open.append("brand")
            self._depth.append(self._level)
        if tag == "form":
            self.forms.append((found.get("action") or "", {}))
        if tag == "input" and self.forms and found.get("name"):
            self.forms[-1][1][found["name"]] = found.get("value") or ""
            self._level -= 1  # a void element has no end tag

    def handle_endtag(self, tag: str) -> None:
        if tag == "header":
            self._in_header = False
        while self._depth and self._depth[-1] >= self._level:
            self._depth.pop()
            self._open.pop()
        self._level -= 1

    def handle_data(self, data: str) -> None:
        for name in self._open:
            if name == "brand":
                self.brand += data
            else:
                self.texts[name] += data


def read_page_stdlib(html: str) -> Page:
    """read_page with the standard library's html.parser."""
    seen = _Collector()
    seen.feed(html)
    seen.close()
    total = seen.texts.get("cart-total", "").strip()
    return Page(branded=BRAND_TEXT in seen.brand, banner="site-banner" in seen.ids,
                sorry="sorry" in seen.ids,
                request_id=seen.texts.get("request-id", "").strip(),
                payment_statement=seen.texts.get("payment-statement", "").strip(),
                cart_saved="cart-saved" in seen.ids,
                parsed_forms=tuple(Form(action, fields) for action, fields in seen.forms),
                cart_total_cents=cents(total) if total else None,
                order_id=seen.texts.get("order-id", "").strip(),
                order_status=seen.texts.get("order-status", "").strip())
