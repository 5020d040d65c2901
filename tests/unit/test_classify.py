"""The classifier on recorded answers: one per class, the tricky ones, and each rule shown
failing on an answer that breaks it. The HTML pages in recorded/ are the shop's own,
saved from a running stack (the 503 one with PostgreSQL down)."""

from __future__ import annotations

import re
from email.utils import formatdate
from pathlib import Path

import pytest

from loadtests.classify import (
    ANY,
    DECLINED,
    DEGRADED,
    FALSE_DECLINE,
    GRACEFUL,
    OK,
    UNGRACEFUL,
    Expect,
    banner_expected,
    classify,
    leaks,
    retry_after_ok,
)
from loadtests.pages import cents, read_page

RECORDED = Path(__file__).parent / "recorded"
PROBLEM = {"Content-Type": "application/problem+json", "X-Request-ID": "r1", "Retry-After": "30"}
HTML = {"Content-Type": "text/html; charset=utf-8", "X-Request-ID": "r1", "Retry-After": "30"}
JSON = {"Content-Type": "application/json"}
SORRY = '<div class="sorry" id="sorry"><h1>We could not take your order just now</h1></div>'
CHECKOUT_503 = ('{"type": "/problems/payments_unavailable", "title": "We could not take your '
                'order", "status": 503, "detail": "x", "request_id": "r1", "cart_saved": true, '
                '"charged": false}')
ORDER = '{"order_id": "o1", "status": "confirmed", "total_cents": 1999}'
FLASK_500 = ("<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
             "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and "
             "was unable to complete your request.</p>\n")


def page(name: str) -> str:
    return (RECORDED / name).read_text()


def judge(status: int | None, headers: dict[str, str], body: str, expect: Expect = ANY,
          elapsed: float = 0.2) -> tuple[str, str]:
    verdict = classify(status, headers, body, elapsed=elapsed, deadline=5.0, expect=expect)
    return verdict.cls, verdict.reason


@pytest.mark.parametrize("status,headers,body,expected,reason", [
    (201, JSON, ORDER, OK, ""),
    (201, {}, '{"order_id": "x", "status": "payment_pending"}', DEGRADED, "payment_pending"),
    (200, {"X-Degraded": "cart_cookie"}, "{}", DEGRADED, "cart_cookie"),
    (503, PROBLEM, '{"title": "We could not take your order"}', GRACEFUL, "http_503"),
    (429, PROBLEM, '{"title": "Busy"}', GRACEFUL, "http_429"),
    (503, HTML, SORRY, UNGRACEFUL, "unbranded_error_page"),
    (402, PROBLEM, '{"title": "Your card was declined"}', DECLINED, "payment_declined"),
    (409, PROBLEM, '{"title": "Some items sold out"}', GRACEFUL, "http_409"),
    (500, PROBLEM, '{"title": "Something went wrong"}', UNGRACEFUL, "http_500"),
    (503, {**PROBLEM, "Retry-After": ""}, "{}", UNGRACEFUL, "503_without_retry_after"),
    (200, {}, "Traceback (most recent call last):\n  File \"/app.py\"", UNGRACEFUL,
     "internals_in_body"),
    (503, PROBLEM, '{"detail": "OperationalError: connection refused"}', UNGRACEFUL,
     "internals_in_body"),
    (503, PROBLEM, '{"detail": "could not reach 127.0.0.1"}', UNGRACEFUL, "internals_in_body"),
    (503, {**PROBLEM, "Content-Type": "text/plain"}, "down", UNGRACEFUL, "wrong_content_type"),
    (503, HTML, "<h1>Service Unavailable</h1>", UNGRACEFUL, "unbranded_error_page"),
    (503, {k: v for k, v in PROBLEM.items() if k != "X-Request-ID"}, "{}", UNGRACEFUL,
     "no_request_id"),
    (502, PROBLEM, "{}", UNGRACEFUL, "http_502"),
    (303, {"Location": "/orders/abc"}, "", OK, "redirect"),
    (303, {"Location": "/sorry?reason=payments"}, "", GRACEFUL, "redirect"),
])
def test_recorded_answers(status, headers, body, expected, reason) -> None:
    assert judge(status, headers, body) == (expected, reason)


def test_no_answer_at_all_is_ungraceful_with_the_cause() -> None:
    verdict = classify(None, {}, "", 0.1, 5.0, error="ConnectionResetError")
    assert verdict.cls == UNGRACEFUL and verdict.reason == "no_answer:ConnectionResetError"


def test_a_good_answer_after_the_deadline_is_ungraceful() -> None:
    assert judge(201, JSON, ORDER, elapsed=5.1) == (UNGRACEFUL, "past_deadline")


