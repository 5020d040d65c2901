"""Judge every answer a shopper got against the graceful-failure contract (DESIGN.md).

A pure function of what came back and of what was asked (`Expect`), so it is unit-tested on
recorded answers and used alike by the locustfile, the scripted outage and the chaos runner.
It reads bodies, not only status codes: a 2xx must have the API's shape (a 201 checkout
names its order and the cart's total), a 402 is a decline only for a card the processor
declines, error answers must carry the contract's promises, and an HTML page must be the
shop's own, with a banner that tells the truth about the shop's status.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from .pages import Page, read_page
from .shape import Api, Markers, at_path

OK, DEGRADED, GRACEFUL, DECLINED, UNGRACEFUL, FALSE_DECLINE = (
    "ok", "degraded", "graceful_error", "declined", "ungraceful", "false_decline"
)
CLASSES = (OK, DEGRADED, GRACEFUL, DECLINED, UNGRACEFUL, FALSE_DECLINE)
# Answers that break the contract: an ungraceful one, or an outage told as a card decline.
CONTRACT_FAILURES = (UNGRACEFUL, FALSE_DECLINE)
# A shopper gives up on an answer after this long: a hung request then shows as an
# ungraceful "no answer" within seconds, not after the HTTP client's 60 s default.
GIVE_UP_SECONDS = 10.0
# The longest Retry-After that still means "come back soon" rather than "never".
MAX_RETRY_AFTER_SECONDS = 3600

# What must never reach a shopper: tracebacks, exception classes, library names, internal
# hosts and ports, errno texts, SQL.
_LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"/|psycopg|redis\.exceptions|werkzeug|"
    r"gunicorn\.|sqlalchemy|\b127\.0\.0\.1\b|\blocalhost:\d+|toxiproxy|:\d{4,5}/|"
    r"\[Errno -?\d+\]|\bErrno\b|\b\d{1,3}(?:\.\d{1,3}){3}:\d{2,5}\b|"
    r"syntax error at or near|relation \"[^\"]+\" does not exist|violates \w+ constraint|"
    r"current transaction is aborted",
    re.IGNORECASE,
)
# Cheap first: the leak patterns run only on a body holding a word every match of them
# must contain (a page is judged in microseconds, not the milliseconds the full patterns
# take over a whole page: measured in `make bench`, section 9). The number-only patterns
# have no such word: they are found from the colon.
_LEAK_WORDS = ("traceback", 'file "/', "psycopg", "redis.exceptions", "werkzeug", "gunicorn.",
               "sqlalchemy", "127.0.0.1", "localhost:", "toxiproxy", "errno",
               "syntax error at or near", "relation \"", "violates ", "current transaction")
# A port: in a URL (":8101/"), or after an IP address (checked on the text before it).
# Both start at the colon, which the regex engine finds fast.
_PORT = re.compile(r":(?:(\d{4,5}/)|\d{2,5}\b)")
_IP_BEFORE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}$")
_CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Timeout)\b")
_CLASS_WORDS = ("Error", "Exception", "Timeout")
_SQL = re.compile(r"\b(?:SELECT\b[^<>]{1,200}\bFROM|INSERT INTO|UPDATE\b[^<>]{1,100}\bSET|"
                  r"DELETE FROM)\b")
_SQL_WORDS = ("SELECT", "INSERT INTO", "UPDATE", "DELETE FROM")


def leaks(body: str) -> bool:
    """Whether an answer shows internals: a traceback, an exception's name, a driver or
    server, an internal address, SQL."""
    lower = body.lower()
    if any(word in lower for word in _LEAK_WORDS) and _LEAKS.search(body):
        return True
    for port in _PORT.finditer(body):
        if port.group(1) or _IP_BEFORE.search(body, max(0, port.start() - 15), port.start()):
            return True
    if any(word in body for word in _CLASS_WORDS) and _CLASS_NAME.search(body):
        return True
    return any(word in body for word in _SQL_WORDS) and bool(_SQL.search(body))
_PROBLEM = "application/problem+json"
_REDIRECTS = (301, 302, 303, 307, 308)
ORDER_STATES = ("confirmed", "payment_pending")
DEPENDENCY_STATES = ("operational", "degraded", "down")

Banner = Literal["shown", "hidden"]
Kind = Literal["any", "products", "cart", "checkout", "order", "status", "page",
               "checkout_page"]


@dataclass(frozen=True, slots=True)
class Expect:
    """What was asked, so the answer can be judged against what it should be.

    kind: the route family (API shapes, or an HTML `page`; `checkout_page` is the checkout
    form's POST). decline_card: True when the card is one the processor declines, False for
    a good card, None when the caller does not say. total_cents: a checkout's cart total.
    banner: whether the page must show the status banner ("shown"), must not ("hidden"),
    or either (None: the shop's status was changing).
    """

    kind: Kind = "any"
    decline_card: bool | None = None
    total_cents: int | None = None
    banner: Banner | None = None
    host: str = ""
    markers: Markers | None = None  # the shop's brand and banner (None: the reference's)
    api: Api | None = None  # the shop's own API as its target declares it (None: ours)


ANY = Expect()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The class of one answer and, for anything not ok, why (the parsed page, if HTML)."""

    cls: str
    reason: str = ""
    page: Page | None = field(default=None, compare=False, repr=False)


def banner_expected(samples: list[tuple[float, bool | None]], at: float, before: float,
                    after: float, interval: float) -> Banner | None:
    """What a page rendered at `at` must show: "shown" when /api/status named a dependency
    not operational in every sample from `before` seconds earlier to `after` seconds later,
    "hidden" when it said all operational in every one of them, None otherwise (changing,
    unanswered, or too few samples). The shop's workers each keep their own view and take a
    second or two to agree, so only a page rendered inside a settled status is judged."""
    recent = [troubled for when, troubled in samples if at - before <= when <= at + after]
    needed = max(2, int((before + after) / interval * 0.6))
    if len(recent) < needed or any(t is None for t in recent):
        return None
    if all(recent):
        return "shown"
    if not any(recent):
        return "hidden"
    return None


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def retry_after_ok(value: str, now: float | None = None) -> bool:
    """Retry-After is whole seconds (0 to an hour) or an HTTP date within the next hour."""
    value = value.strip()
    if value.isdigit():
        return int(value) <= MAX_RETRY_AFTER_SECONDS
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    current = time.time() if now is None else now
    return current - 5 <= when <= current + MAX_RETRY_AFTER_SECONDS


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _declared_checkout(status: int, body: str, expect: Expect, api: Api) -> Verdict | None:
    """A checkout answer of a shop's own API, read by its target's outcome rules: a
    decline (a false one for a good card), an order (which must name its id and the cart's
    total), or None: no rule matched, and the answer is judged as any other."""
    data = _json(body)
    meaning = api.outcome(status, data)
    if meaning == "declined":
        return Verdict(FALSE_DECLINE if expect.decline_card is False else DECLINED,
                       "good_card_declined" if expect.decline_card is False
                       else "payment_declined")
    if meaning is None:
        return Verdict(UNGRACEFUL, "checkout_2xx_without_order") if 200 <= status < 300 \
            else None
    if at_path(data, api.order_id) in (None, ""):
        return Verdict(UNGRACEFUL, "checkout_2xx_without_order")
    total = api.total_cents(data, api.order_total)
    if total is None:
        return Verdict(UNGRACEFUL, "checkout_2xx_bad_total")
    if expect.total_cents is not None and total != expect.total_cents:
        return Verdict(UNGRACEFUL, "checkout_total_differs")
    return Verdict(DEGRADED, "payment_pending") if meaning == "payment_pending" else \
        Verdict(OK, "")


def _declared_shape(kind: str, data: Any, api: Api) -> str:
    """Why a 2xx answer of a shop's own API is not the shape its target declares."""
    if kind == "products":
        listed = at_path(data, api.products_at)
        good = isinstance(listed, list) and bool(listed) and all(
            isinstance(p, dict) and at_path(p, api.product_id) is not None
            and at_path(p, api.product_ref) is not None for p in listed)
        return "" if good else "products_shape"
    if kind == "cart":
        good = isinstance(data, dict) and at_path(data, api.cart_ref) is not None and \
            api.total_cents(data, api.cart_total) is not None
        return "" if good else "cart_shape"
    if kind == "order":
        good = isinstance(data, dict) and at_path(data, api.order_id) not in (None, "")
        return "" if good else "order_shape"
    return ""


def _shape_problem(kind: str, status: int, data: Any, expect: Expect) -> str:
    """Why a 2xx JSON body is not what the API promises ('' when it is)."""
    if data is None:
        return "2xx_not_json"
    if expect.api is not None:
        return _declared_shape(kind, data, expect.api)
    if isinstance(data, dict) and ("error" in data or str(data.get("type", "")).startswith(
            "/problems/")):
        return "error_in_2xx"
    if kind == "products":
        good = isinstance(data, list) and all(
            isinstance(p, dict) and {"sku", "name", "price_cents", "sale_price_cents"} <= set(p)
            for p in data)
        return "" if good else "products_shape"
    if kind == "cart":
        good = isinstance(data, dict) and isinstance(data.get("cart_id"), str) and \
            isinstance(data.get("items"), list) and isinstance(data.get("total_cents"), int)
        return "" if good else "cart_shape"
    if kind == "checkout":
        if status != 201 or not isinstance(data, dict) or not data.get("order_id"):
            return "checkout_2xx_without_order"
        if data.get("status") not in ORDER_STATES:
            return "checkout_2xx_bad_status"
        if expect.total_cents is not None and data.get("total_cents") != expect.total_cents:
            return "checkout_total_differs"
        return ""
    if kind == "order":
        good = isinstance(data, dict) and bool(data.get("order_id")) and \
            isinstance(data.get("items"), list) and isinstance(data.get("total_cents"), int)
        return "" if good else "order_shape"
    if kind == "status":
        deps = data.get("dependencies") if isinstance(data, dict) else None
        good = isinstance(deps, dict) and bool(deps) and all(
            isinstance(d, dict) and d.get("state") in DEPENDENCY_STATES for d in deps.values())
        return "" if good else "status_shape"
    return ""


def _banner_problem(page: Page, expect: Expect) -> str:
    if expect.banner == "shown" and not page.banner:
        return "banner_missing"
    if expect.banner == "hidden" and page.banner:
        return "banner_stuck"
    return ""


def _without_own_origin(body: str, host: str) -> str:
    """The body without the shop's own public address (the host the shopper asked): a
    shop whose API answers absolute links names itself, which is no internal leak."""
    if not host or host not in body:
        return body
    return body.replace(f"http://{host}", "").replace(f"https://{host}", "")


def _own_page(location: str, host: str) -> bool:
    parts = urlsplit(location)
    if not parts.netloc:
        return location.startswith("/") and not location.startswith("//")
    return bool(host) and parts.netloc == host and parts.scheme in ("http", "https")


def classify(
    status: int | None,
    headers: Mapping[str, str],
    body: str,
    elapsed: float,
    deadline: float,
    error: str | None = None,
    expect: Expect = ANY,
    now: float | None = None,
) -> Verdict:
    """The class of one answer. status None means no HTTP answer at all (error says why)."""
    if status is None or status == 0:
        return Verdict(UNGRACEFUL, f"no_answer:{error or 'connection_failed'}")
    if elapsed > deadline:
        return Verdict(UNGRACEFUL, "past_deadline")
    if leaks(_without_own_origin(body, expect.host)):
        return Verdict(UNGRACEFUL, "internals_in_body")
    content_type = _header(headers, "Content-Type").split(";")[0].strip().lower()
    page = read_page(body, expect.markers) if content_type == "text/html" and body else None
    html_asked = expect.kind in ("page", "checkout_page")

    if expect.api is not None and expect.kind == "checkout":
        told = _declared_checkout(status, body, expect, expect.api)
        if told is not None:
            return told
    if status in _REDIRECTS:
        target = _header(headers, "Location")
        if not target or not _own_page(target, expect.host):
            return Verdict(UNGRACEFUL, "redirect_off_site")
        return Verdict(GRACEFUL if "sorry" in target else OK, "redirect")
    if 200 <= status < 400:
        return _success(status, headers, body, content_type, page, expect, html_asked)
    if status == 402:
        return _decline(headers, body, content_type, page, expect)
    return _error(status, headers, body, content_type, page, expect, now)


def _success(status: int, headers: Mapping[str, str], body: str, content_type: str,
             page: Page | None, expect: Expect, html_asked: bool) -> Verdict:
    if page is not None or html_asked:
        if page is None:
            return Verdict(UNGRACEFUL, "page_not_html")
        if not page.branded:
            return Verdict(UNGRACEFUL, "unbranded_page", page)
        if page.sorry:
            return Verdict(UNGRACEFUL, "error_page_with_2xx", page)
        banner = _banner_problem(page, expect)
        if banner:
            return Verdict(UNGRACEFUL, banner, page)
    elif expect.kind != "any":
        problem = _shape_problem(expect.kind, status, _json(body), expect)
        if problem:
            return Verdict(UNGRACEFUL, problem)
    elif '"error"' in body.replace(" ", "")[:200]:
        return Verdict(UNGRACEFUL, "error_in_2xx")
    if '"status":"payment_pending"' in body.replace(" ", ""):
        return Verdict(DEGRADED, "payment_pending", page)
    if _header(headers, "X-Degraded"):
        return Verdict(DEGRADED, _header(headers, "X-Degraded"), page)
    return Verdict(OK, "", page)


def _decline(headers: Mapping[str, str], body: str, content_type: str, page: Page | None,
             expect: Expect) -> Verdict:
    """402: the card's answer — but only for a card the processor declines."""
    if expect.decline_card is False:
        return Verdict(FALSE_DECLINE, "good_card_declined", page)
    if page is not None:
        if not page.branded:
            return Verdict(UNGRACEFUL, "unbranded_page", page)
        return Verdict(DECLINED, "payment_declined", page)
    if content_type != _PROBLEM or not isinstance(_json(body), dict):
        return Verdict(UNGRACEFUL, "wrong_content_type")
    return Verdict(DECLINED, "payment_declined")


def _error(status: int, headers: Mapping[str, str], body: str, content_type: str,
           page: Page | None, expect: Expect, now: float | None) -> Verdict:
    if not _header(headers, "X-Request-ID"):
        return Verdict(UNGRACEFUL, "no_request_id", page)
    if content_type not in (_PROBLEM, "text/html"):
        return Verdict(UNGRACEFUL, "wrong_content_type", page)
    retry_after = _header(headers, "Retry-After")
    if status in (429, 503) and not retry_after:
        return Verdict(UNGRACEFUL, f"{status}_without_retry_after", page)
    if retry_after and not retry_after_ok(retry_after, now):
        return Verdict(UNGRACEFUL, "bad_retry_after", page)
    checkout = expect.kind in ("checkout", "checkout_page")
    if content_type == "text/html":
        if page is None or not page.branded:
            return Verdict(UNGRACEFUL, "unbranded_error_page", page)
        if not page.sorry:
            return Verdict(UNGRACEFUL, "no_sorry_page", page)
        if not page.request_id:
            return Verdict(UNGRACEFUL, "no_reference_on_page", page)
        if checkout and status in (429, 503) and not page.payment_statement:
            return Verdict(UNGRACEFUL, "no_charge_statement", page)
        banner = _banner_problem(page, expect)
        if banner:
            return Verdict(UNGRACEFUL, banner, page)
    else:
        data = _json(body)
        if not isinstance(data, dict) or data.get("status") not in (None, status):
            return Verdict(UNGRACEFUL, "bad_problem_body")
        if checkout and status in (429, 503) and ("charged" not in data
                                                  or "cart_saved" not in data):
            return Verdict(UNGRACEFUL, "no_charge_statement")
    if status in (429, 503) or 400 <= status < 500:
        return Verdict(GRACEFUL, f"http_{status}", page)
    return Verdict(UNGRACEFUL, f"http_{status}", page)
