"""The scripted shopper the harness, the matrix, the benchmarks and the tests drive: one
connection pool and one cart at a time, API and HTML journeys, every answer timed and
classified as the load's shoppers classify theirs."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from loadtests.classify import Verdict, classify

from .vocabulary import GOOD_CARD, card_form

_HIDDEN = re.compile(r'name="(csrf_token|idempotency_key)" value="([^"]+)"')


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer as the shopper saw it."""

    status: int | None
    elapsed: float
    verdict: Verdict
    body: str
    request_id: str
    response: httpx.Response | None = None

    def json(self) -> Any:
        """The answer's JSON body."""
        assert self.response is not None, "no answer came"
        return self.response.json()


class ScriptedShopper:
    """One shopper: its own pool and cart. Use as a context manager, or close()."""

    def __init__(self, base_url: str, deadline: float = 6.0, sku: str = "LAMP-001") -> None:
        self.deadline = deadline
        self.sku = sku
        self.client = httpx.Client(base_url=base_url, timeout=deadline + 5,
                                   headers={"X-Cart-Id": uuid.uuid4().hex})

    def __enter__(self) -> ScriptedShopper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def request(self, method: str, path: str, *, since: float | None = None,
                **kwargs: Any) -> Answer:
        """One request, timed (from `since` when given: a journey) and classified; a
        transport error is an answer too, never an exception."""
        started = time.monotonic() if since is None else since
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            elapsed = time.monotonic() - started
            return Answer(None, elapsed, classify(None, {}, "", elapsed, self.deadline,
                                                  type(exc).__name__), "", "")
        elapsed = time.monotonic() - started
        verdict = classify(response.status_code, response.headers, response.text, elapsed,
                           self.deadline)
        return Answer(response.status_code, elapsed, verdict, response.text,
                      response.headers.get("X-Request-ID", ""), response)

    def new_cart(self) -> None:
        """Start over with an empty cart."""
        self.client.headers["X-Cart-Id"] = uuid.uuid4().hex

    def add(self, sku: str | None = None, qty: int = 1, since: float | None = None) -> Answer:
        """Put an item in the cart (the JSON API)."""
        return self.request("POST", "/api/cart/items", since=since,
                            json={"sku": sku or self.sku, "qty": qty})

    def pay(self, since: float | None = None) -> Answer:
        """Check out the cart with the good test card, under a fresh idempotency key."""
        return self.request("POST", "/api/checkout", since=since, json={"card": GOOD_CARD},
                            headers={"Idempotency-Key": uuid.uuid4().hex})

    def checkout(self, sku: str | None = None) -> Answer:
        """A fresh cart, one item, check out: timed as one journey; the failed add is the
        answer when the cart cannot be filled."""
        self.new_cart()
        started = time.monotonic()
        added = self.add(sku, since=started)
        return added if added.status != 200 else self.pay(since=started)

    def html_checkout(self) -> Answer:
        """Place an order through the pages a person uses: catalog, cart, checkout form;
        the form's post is the answer."""
        page = self.client.get("/")
        csrf = dict(_HIDDEN.findall(page.text)).get("csrf_token", "")
        self.client.post("/cart/add", data={"csrf_token": csrf, "sku": self.sku, "qty": "1"})
        form = dict(_HIDDEN.findall(self.client.get("/checkout").text))
        return self.request("POST", "/checkout", follow_redirects=False, data={
            "csrf_token": form.get("csrf_token", ""),
            "idempotency_key": form.get("idempotency_key", ""),
            **card_form(GOOD_CARD),
        })


def api_checkout(base_url: str, deadline: float, sku: str = "LAMP-001") -> Answer:
    """One checkout journey by a new shopper (the JSON API)."""
    with ScriptedShopper(base_url, deadline, sku) as shopper:
        return shopper.checkout()


def html_checkout(base_url: str, deadline: float) -> Answer:
    """One checkout through the storefront's pages by a new shopper."""
    with ScriptedShopper(base_url, deadline) as shopper:
        return shopper.html_checkout()