def test_header_names_are_case_insensitive() -> None:
    headers = {"content-type": "application/problem+json", "x-request-id": "r", "retry-after": "1"}
    assert classify(503, headers, "{}", 0.1, 5.0).cls == GRACEFUL


# ---- 2xx bodies against the API's shapes ---------------------------------------------------
CHECKOUT = Expect("checkout", decline_card=False, total_cents=1999)


@pytest.mark.parametrize("status,body,expect,reason", [
    (201, "{}", CHECKOUT, "checkout_2xx_without_order"),
    (200, ORDER, CHECKOUT, "checkout_2xx_without_order"),  # a checkout answers 201
    (201, '{"order_id": "o1", "status": "failed", "total_cents": 1999}', CHECKOUT,
     "checkout_2xx_bad_status"),
    (201, '{"order_id": "o1", "status": "confirmed", "total_cents": 999}', CHECKOUT,
     "checkout_total_differs"),
    (200, '{"error": "payments unavailable"}', Expect("cart"), "error_in_2xx"),
    (200, '{"error": "payments unavailable"}', Expect(), "error_in_2xx"),
    (200, '{"type": "/problems/x", "status": 503}', Expect("order"), "error_in_2xx"),
    (200, "not json", Expect("cart"), "2xx_not_json"),
    (200, '[{"sku": "A"}]', Expect("products"), "products_shape"),
    (200, '{"cart_id": "c", "items": []}', Expect("cart"), "cart_shape"),
    (200, '{"order_id": "o1"}', Expect("order"), "order_shape"),
    (200, '{"overall": "operational", "dependencies": {}}', Expect("status"), "status_shape"),
    (200, '{"dependencies": {"payments": {"state": "fine"}}}', Expect("status"),
     "status_shape"),
])
def test_2xx_bodies_must_have_the_apis_shape(status, body, expect, reason) -> None:
    assert judge(status, JSON, body, expect) == (UNGRACEFUL, reason)


@pytest.mark.parametrize("body,expect", [
    (ORDER, CHECKOUT),
    ('[{"sku": "A", "name": "a", "price_cents": 2, "sale_price_cents": 1}]',
     Expect("products")),
    ('{"cart_id": "c", "items": [], "total_cents": 0}', Expect("cart")),
    ('{"order_id": "o1", "status": "confirmed", "total_cents": 5, "items": []}',
     Expect("order")),
    ('{"overall": "degraded", "dependencies": {"payments": {"state": "degraded"}}}',
     Expect("status")),
])
def test_well_shaped_2xx_bodies_are_ok(body, expect) -> None:
    status = 201 if expect.kind == "checkout" else 200
    assert judge(status, JSON, body, expect)[0] == OK


# ---- declines ---------------------------------------------------------------------------------
def test_402_is_a_decline_only_for_a_card_the_processor_declines() -> None:
    body = '{"title": "Your card was declined", "status": 402, "charged": false}'
    declined = Expect("checkout", decline_card=True)
    assert judge(402, PROBLEM, body, declined) == (DECLINED, "payment_declined")
    assert judge(402, PROBLEM, body, CHECKOUT) == (FALSE_DECLINE, "good_card_declined")
    assert judge(402, {"Content-Type": "text/plain"}, "no", declined) == (
        UNGRACEFUL, "wrong_content_type")


def test_a_declined_checkout_page_is_a_decline_for_a_decline_card_only() -> None:
    body = page("declined.html")
    assert judge(402, HTML, body, Expect("checkout_page", decline_card=True))[0] == DECLINED
    assert judge(402, HTML, body, Expect("checkout_page", decline_card=False))[0] == \
        FALSE_DECLINE


# ---- Retry-After --------------------------------------------------------------------------------
@pytest.mark.parametrize("value,ok", [
    ("30", True), ("0", True), ("3600", True), ("3601", False), ("never", False), ("-5", False),
    ("1.5", False), ("", False),
])
def test_retry_after_must_be_sane_seconds(value, ok) -> None:
    assert retry_after_ok(value) is ok


def test_retry_after_as_an_http_date_must_be_soon() -> None:
    now = 1_800_000_000.0
    assert retry_after_ok(formatdate(now + 30, usegmt=True), now)
    assert not retry_after_ok(formatdate(now + 7200, usegmt=True), now)
    assert not retry_after_ok(formatdate(now - 3600, usegmt=True), now)


def test_a_503_with_retry_after_never_is_ungraceful() -> None:
    assert judge(503, {**PROBLEM, "Retry-After": "never"}, CHECKOUT_503) == (
        UNGRACEFUL, "bad_retry_after")


