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


def instrument(app: Flask, service: str) -> None:
    """Request counts and latency per endpoint, /metrics and /healthz, problem+json errors."""
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
