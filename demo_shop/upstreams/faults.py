"""Application-level faults a service can be told to show, beside Toxiproxy's network faults:
errors with a given status, added processing time, declines, and "capture, then fail to
answer". The harness sets them through an admin endpoint that exists only when the
service runs with SERVICE_ADMIN=1 and answers only loopback callers.

    POST   /_admin/faults         {"errors": {"rate": 0.5, "status": 503}}  (merged in)
    GET    /_admin/faults         what is active
    DELETE /_admin/faults[/<key>] clear one kind, or all
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

from flask import Flask, Response, jsonify, request

from .common import json_body, problem

ERROR_STATUSES = (429, 500, 502, 503, 504)
# kind -> field -> (low, high); "rate" is a share of requests from 0 to 1.
KINDS: dict[str, dict[str, tuple[float, float]]] = {
    "errors": {"rate": (0, 1), "status": (400, 599)},
    "latency": {"ms": (0, 30_000), "jitter": (0, 30_000)},
    "declines": {"rate": (0, 1)},
    "capture_lost": {"rate": (0, 1)},
}
REQUIRED = {"errors": ("rate",), "latency": ("ms",), "declines": ("rate",),
            "capture_lost": ("rate",)}
LOOPBACK = ("127.0.0.1", "::1")


class AppFaults:
    """The faults active in this process (services run one worker), thread-safe."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds = kinds
        self._active: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def active(self) -> dict[str, dict[str, float]]:
        """A copy of what is set."""
        with self._lock:
            return {k: dict(v) for k, v in self._active.items()}

    def set(self, kind: str, settings: dict[str, float]) -> None:
        """Turn one kind on (replacing its earlier settings)."""
        with self._lock:
            self._active[kind] = dict(settings)

    def clear(self, kind: str | None = None) -> None:
        """Turn one kind, or every kind, off."""
        with self._lock:
            if kind is None:
                self._active.clear()
            else:
                self._active.pop(kind, None)

    def hits(self, kind: str) -> bool:
        """Whether this request draws the fault of that kind."""
        settings = self._active.get(kind)
        return settings is not None and random.random() < settings.get("rate", 0.0)

    def get(self, kind: str) -> dict[str, float] | None:
        """The settings of one kind, if on."""
        return self._active.get(kind)


def _validate(kinds: tuple[str, ...], body: dict[str, Any]) -> dict[str, dict[str, float]] | str:
    """The faults asked for, or what is wrong with the request."""
    if not body:
        return f"send a JSON object with one or more of: {', '.join(kinds)}"
    wanted: dict[str, dict[str, float]] = {}
    for kind, settings in body.items():
        if kind not in kinds:
            return f"unknown fault {kind!r} (this service has: {', '.join(kinds)})"
        if not isinstance(settings, dict):
            return f"{kind} must be an object"
        fields = KINDS[kind]
        for name, value in settings.items():
            if name not in fields:
                return f"{kind} takes no field {name!r} (it takes: {', '.join(fields)})"
            low, high = fields[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not low <= value <= high:
                return f"{kind}.{name} must be a number from {low:g} to {high:g}"
        missing = [f for f in REQUIRED[kind] if f not in settings]
        if missing:
            return f"{kind} needs {', '.join(missing)}"
        if kind == "errors" and int(settings.get("status", 503)) not in ERROR_STATUSES:
            return f"errors.status must be one of {', '.join(map(str, ERROR_STATUSES))}"
        wanted[kind] = {k: float(v) for k, v in settings.items()}
    return wanted


def install(app: Flask, kinds: tuple[str, ...]) -> AppFaults:
    """Apply faults to /v1/ and /healthz requests; add the admin endpoint when enabled."""
    faults = AppFaults(kinds)
    app.extensions["app_faults"] = faults
    enabled = os.environ.get("SERVICE_ADMIN", "0") == "1" or app.config.get("SERVICE_ADMIN")

    @app.before_request
    def _apply() -> Response | None:
        if not (request.path.startswith("/v1/") or request.path == "/healthz"):
            return None
        latency = faults.get("latency")
        if latency:
            jitter = latency.get("jitter", 0.0)
            time.sleep(max(0.0, random.uniform(latency["ms"] - jitter,
                                               latency["ms"] + jitter)) / 1000.0)
        if faults.hits("errors"):
            settings = faults.get("errors") or {}
            status = int(settings.get("status", 503))
            answer = problem(status, "Service unavailable" if status != 429 else
                             "Too many requests")
            if status in (429, 503):
                answer.headers["Retry-After"] = "1"
            return answer
        return None

    if not enabled:
        return faults

    @app.route("/_admin/faults", methods=["GET", "POST", "DELETE"])
    @app.delete("/_admin/faults/<kind>")
    def admin(kind: str | None = None) -> Response:
        if request.remote_addr not in LOOPBACK:
            return problem(403, "The admin endpoint answers loopback callers only")
        if request.method == "POST":
            wanted = _validate(kinds, json_body())
            if isinstance(wanted, str):
                return problem(400, wanted)
            for name, settings in wanted.items():
                faults.set(name, settings)
        elif request.method == "DELETE":
            faults.clear(kind)
        return jsonify(active=faults.active())

    return faults