# ---- leaks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("detail", [
    "[Errno 111] Connection refused", "Errno 104", "could not reach 10.1.2.3:5432",
    "SELECT sku, qty FROM orders WHERE id = 1", 'relation "orders" does not exist',
    "KeyError: 'total'", "psycopg.OperationalError", "duplicate key value violates unique "
    "constraint", "ReadTimeout",
])
def test_internals_in_any_answer_are_ungraceful(detail) -> None:
    body = f'{{"title": "Sorry", "status": 503, "detail": "{detail}"}}'
    assert judge(503, PROBLEM, body) == (UNGRACEFUL, "internals_in_body")
    assert judge(200, JSON, body) == (UNGRACEFUL, "internals_in_body")


# ---- redirects --------------------------------------------------------------------------------
def test_a_redirect_must_stay_on_the_shop() -> None:
    own = Expect("page", host="127.0.0.1:8000")
    assert judge(303, {"Location": "/cart"}, "", own) == (OK, "redirect")
    assert judge(303, {"Location": "http://127.0.0.1:8000/cart"}, "", own) == (OK, "redirect")
    assert judge(303, {"Location": "https://evil.example/cart"}, "", own) == (
        UNGRACEFUL, "redirect_off_site")
    assert judge(302, {"Location": "//evil.example/x"}, "", own) == (
        UNGRACEFUL, "redirect_off_site")
    assert judge(302, {}, "", own) == (UNGRACEFUL, "redirect_off_site")


# ---- the storefront's pages ------------------------------------------------------------------
PAGE = Expect("page")


def test_the_shops_own_pages_are_ok() -> None:
    for name in ("index.html", "product.html", "cart.html", "checkout.html", "status.html"):
        assert judge(200, HTML, page(name), PAGE) == (OK, ""), name


def test_the_sorry_page_meets_the_contract() -> None:
    body = page("sorry-checkout-503.html")
    assert judge(503, HTML, body, Expect("checkout_page")) == (GRACEFUL, "http_503")


def test_a_raw_500_dog_page_with_a_traceback_is_ungraceful() -> None:
    body = FLASK_500 + '<pre>Traceback (most recent call last):\n  File "/app/x.py"</pre>'
    assert judge(500, HTML, body, PAGE) == (UNGRACEFUL, "internals_in_body")


def test_a_framework_error_page_is_unbranded() -> None:
    assert judge(503, HTML, FLASK_500, PAGE) == (UNGRACEFUL, "unbranded_error_page")
    assert judge(200, HTML, FLASK_500, PAGE) == (UNGRACEFUL, "unbranded_page")


def test_a_sorry_page_answered_200_is_ungraceful() -> None:
    assert judge(200, HTML, page("sorry-checkout-503.html"), PAGE) == (
        UNGRACEFUL, "error_page_with_2xx")


def test_a_json_answer_where_a_page_was_asked_is_ungraceful() -> None:
    assert judge(200, JSON, ORDER, PAGE) == (UNGRACEFUL, "page_not_html")


def test_a_sorry_page_must_give_its_reference_and_charge_statement() -> None:
    body = page("sorry-checkout-503.html")
    no_ref = body.replace('id="request-id">b81b4677251d4aba9cd98dfb7e406da6',
                          'id="request-id">')
    assert judge(503, HTML, no_ref, PAGE) == (UNGRACEFUL, "no_reference_on_page")
    silent = body.replace('<p id="payment-statement">You have not been charged.</p>', "")
    assert judge(503, HTML, silent, Expect("checkout_page")) == (
        UNGRACEFUL, "no_charge_statement")
    assert judge(503, HTML, silent, PAGE) == (GRACEFUL, "http_503")  # not a checkout
    no_sorry = body.replace('id="sorry"', 'id="oops"')
    assert judge(503, HTML, no_sorry, PAGE) == (UNGRACEFUL, "no_sorry_page")


def test_a_checkout_problem_must_say_what_happened_to_the_money_and_cart() -> None:
    expect = Expect("checkout", decline_card=False)
    assert judge(503, PROBLEM, CHECKOUT_503, expect) == (GRACEFUL, "http_503")
    silent = CHECKOUT_503.replace(', "charged": false', "")
    assert judge(503, PROBLEM, silent, expect) == (UNGRACEFUL, "no_charge_statement")
    assert judge(503, PROBLEM, '{"status": 500}', expect) == (UNGRACEFUL, "bad_problem_body")


