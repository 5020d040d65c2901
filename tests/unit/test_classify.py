"""The classifier on recorded answers: one per class, and the tricky ones."""

from __future__ import annotations

import pytest

from loadtests.classify import DECLINED, DEGRADED, GRACEFUL, OK, UNGRACEFUL, classify

PROBLEM = {"Content-Type": "application/problem+json", "X-Request-ID": "r1", "Retry-After": "30"}
HTML = {"Content-Type": "text/html; charset=utf-8", "X-Request-ID": "r1", "Retry-After": "30"}
SORRY = '<div class="sorry" id="sorry"><h1>We could not take your order just now</h1></div>'


@pytest.mark.parametrize("status,headers,body,expected,reason", [
    (201, {"Content-Type": "application/json"}, '{"status": "confirmed"}', OK, ""),
    (201, {}, '{"order_id": "x", "status": "payment_pending"}', DEGRADED, "payment_pending"),
    (200, {"X-Degraded": "cart_cookie"}, "{}", DEGRADED, "cart_cookie"),
    (503, PROBLEM, '{"title": "We could not take your order"}', GRACEFUL, "http_503"),
    (429, PROBLEM, '{"title": "Busy"}', GRACEFUL, "http_429"),
    (503, HTML, SORRY, GRACEFUL, "http_503"),
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
    verdict = classify(status, headers, body, elapsed=0.2, deadline=5.0)
    assert (verdict.cls, verdict.reason) == (expected, reason)


def test_no_answer_at_all_is_ungraceful_with_the_cause() -> None:
    verdict = classify(None, {}, "", 0.1, 5.0, error="ConnectionResetError")
    assert verdict.cls == UNGRACEFUL and verdict.reason == "no_answer:ConnectionResetError"


def test_a_good_answer_after_the_deadline_is_ungraceful() -> None:
    verdict = classify(201, {}, '{"status": "confirmed"}', elapsed=5.1, deadline=5.0)
    assert verdict.cls == UNGRACEFUL and verdict.reason == "past_deadline"


def test_header_names_are_case_insensitive() -> None:
    headers = {"content-type": "application/problem+json", "x-request-id": "r", "retry-after": "1"}
    assert classify(503, headers, "{}", 0.1, 5.0).cls == GRACEFUL
