"""payments: a simulated card processor with idempotency keys and a read-only ledger.

authorize (hold) -> capture (money moves) | void (hold released); capture -> refund.
The same Idempotency-Key never makes a second charge, even when two requests race:
the key is UNIQUE in the ledger and the first writer wins.
Run: gunicorn "demo_shop.upstreams.payments:create_app()".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
import uuid
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from prometheus_client import Counter

from ..cards import DIGITS, luhn_ok
from .common import SqliteStore, instrument, json_body, problem
from .faults import install as install_faults

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    charge_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_hash TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    currency TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    card_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    decline_code TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_order_idx ON charges (order_id);
"""

TEST_CARD_DECLINES = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}
# Which status a charge may move to from which: (operation) -> (from states, to state).
MOVES = {
    "capture": ({"authorized"}, "captured"),
    "void": ({"authorized"}, "voided"),
    "refund": ({"captured"}, "refunded"),
}
CHARGE_COLUMNS = (
    "charge_id, idempotency_key, order_id, amount_cents, currency, card_last4, status, "
    "decline_code, created_at, updated_at"
)


def validate_card(card: Any, merchant_initiated: bool = False) -> tuple[str | None, str | None]:
    """(error for a malformed card, decline code for a card the processor says no to).
    A merchant-initiated charge (a stored card, the shopper not present) comes without CVC."""
    if not isinstance(card, dict):
        return "card must be an object with number, exp_month, exp_year, cvc", None
    raw = card.get("number")
    number = raw.replace(" ", "") if isinstance(raw, str) else ""
    if not (DIGITS.match(number) and 12 <= len(number) <= 19):
        return "card.number must be 12 to 19 digits", None
    month, year = card.get("exp_month"), card.get("exp_year")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (month, year)):
        return "card.exp_month and card.exp_year must be whole numbers", None
    assert isinstance(month, int) and isinstance(year, int)
    if not 1 <= month <= 12:
        return "card.exp_month must be 1 to 12", None
    cvc = card.get("cvc")
    if not (merchant_initiated and cvc is None) and not (
            isinstance(cvc, str) and DIGITS.match(cvc) and 3 <= len(cvc) <= 4):
        return "card.cvc must be 3 or 4 digits", None
    if number in TEST_CARD_DECLINES:
        return None, TEST_CARD_DECLINES[number]
    if not luhn_ok(number):
        return None, "incorrect_number"
    now = time.gmtime()
    if (year, month) < (now.tm_year, now.tm_mon):
        return None, "expired_card"
    return None, None


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The payments service app."""
    app = Flask(__name__)
    app.config.from_mapping(
        DB_PATH=os.environ.get("PAYMENTS_DB", "payments.sqlite3"),
        PROCESSING_MS=float(os.environ.get("PAYMENTS_PROCESSING_MS", "40")),
        PROCESSING_JITTER_MS=float(os.environ.get("PAYMENTS_PROCESSING_JITTER_MS", "20")),
        FINGERPRINT_KEY=os.environ.get("PAYMENTS_FINGERPRINT_KEY", ""),
    )
    if test_config:
        app.config.update(test_config)
    key = app.config["FINGERPRINT_KEY"].encode()
    if len(key) < 32 and not app.config.get("TESTING"):
        raise ValueError("PAYMENTS_FINGERPRINT_KEY is missing or short: start payments with "
                         "`make up` (it generates per-install secrets in .run/secrets.json)")

    def keyed_digest(parts: list[Any]) -> str:
        return hmac.new(key, json.dumps(parts).encode(), hashlib.sha256).hexdigest()

    store = SqliteStore(app.config["DB_PATH"], SCHEMA)
    app.extensions["ledger"] = store
    instrument(app, "payments")
    faults = install_faults(app, ("errors", "latency", "declines", "capture_lost"))
    charges_total = Counter(
        "payments_charges_total", "Charge operations by result", ["operation", "result"],
        registry=app.extensions["metrics_registry"],
    )

    def processing_delay() -> None:
        mean = current_app.config["PROCESSING_MS"]
        jitter = current_app.config["PROCESSING_JITTER_MS"]
        delay = max(0.0, random.uniform(mean - jitter, mean + jitter)) / 1000.0
        if delay:
            time.sleep(delay)

    def charge_json(row: Any) -> dict[str, Any]:
        return dict(row)

    def by_key(key: str) -> Any:
        return store.conn().execute(
            f"SELECT {CHARGE_COLUMNS}, request_hash FROM charges WHERE idempotency_key = ?",
            (key,),
        ).fetchone()

    def answer(row: Any, status: int) -> Response:
        body = charge_json(row)
        body.pop("request_hash", None)
        if row["status"] == "declined":
            status = 402
        response = jsonify(body)
        response.status_code = status
        return response

    @app.post("/v1/charges")
    def authorize() -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 200:
            return problem(400, "Idempotency-Key header required (1-200 characters)")
        body = json_body()
        amount = body.get("amount_cents")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return problem(400, "amount_cents must be a positive whole number")
        order_id = str(body.get("order_id", ""))
        if not order_id:
            return problem(400, "order_id is required")
        error, decline = validate_card(body.get("card"), body.get("merchant_initiated") is True)
        if error:
            return problem(400, error)
        if decline is None and faults.hits("declines"):
            decline = "do_not_honor"  # an injected decline, as an issuer would answer
        capture = bool(body.get("capture", False))
        card = body["card"]
        number = card["number"].replace(" ", "")
        # Neither the CVC nor a hash anyone could brute-force is kept: the fingerprint (and
        # the request hash that tells a replay from a reuse) is keyed with this install's
        # secret, and the CVC is in neither.
        fingerprint = keyed_digest([number, card["exp_month"], card["exp_year"]])
        request_hash = keyed_digest([order_id, amount, fingerprint, capture])

        existing = by_key(key)
        if existing is None:
            now = time.time()
            with store.write() as conn:
                cur = conn.execute(
                    "INSERT INTO charges (charge_id, idempotency_key, request_hash, order_id, "
                    "amount_cents, currency, card_last4, card_fingerprint, status, "
                    "decline_code, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'processing', ?, ?, ?) "
                    "ON CONFLICT (idempotency_key) DO NOTHING",
                    ("ch_" + uuid.uuid4().hex[:24], key, request_hash, order_id, amount,
                     str(body.get("currency", "usd")), number[-4:], fingerprint, decline,
                     now, now),
                )
                won = cur.rowcount == 1
            if won:
                processing_delay()
                final = "declined" if decline else ("captured" if capture else "authorized")
                with store.write() as conn:
                    conn.execute(
                        "UPDATE charges SET status = ?, updated_at = ? WHERE idempotency_key = ?",
                        (final, time.time(), key),
                    )
                charges_total.labels("authorize", final).inc()
                return answer(by_key(key), 201)
            existing = by_key(key)
        if existing["request_hash"] != request_hash:
            return problem(422, "Idempotency-Key was used for a different request")
        # A replay: wait (bounded) for a racing first request to finish processing.
        deadline = time.monotonic() + 10.0
        while existing["status"] == "processing" and time.monotonic() < deadline:
            time.sleep(0.01)
            existing = by_key(key)
        if existing["status"] == "processing":
            return problem(409, "A request with this Idempotency-Key is still processing")
        charges_total.labels("authorize", "replayed").inc()
        return answer(existing, 200)

    def move(charge_id: str, operation: str) -> Response:
        allowed_from, target = MOVES[operation]
        with store.write() as conn:
            row = conn.execute(
                f"SELECT {CHARGE_COLUMNS} FROM charges WHERE charge_id = ?", (charge_id,)
            ).fetchone()
            if row is None:
                return problem(404, "No such charge", charge_id=charge_id)
            if row["status"] == target:
                charges_total.labels(operation, "replayed").inc()
                return answer(row, 200)
            if row["status"] not in allowed_from:
                charges_total.labels(operation, "conflict").inc()
                return problem(409, f"Cannot {operation} a charge that is {row['status']}",
                               charge_id=charge_id, charge_status=row["status"])
            conn.execute(
                "UPDATE charges SET status = ?, updated_at = ? WHERE charge_id = ?",
                (target, time.time(), charge_id),
            )
        charges_total.labels(operation, target).inc()
        if operation == "capture":
            processing_delay()
        return answer(
            store.conn().execute(
                f"SELECT {CHARGE_COLUMNS} FROM charges WHERE charge_id = ?", (charge_id,)
            ).fetchone(),
            200,
        )

    @app.post("/v1/charges/<charge_id>/capture")
    def capture(charge_id: str) -> Response:
        moved = move(charge_id, "capture")
        if moved.status_code == 200 and faults.hits("capture_lost"):
            # The money moved, the answer does not say so: the shop must find out.
            return problem(500, "Internal error")
        return moved

    @app.post("/v1/charges/<charge_id>/void")
    def void(charge_id: str) -> Response:
        return move(charge_id, "void")

    @app.post("/v1/charges/<charge_id>/refund")
    def refund(charge_id: str) -> Response:
        return move(charge_id, "refund")

    @app.get("/v1/charges/<charge_id>")
    def get_charge(charge_id: str) -> Response:
        row = store.conn().execute(
            f"SELECT {CHARGE_COLUMNS} FROM charges WHERE charge_id = ?", (charge_id,)
        ).fetchone()
        return answer(row, 200) if row else problem(404, "No such charge")

    @app.get("/v1/charges")
    def list_charges() -> Response:
        """The ledger, read-only: all charges, or those of one key or order."""
        clauses, args = [], []
        for param in ("idempotency_key", "order_id", "status"):
            if request.args.get(param):
                clauses.append(f"{param} = ?")
                args.append(request.args[param])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = store.conn().execute(
            f"SELECT {CHARGE_COLUMNS} FROM charges {where} ORDER BY created_at", args
        ).fetchall()
        return jsonify(charges=[charge_json(r) for r in rows])

    return app