def test_the_banner_must_match_what_the_status_said() -> None:
    healthy, troubled = page("index.html"), page("index-with-banner.html")
    assert judge(200, HTML, troubled, Expect("page", banner="hidden")) == (
        UNGRACEFUL, "banner_stuck")
    assert judge(200, HTML, healthy, Expect("page", banner="shown")) == (
        UNGRACEFUL, "banner_missing")
    assert judge(200, HTML, troubled, Expect("page", banner="shown"))[0] == OK
    assert judge(200, HTML, healthy, Expect("page", banner="hidden"))[0] == OK
    sorry = page("sorry-checkout-503.html")
    assert judge(503, HTML, sorry, Expect("page", banner="hidden")) == (
        UNGRACEFUL, "banner_stuck")


def test_banner_expected_only_once_the_status_has_settled() -> None:
    def samples(values: list[bool | None]) -> list[tuple[float, bool | None]]:
        return [(100.0 + i * 0.5, v) for i, v in enumerate(values)]

    at = 100.0 + 14 * 0.5  # 7 s of samples before the page, 2.5 s after it
    assert banner_expected(samples([True] * 20), at, 6.0, 2.5, 0.5) == "shown"
    assert banner_expected(samples([False] * 20), at, 6.0, 2.5, 0.5) == "hidden"
    assert banner_expected(samples([False] * 15 + [True] * 5), at, 6.0, 2.5, 0.5) is None
    assert banner_expected(samples([True] * 4 + [False] * 16), at, 6.0, 2.5, 0.5) is None
    assert banner_expected(samples([True] * 19 + [None]), at, 6.0, 2.5, 0.5) is None
    assert banner_expected(samples([True] * 3), 100.0 + 2 * 0.5, 6.0, 2.5, 0.5) is None


def test_read_page_finds_what_a_shopper_would_use() -> None:
    shown = read_page(page("product.html"))
    form = shown.form("/cart/add")
    assert shown.branded and not shown.banner and form is not None
    assert form.fields["sku"] == "LAMP-001" and form.fields["csrf_token"]
    checkout = read_page(page("checkout.html")).form("/checkout")
    assert checkout is not None and len(checkout.fields["idempotency_key"]) == 32
    assert read_page(page("cart.html")).cart_total_cents == 1199
    sorry = read_page(page("sorry-checkout-503.html"))
    assert sorry.sorry and sorry.banner and sorry.cart_saved and sorry.charged is False
    assert sorry.request_id == "b81b4677251d4aba9cd98dfb7e406da6"
    assert set(read_page(page("status.html")).status_states) == {
        "payments", "inventory", "database", "cache"}


def test_cents_reads_money_as_the_shop_writes_it() -> None:
    assert cents("Total $1,234.56") == 123456
    assert cents("$0.99") == 99
    assert cents("nothing") is None


LEAK_ORACLE = [  # the leak patterns run in full over the whole body: what leaks() must agree with
    re.compile(r"Traceback \(most recent call last\)|File \"/|psycopg|redis\.exceptions|werkzeug|"
               r"gunicorn\.|sqlalchemy|\b127\.0\.0\.1\b|\blocalhost:\d+|toxiproxy|:\d{4,5}/|"
               r"\[Errno -?\d+\]|\bErrno\b|\b\d{1,3}(?:\.\d{1,3}){3}:\d{2,5}\b|"
               r"syntax error at or near|relation \"[^\"]+\" does not exist|violates \w+ "
               r"constraint|current transaction is aborted", re.IGNORECASE),
    re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Timeout)\b"),
    re.compile(r"\b(?:SELECT\b[^<>]{1,200}\bFROM|INSERT INTO|UPDATE\b[^<>]{1,100}\bSET|"
               r"DELETE FROM)\b"),
]


@pytest.mark.parametrize("text", [
    "see 10.0.0.5:5432 now", "http://x:8101/a", "at 127.0.0.1", "padding:100%", "v1.2.3.4:80",
    "1.2.3.4:8", "KeyError raised", "SELECT a FROM b", "OSError: [Errno 111]", "fine page",
    "LOCALHOST:8000", "Psycopg said", "relation \"orders\" does not exist", "TimeoutError",
    "a Timeout of 5 s", "UPDATE your cart SET", "errno", "12.34.56.78:9", "version 1.2.3.4:10",
    *[p.read_text() for p in sorted(RECORDED.glob("*.html"))],
])
def test_the_cheap_leak_check_agrees_with_the_full_patterns(text: str) -> None:
    """leaks() runs the patterns only where a word they need is present: it must find
    exactly what running every pattern over the whole body finds."""
    assert leaks(text) == any(p.search(text) for p in LEAK_ORACLE)
