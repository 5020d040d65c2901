"""inventory: stock per sku and reservations that expire, durable in SQLite.

available = on_hand - units held by active, unexpired reservations.
reserve (hold) -> commit (units leave on_hand) | release | expire.
Run: gunicorn "demo_shop.upstreams.inventory:create_app()".
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import Counter

from ..catalog import PRODUCTS
from ..domain import InvalidQuantity, validate_qty
from .common import SqliteStore, instrument, json_body, problem
from .faults import install as install_faults

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY,
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (reservation_id),
    sku TEXT NOT NULL REFERENCES stock (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (reservation_id, sku)
);
CREATE INDEX IF NOT EXISTS reservations_state_idx ON reservations (state, expires_at);
"""
MAX_TTL_SECONDS = 24 * 3600


def expire_due(conn: sqlite3.Connection, now: float) -> int:
    """Mark active reservations past their expiry as expired; their units are free again."""
    return conn.execute(
        "UPDATE reservations SET state = 'expired', updated_at = ? "
        "WHERE state = 'active' AND expires_at <= ?",
        (now, now),
    ).rowcount


def available(conn: sqlite3.Connection, sku: str, now: float) -> int:
    """Units of sku that a new reservation may take."""
    row = conn.execute(
        "SELECT s.on_hand - COALESCE((SELECT SUM(l.qty) FROM reservation_lines l "
        "JOIN reservations r USING (reservation_id) WHERE l.sku = s.sku "
        "AND r.state = 'active' AND r.expires_at > ?), 0) FROM stock s WHERE s.sku = ?",
        (now, sku),
    ).fetchone()
    return int(row[0]) if row else 0


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The inventory service app."""
    app = Flask(__name__)
    app.config.from_mapping(
        DB_PATH=os.environ.get("INVENTORY_DB", "inventory.sqlite3"),
        PROCESSING_MS=float(os.environ.get("INVENTORY_PROCESSING_MS", "5")),
    )
    if test_config:
        app.config.update(test_config)
    store = SqliteStore(app.config["DB_PATH"], SCHEMA)
    with store.write() as conn:
        conn.executemany(
            "INSERT OR IGNORE INTO stock (sku, on_hand) VALUES (?, ?)",
            [(p.sku, p.initial_stock) for p in PRODUCTS],
        )
    app.extensions["inventory"] = store
    instrument(app, "inventory")
    install_faults(app, ("errors", "latency"))
    reservations_total = Counter(
        "inventory_reservations_total", "Reservation operations by result",
        ["operation", "result"], registry=app.extensions["metrics_registry"],
    )

    def delay() -> None:
        if app.config["PROCESSING_MS"] > 0:
            time.sleep(app.config["PROCESSING_MS"] / 1000.0)

    def reservation_json(conn: sqlite3.Connection, rid: str) -> dict[str, Any] | None:
        row = conn.execute(
            "SELECT reservation_id, state, expires_at, created_at, updated_at "
            "FROM reservations WHERE reservation_id = ?", (rid,)
        ).fetchone()
        if row is None:
            return None
        lines = conn.execute(
            "SELECT sku, qty FROM reservation_lines WHERE reservation_id = ? ORDER BY sku", (rid,)
        ).fetchall()
        body = dict(row)
        body["items"] = [{"sku": sku, "qty": qty} for sku, qty in lines]
        return body

    @app.post("/v1/reservations")
    def reserve() -> Response:
        body = json_body()
        rid = str(body.get("reservation_id", "")).strip()
        if not rid or len(rid) > 200:
            return problem(400, "reservation_id is required (1-200 characters)")
        ttl = body.get("ttl_seconds", 900)
        numeric = isinstance(ttl, int | float) and not isinstance(ttl, bool)
        if not numeric or not 0 < ttl <= MAX_TTL_SECONDS:
            return problem(400, f"ttl_seconds must be in (0, {MAX_TTL_SECONDS}]")
        items = body.get("items")
        if not isinstance(items, list) or not items:
            return problem(400, "items must be a non-empty list of {sku, qty}")
        wanted: dict[str, int] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
                return problem(400, "each item needs a sku and a qty")
            try:
                wanted[item["sku"]] = wanted.get(item["sku"], 0) + validate_qty(item.get("qty"))
            except InvalidQuantity as exc:
                return problem(400, str(exc))
        delay()
        now = time.time()
        with store.write() as conn:
            expire_due(conn, now)
            existing = reservation_json(conn, rid)
            if existing is not None:
                reservations_total.labels("reserve", "replayed").inc()
                if existing["state"] != "active":
                    return problem(409, f"Reservation is {existing['state']}", reservation=existing)
                return jsonify(existing)
            for sku, qty in sorted(wanted.items()):
                if conn.execute("SELECT 1 FROM stock WHERE sku = ?", (sku,)).fetchone() is None:
                    return problem(404, "Unknown sku", sku=sku)
                if available(conn, sku, now) < qty:
                    reservations_total.labels("reserve", "out_of_stock").inc()
                    return problem(409, "Not enough stock", sku=sku)
            conn.execute(
                "INSERT INTO reservations (reservation_id, state, expires_at, created_at, "
                "updated_at) VALUES (?, 'active', ?, ?, ?)", (rid, now + ttl, now, now),
            )
            conn.executemany(
                "INSERT INTO reservation_lines (reservation_id, sku, qty) VALUES (?, ?, ?)",
                [(rid, sku, qty) for sku, qty in wanted.items()],
            )
            created = reservation_json(conn, rid)
        reservations_total.labels("reserve", "reserved").inc()
        response = jsonify(created)
        response.status_code = 201
        return response

    def active(conn: sqlite3.Connection, rid: str, operation: str,
               done_state: str = "") -> tuple[dict[str, Any] | None, Response | None]:
        """(the active reservation, None), or (None, the answer to give instead): 404, 409,
        or the reservation itself when it is already in done_state (a replay)."""
        current = reservation_json(conn, rid)
        if current is None:
            return None, problem(404, "No such reservation", reservation_id=rid)
        if current["state"] == done_state:
            reservations_total.labels(operation, "replayed").inc()
            return None, jsonify(current)
        if current["state"] != "active":
            reservations_total.labels(operation, "conflict").inc()
            return None, problem(409, f"Reservation is {current['state']}", reservation=current)
        return current, None

    def finish(rid: str, target: str) -> Response:
        """Move an active reservation to committed or released (idempotent)."""
        delay()
        now = time.time()
        with store.write() as conn:
            expire_due(conn, now)
            late = reservation_json(conn, rid)
            if target == "released" and late is not None and late["state"] == "expired":
                # Given back by its owner after it expired: its units were already free;
                # the record says the owner did give them back.
                conn.execute("UPDATE reservations SET state = 'released', updated_at = ? "
                             "WHERE reservation_id = ?", (now, rid))
                reservations_total.labels(target, "after_expiry").inc()
                return jsonify(reservation_json(conn, rid))
            current, answer = active(conn, rid, target, done_state=target)
            if current is None:
                assert answer is not None
                return answer
            if target == "committed":
                conn.executemany(
                    "UPDATE stock SET on_hand = on_hand - ? WHERE sku = ?",
                    [(line["qty"], line["sku"]) for line in current["items"]],
                )
            conn.execute(
                "UPDATE reservations SET state = ?, updated_at = ? WHERE reservation_id = ?",
                (target, now, rid),
            )
            done = reservation_json(conn, rid)
        reservations_total.labels(target, "ok").inc()
        return jsonify(done)

    @app.post("/v1/reservations/<rid>/commit")
    def commit(rid: str) -> Response:
        return finish(rid, "committed")

    @app.post("/v1/reservations/<rid>/release")
    def release(rid: str) -> Response:
        return finish(rid, "released")

    @app.post("/v1/reservations/<rid>/extend")
    def extend(rid: str) -> Response:
        """Hold an active reservation longer (a payment taken later): {ttl_seconds} from now."""
        ttl = json_body().get("ttl_seconds")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or \
                not 0 < ttl <= MAX_TTL_SECONDS:
            return problem(400, f"ttl_seconds must be in (0, {MAX_TTL_SECONDS}]")
        delay()
        now = time.time()
        with store.write() as conn:
            expire_due(conn, now)
            current, answer = active(conn, rid, "extend")
            if current is None:
                assert answer is not None
                return answer
            conn.execute(
                "UPDATE reservations SET expires_at = max(expires_at, ?), updated_at = ? "
                "WHERE reservation_id = ?", (now + ttl, now, rid),
            )
            done = reservation_json(conn, rid)
        reservations_total.labels("extend", "ok").inc()
        return jsonify(done)

    @app.get("/v1/reservations/<rid>")
    def get_reservation(rid: str) -> Response:
        with store.write() as conn:
            expire_due(conn, time.time())
            found = reservation_json(conn, rid)
        return jsonify(found) if found else problem(404, "No such reservation")

    @app.get("/v1/reservations")
    def list_reservations() -> Response:
        """Every reservation (optionally of one state), for audits."""
        with store.write() as conn:
            expire_due(conn, time.time())
            state = request.args.get("state")
            ids = [r[0] for r in conn.execute(
                "SELECT reservation_id FROM reservations WHERE (? IS NULL OR state = ?) "
                "ORDER BY created_at", (state, state),
            )]
            return jsonify(reservations=[reservation_json(conn, i) for i in ids])

    @app.get("/v1/stock")
    def stock() -> Response:
        delay()
        conn = store.conn()
        now = time.time()
        rows = conn.execute("SELECT sku, on_hand FROM stock ORDER BY sku").fetchall()
        items = []
        for sku, on_hand in rows:
            free = available(conn, sku, now)
            items.append({"sku": sku, "on_hand": on_hand, "reserved": on_hand - free,
                          "available": free})
        return jsonify(items=items)

    return app
