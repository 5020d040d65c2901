"""What the payments and inventory services share: SQLite access, problem answers, metrics."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from werkzeug.exceptions import HTTPException

from ..hosts import LoopbackHosts, also_ports, token_refusal


class SqliteStore:
    """One SQLite file, a connection per thread, writes in BEGIN IMMEDIATE transactions."""

    def __init__(self, path: str, schema: str) -> None:
        self._path = path
        self._local = threading.local()
        if path != ":memory:":
            # The ledger is for this service's user alone; SQLite gives its WAL and shared
            # memory files the database file's mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
        with self._connect() as conn:
            conn.executescript(schema)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=10.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database lock from its start."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def problem(status: int, title: str, **extra: Any) -> Response:
    """An RFC 9457 problem+json answer."""
    body = {"type": "about:blank", "title": title, "status": status, **extra}
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def json_body() -> dict[str, Any]:
    """The request's JSON object, or {} (callers validate the fields)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a body we take
        return {}
    return body if isinstance(body, dict) else {}


# The largest request body a service reads (its requests are a few hundred bytes).
MAX_BODY_BYTES = 64 * 1024


def instrument(app: Flask, service: str) -> None:
    """Request counts and latency per endpoint, /metrics and /healthz, problem+json errors;
    and who may call: only a loopback Host of its own port (or its proxy's, from
    LISTEN_ALSO_PORTS), bodies up to MAX_BODY_BYTES, and every state-changing request JSON
    with the install's SERVICE_TOKEN (a cross-site form can send neither)."""
    app.config.setdefault("SERVICE_TOKEN", os.environ.get("SERVICE_TOKEN", ""))
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.wsgi_app = LoopbackHosts(app.wsgi_app, also_ports())  # type: ignore[method-assign]

    @app.before_request
    def _who_is_calling() -> Response | None:
        if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        if (request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]:
            return problem(413, "Request body too large",
                           detail=f"at most {app.config['MAX_CONTENT_LENGTH']} bytes")
        refused = token_refusal(app.config["SERVICE_TOKEN"], request.headers,
                                request.content_type, body_expected=request.method != "DELETE")
        if refused is None:
            return None
        return problem(415 if "JSON" in refused else 401, "Refused", detail=refused)

    registry = CollectorRegistry()
    requests_total = Counter(
        f"{service}_requests_total", f"Requests {service} answered", ["endpoint", "status"],
        registry=registry,
    )
    latency = Histogram(
        f"{service}_request_duration_seconds", f"Time {service} took to answer", ["endpoint"],
        registry=registry,
    )
    app.extensions["metrics_registry"] = registry

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        requests_total.labels(endpoint, str(response.status_code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - g.get("started", 0.0))
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return problem(exc.code or 500, exc.name, detail=exc.description)
