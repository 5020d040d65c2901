"""Basket & Co: a second, deliberately different small shop, written so the harness can be
shown to judge a checkout that is not the reference shop's (targets/basket.yaml).

It differs on purpose: its own routes (/catalog, /basket, /basket/pay, /receipts/<id>), a
basket named only by the X-Basket header the shop hands out (no cookie), a plain-text
status page (`card-gateway: UP`), and no cache: payments, inventory and PostgreSQL only,
each reached through Toxiproxy.

And it has KNOWN WEAKNESSES, which the gate must name (README, "Point it at your own
checkout"); each is marked `WEAKNESS` below:

1. it calls the card gateway with no timeout: a slow or silent gateway hangs checkout;
2. a database error is Flask's bare 500 page (no request id, not the shop's page);
3. its status page never looks at inventory, and knows only UP or OUT: an inventory
   outage, or a slow gateway or database, is never told;
4. a checkout whose payment call fails leaves its stock reservation to expire.

What it does right: an honest 503 (problem+json, Retry-After, a request id, "you have not
been charged") when the gateway or inventory refuses the connection, and a declined card's
stock given back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from flask import Flask, Response, g, jsonify, render_template_string, request
from psycopg_pool import ConnectionPool

from demo_shop.catalog import PRODUCTS

SCHEMA = """
CREATE TABLE IF NOT EXISTS basket_lines (
    basket_id text NOT NULL, sku text NOT NULL, qty integer NOT NULL,
    PRIMARY KEY (basket_id, sku));
