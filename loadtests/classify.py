"""Judge every answer a shopper got against the graceful-failure contract (DESIGN.md).

A plain function of what came back, so it is unit-tested on recorded responses and used
alike by the locustfile, the scripted outage and the chaos runner.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

OK, DEGRADED, GRACEFUL, DECLINED, UNGRACEFUL = (
    "ok", "degraded", "graceful_error", "declined", "ungraceful"
)
CLASSES = (OK, DEGRADED, GRACEFUL, DECLINED, UNGRACEFUL)
# A shopper gives up on an answer after this long: a hung request then shows as an
# ungraceful "no answer" within seconds, not after the HTTP client's 60 s default.
GIVE_UP_SECONDS = 10.0

# What must never reach a shopper: tracebacks, exception classes, library and host names.
_LEAKS = re.compile(
    r"Traceback \(most recent call last\)|File \"/|psycopg|redis\.exceptions|werkzeug|"
    r"gunicorn\.|sqlalchemy|\b127\.0\.0\.1\b|\blocalhost:\d+|toxiproxy|:\d{4,5}/",
    re.IGNORECASE,
)
_CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Timeout)\b")
_SORRY_MARK = 'id="sorry"'
_PROBLEM = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The class of one answer and, for anything not ok, why."""

    cls: str
    reason: str = ""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def classify(
    status: int | None,
    headers: Mapping[str, str],
    body: str,
    elapsed: float,
    deadline: float,
    error: str | None = None,
) -> Verdict:
    """The class of one answer. status None means no HTTP answer at all (error says why)."""
    if status is None or status == 0:
        return Verdict(UNGRACEFUL, f"no_answer:{error or 'connection_failed'}")
    if elapsed > deadline:
        return Verdict(UNGRACEFUL, "past_deadline")
    content_type = _header(headers, "Content-Type").split(";")[0].strip().lower()
    if _LEAKS.search(body) or _CLASS_NAME.search(body):
        return Verdict(UNGRACEFUL, "internals_in_body")
    if 200 <= status < 400:
        if status in (301, 302, 303, 307, 308):
            target = _header(headers, "Location")
            return Verdict(OK if target and "sorry" not in target else GRACEFUL, "redirect")
        if '"status":"payment_pending"' in body.replace(" ", ""):
            return Verdict(DEGRADED, "payment_pending")
        if _header(headers, "X-Degraded"):
            return Verdict(DEGRADED, _header(headers, "X-Degraded"))
        return Verdict(OK)
    if status == 402:
        return Verdict(DECLINED, "payment_declined")
    if not _header(headers, "X-Request-ID"):
        return Verdict(UNGRACEFUL, "no_request_id")
    if content_type not in (_PROBLEM, "text/html"):
        return Verdict(UNGRACEFUL, "wrong_content_type")
    if content_type == "text/html" and _SORRY_MARK not in body:
        return Verdict(UNGRACEFUL, "unbranded_error_page")
    if status in (429, 503):
        if not _header(headers, "Retry-After"):
            return Verdict(UNGRACEFUL, f"{status}_without_retry_after")
        return Verdict(GRACEFUL, f"http_{status}")
    if 400 <= status < 500:
        return Verdict(GRACEFUL, f"http_{status}")
    return Verdict(UNGRACEFUL, f"http_{status}")
