"""A scripted shopper for the harness: API and HTML journeys, each answer classified."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass

import httpx

from loadtests.classify import Verdict, classify

from .vocabulary import GOOD_CARD, card_form

_HIDDEN = re.compile(r'name="(csrf_token|idempotency_key)" value="([^"]+)"')


@dataclass(frozen=True, slots=True)
class Answer:
    """One checkout answer as the shopper saw it."""

    status: int | None
    elapsed: float
    verdict: Verdict
    body: str
    request_id: str


def api_checkout(base_url: str, deadline: float, sku: str = "LAMP-001") -> Answer:
    """Add one item to a fresh cart and check out through the JSON API."""
    headers = {"X-Cart-Id": uuid.uuid4().hex}
    with httpx.Client(base_url=base_url, headers=headers, timeout=deadline + 5) as client:
        started = time.monotonic()
        try:
            added = client.post("/api/cart/items", json={"sku": sku, "qty": 1})
            response = added if added.status_code != 200 else client.post(
                "/api/checkout", json={"card": GOOD_CARD},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
        except httpx.HTTPError as exc:
            elapsed = time.monotonic() - started
            verdict = classify(None, {}, "", elapsed, deadline, type(exc).__name__)
            return Answer(None, elapsed, verdict, "", "")
        elapsed = time.monotonic() - started
        verdict = classify(response.status_code, response.headers, response.text, elapsed,
                           deadline)
        return Answer(response.status_code, elapsed, verdict, response.text,
                      response.headers.get("X-Request-ID", ""))


def html_checkout(base_url: str, deadline: float) -> Answer:
    """Place an order through the pages a person uses: catalog, cart, checkout form."""
    with httpx.Client(base_url=base_url, timeout=deadline + 5, follow_redirects=False) as client:
        page = client.get("/")
        csrf = dict(_HIDDEN.findall(page.text)).get("csrf_token", "")
        client.post("/cart/add", data={"csrf_token": csrf, "sku": "LAMP-001", "qty": "1"})
        form = dict(_HIDDEN.findall(client.get("/checkout").text))
        started = time.monotonic()
        response = client.post("/checkout", data={
            "csrf_token": form.get("csrf_token", ""),
            "idempotency_key": form.get("idempotency_key", ""),
            **card_form(GOOD_CARD),
        })
        elapsed = time.monotonic() - started
        verdict = classify(response.status_code, response.headers, response.text, elapsed,
                           deadline)
        return Answer(response.status_code, elapsed, verdict, response.text,
                      response.headers.get("X-Request-ID", ""))