CREATE TABLE IF NOT EXISTS basket_orders (
    order_id text PRIMARY KEY, idempotency_key text UNIQUE NOT NULL, status text NOT NULL,
    total_cents integer NOT NULL, reservation_id text, charge_id text,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
"""
PRICES = {p.sku: p.sale_price_cents for p in PRODUCTS}
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Basket &amp; Co</title></head>
<body><div class="masthead"><a class="shopname" href="/">Basket &amp; Co</a></div>
{% if troubled %}<p class="outage-notice">Some of our systems are having trouble:
{{ troubled|join(", ") }}. Your basket is safe.</p>{% endif %}
<main>{% for p in products %}<p><a href="/item/{{ p.sku }}">{{ p.name }}</a>
${{ "%.2f"|format(p.sale_price_cents / 100) }}</p>{% endfor %}</main></body></html>"""
STATUS_TTL = 1.0  # seconds the shop's last look at its dependencies is kept


def problem(status: int, title: str, retry_after: int | None = None,
            **extra: Any) -> Response:
    """An error as application/problem+json, with the request id (and Retry-After)."""
    response = jsonify({"type": "about:blank", "title": title, "status": status, **extra})
    response.status_code = status
    response.mimetype = "application/problem+json"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def create_app() -> Flask:
    """The shop, configured from BASKET_DATABASE_URL, BASKET_PAYMENTS_URL and
    BASKET_INVENTORY_URL (each a Toxiproxy proxy)."""
    app = Flask(__name__)
    database_url = os.environ["BASKET_DATABASE_URL"]
    payments_url = os.environ["BASKET_PAYMENTS_URL"]
    inventory_url = os.environ["BASKET_INVENTORY_URL"]
    status_file = Path(os.environ.get("BASKET_STATUS_FILE",
                                      Path(tempfile.gettempdir()) / "basket-status.json"))
    token = os.environ.get("BASKET_SERVICE_TOKEN", "")
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    # A connection the database dropped is found before use, not by a shopper.
    pool = ConnectionPool(database_url, min_size=1, max_size=16, timeout=2,
                          kwargs={"autocommit": True, "connect_timeout": 2}, open=True,
                          check=ConnectionPool.check_connection)

    @contextmanager
    def db() -> Iterator[psycopg.Connection[Any]]:
        with pool.connection() as conn:
            yield conn

    @app.before_request
    def _request_id() -> Response | None:
        g.request_id = uuid.uuid4().hex[:16]
        # Only our own loopback address and port (no DNS rebinding from a browser).
        host, port = request.host.rpartition(":")[::2] if ":" in request.host else (
            request.host, "80")
        if host not in ("127.0.0.1", "localhost") or port != request.environ.get(
                "SERVER_PORT"):
            return problem(421, "This shop answers its loopback address only")
        return None

    @app.after_request
    def _tag(response: Response) -> Response:
        if response.status_code != 500:  # WEAKNESS 2: the bare 500 says nothing
            response.headers["X-Request-ID"] = g.get("request_id", "")
        return response

    def basket(basket_id: str) -> dict[str, Any]:
        with db() as conn:
            rows = conn.execute("SELECT sku, qty FROM basket_lines WHERE basket_id = %s "
                                "ORDER BY sku", (basket_id,)).fetchall()
        items = [{"sku": sku, "qty": qty, "price_cents": PRICES[sku]} for sku, qty in rows]
        return {"cart_id": basket_id, "items": items,
                "total_cents": sum(i["qty"] * i["price_cents"] for i in items)}

    def status() -> dict[str, str]:
        """card-gateway and orders-db, UP or OUT, looked at once a second by whichever
        worker comes first and shared through a file, so every worker's pages and status
        page agree. WEAKNESS 3: stock is always said UP; inventory is never looked at."""
        try:
            shared = json.loads(status_file.read_text())
            if time.time() - shared["at"] < STATUS_TTL:
                return dict(shared["states"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        states = {"card-gateway": "UP", "orders-db": "UP", "stock": "UP"}
        try:
            httpx.get(f"{payments_url}/healthz", timeout=2).raise_for_status()
        except httpx.HTTPError:
            states["card-gateway"] = "OUT"
        try:
            with psycopg.connect(database_url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            states["orders-db"] = "OUT"
        scratch = status_file.with_name(f"{status_file.name}.{uuid.uuid4().hex}")
        scratch.write_text(json.dumps({"at": time.time(), "states": states}))
        scratch.replace(status_file)  # atomic: a reader sees the old look or the new
        return states

    @app.get("/ready")
    def ready() -> Response:
        return jsonify({"ready": True})

    @app.get("/health")
    def health() -> Response:
        lines = "".join(f"{name}: {state}\n" for name, state in status().items())
        return Response(lines, mimetype="text/plain")

    @app.get("/")
    def home() -> str:
        troubled = [n for n, s in status().items() if s != "UP"]
        return render_template_string(PAGE, products=PRODUCTS, troubled=troubled)

    @app.get("/item/<sku>")
    def item(sku: str) -> Any:
        found = [p for p in PRODUCTS if p.sku == sku]
        if not found:
            return problem(404, "No such item")
        troubled = [n for n, s in status().items() if s != "UP"]
        return render_template_string(PAGE, products=found, troubled=troubled)

    @app.get("/catalog")
    def catalog() -> Response:
        return jsonify([{"sku": p.sku, "name": p.name, "price_cents": p.price_cents,
                         "sale_price_cents": p.sale_price_cents} for p in PRODUCTS])

    @app.post("/basket/lines")
    def add_line() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("sku") not in PRICES or \
                not isinstance(body.get("qty"), int) or not 1 <= body["qty"] <= 10:
            return problem(400, "Send {sku, qty} with a known sku and qty from 1 to 10")
        basket_id = request.headers.get("X-Basket") or uuid.uuid4().hex
        with db() as conn:
            conn.execute("INSERT INTO basket_lines (basket_id, sku, qty) VALUES (%s, %s, %s) "
                         "ON CONFLICT (basket_id, sku) DO UPDATE SET qty = basket_lines.qty "
                         "+ EXCLUDED.qty", (basket_id, body["sku"], body["qty"]))
        response = jsonify(basket(basket_id))
        response.headers["X-Basket"] = basket_id
        return response

    @app.get("/basket")
    def show_basket() -> Response:
        basket_id = request.headers.get("X-Basket")
        if not basket_id:
            return problem(400, "Name your basket with the X-Basket header")
        return jsonify(basket(basket_id))

    @app.get("/receipts/<order_id>")
    def receipt(order_id: str) -> Response:
        with db() as conn:
            row = conn.execute("SELECT status, total_cents FROM basket_orders "
                               "WHERE order_id = %s", (order_id,)).fetchone()
        if row is None:
            return problem(404, "No such order")
        return jsonify({"order_id": order_id, "status": row[0], "total_cents": row[1],
                        "items": []})

    def set_order(order_id: str, status: str, **columns: Any) -> None:
        sets = ", ".join(f"{k} = %({k})s" for k in columns)
        with db() as conn:
            conn.execute(f"UPDATE basket_orders SET status = %(status)s, updated_at = now()"
                         f"{', ' + sets if sets else ''} WHERE order_id = %(order_id)s",
                         {"status": status, "order_id": order_id, **columns})

    def release(rid: str) -> None:
        with contextlib.suppress(httpx.HTTPError):  # else it expires on its own
            httpx.post(f"{inventory_url}/v1/reservations/{rid}/release", timeout=2,
                       headers=auth, json={})

    @app.post("/basket/pay")
    def pay() -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        basket_id = request.headers.get("X-Basket", "")
        body = request.get_json(silent=True)
        if not key or not basket_id or not isinstance(body, dict) or \
                not isinstance(body.get("card"), dict):
            return problem(400, "Send the X-Basket and Idempotency-Key headers and {card}")
        with db() as conn:
            done = conn.execute("SELECT order_id, status, total_cents FROM basket_orders "
                                "WHERE idempotency_key = %s", (key,)).fetchone()
        if done is not None and done[1] == "confirmed":
            response = jsonify({"order_id": done[0], "status": done[1], "total_cents": done[2]})
            response.status_code = 201
            return response
        if done is not None:
            return problem(409, "This checkout already ended", charged=False, cart_saved=True)
        lines = basket(basket_id)
        if not lines["items"]:
            return problem(400, "The basket is empty")
        order_id = "bk" + uuid.uuid4().hex[:16]
        rid = f"{order_id}-1"
        with db() as conn:
            conn.execute("INSERT INTO basket_orders (order_id, idempotency_key, status, "
                         "total_cents, reservation_id) VALUES (%s, %s, 'pending', %s, %s)",
                         (order_id, key, lines["total_cents"], rid))
        unavailable = problem(503, "We could not take your order just now", retry_after=5,
                              charged=False, cart_saved=True)
        try:
            held = httpx.post(f"{inventory_url}/v1/reservations", timeout=2, headers=auth,
                              json={
                "reservation_id": rid, "ttl_seconds": 30,
                "items": [{"sku": i["sku"], "qty": i["qty"]} for i in lines["items"]]})
        except httpx.HTTPError:
            set_order(order_id, "failed")
            return unavailable
        if held.status_code == 409:
            set_order(order_id, "failed")
            return problem(409, "Some items sold out", charged=False, cart_saved=True)
        if held.status_code >= 400:
            set_order(order_id, "failed")
            return unavailable
        try:
            # WEAKNESS 1: no timeout on the card gateway.
            charge = httpx.post(f"{payments_url}/v1/charges", timeout=None,
                                headers={"Idempotency-Key": order_id, **auth}, json={
                                    "order_id": order_id, "amount_cents": lines["total_cents"],
                                    "card": body["card"], "capture": True})
        except httpx.HTTPError:
            set_order(order_id, "failed")  # WEAKNESS 4: the reservation is left to expire
            return unavailable
        if charge.status_code == 402:
            set_order(order_id, "declined")
            release(rid)
            return problem(402, "Your card was declined", charged=False, cart_saved=True)
        if charge.status_code >= 300:
            set_order(order_id, "failed")  # WEAKNESS 4 again
            return unavailable
        # If this fails, the audit says the paid order's stock was not committed.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{inventory_url}/v1/reservations/{rid}/commit", timeout=2,
                       headers=auth, json={})
        set_order(order_id, "confirmed", charge_id=charge.json().get("charge_id"))
        with db() as conn:
            conn.execute("DELETE FROM basket_lines WHERE basket_id = %s", (basket_id,))
        response = jsonify({"order_id": order_id, "status": "confirmed",
                            "total_cents": lines["total_cents"]})
        response.status_code = 201
        return response

    return app


def init_database(database_url: str) -> None:
    """The shop's two tables (gunicorn's on_starting)."""
    with psycopg.connect(database_url, connect_timeout=10, autocommit=True) as conn:
        conn.execute(SCHEMA.encode())
