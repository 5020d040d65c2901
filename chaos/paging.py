"""Paging, judged through a real Alertmanager: its configuration rendered for the stack, the
webhook receiver the harness serves on loopback (every notification kept with the moment it
arrived), and what the paging probes measure from them.

Prometheus evaluates the project's alert rules (grafana/prometheus/rules/alerts.yml) and
sends what fires to Alertmanager, which notifies the receiver: the path a page takes to a
person, end to end. An alert names a dependency by its `dependency` label, in the shop's
words (payments, inventory, database, cache, mail).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from .serving import OnePerProcess
from .waiting import poll

# The receiver takes at most this much per notification (Alertmanager sends a few KB).
MAX_BODY = 1_000_000


def render_alertmanager(receiver_port: int) -> str:
    """Alertmanager's configuration: every alert to the harness's receiver, one group per
    alert and dependency, sent at once and again when it resolves."""
    config = {
        "route": {
            "receiver": "harness",
            "group_by": ["alertname", "dependency"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "harness",
            "webhook_configs": [{
                "url": f"http://127.0.0.1:{receiver_port}/alerts",
                "send_resolved": True,
                "max_alerts": 0,
            }],
        }],
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True, slots=True)
class Page:
    """One alert as one notification carried it: firing or resolved, when it arrived."""

    received: float
    status: str  # firing | resolved
    alertname: str
    dependency: str | None
    labels: dict[str, str]
    summary: str

    def as_json(self) -> dict[str, Any]:
        return {"received": round(self.received, 3), "status": self.status,
                "alertname": self.alertname, "dependency": self.dependency,
                "summary": self.summary}


@dataclass(slots=True)
class PageLog:
    """Every alert the receiver was sent, in arrival order (shared with its server thread)."""

    pages: list[Page] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, notification: dict[str, Any], received: float) -> int:
        """Keep each alert of one Alertmanager webhook notification; how many it held."""
        alerts = notification.get("alerts")
        if not isinstance(alerts, list):
            raise ValueError("a notification holds an `alerts` list")
        kept = []
        for alert in alerts:
            if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
                raise ValueError("each alert holds a `labels` mapping")
            labels = {str(k): str(v) for k, v in alert["labels"].items()}
            annotations = alert.get("annotations") or {}
            kept.append(Page(received, str(alert.get("status", notification.get("status"))),
                             labels.get("alertname", ""), labels.get("dependency"), labels,
                             str(annotations.get("summary", ""))[:300]))
        with self._lock:
            self.pages.extend(kept)
        return len(kept)

    def since(self, at: float) -> list[Page]:
        """The alerts that arrived at or after `at`."""
        with self._lock:
            return [p for p in self.pages if p.received >= at]

    def first(self, dependency: str, status: str, since: float) -> float | None:
        """Seconds after `since` until the first alert naming the dependency arrived with
        this status (None: none did)."""
        for page in self.since(since):
            if page.dependency == dependency and page.status == status:
                return round(page.received - since, 2)
        return None

    def unrelated(self, dependencies: set[str], since: float) -> list[Page]:
        """Alerts that fired since `since` naming a dependency the experiment did not
        break (an alert without a dependency label is about shoppers: never unrelated)."""
        seen: dict[tuple[str, str], Page] = {}
        for page in self.since(since):
            if page.status == "firing" and page.dependency is not None \
                    and page.dependency not in dependencies:
                seen.setdefault((page.alertname, page.dependency), page)
        return list(seen.values())

    def wait_for(self, dependency: str, status: str, since: float, until: float) -> None:
        """Until an alert naming the dependency arrived with this status, or `until`."""
        poll(lambda: self.first(dependency, status, since) is not None,
             max(0.0, until - time.time()), every=0.2)


class _Handler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        host = self.headers.get("Host", "")
        if host != f"127.0.0.1:{self.server.server_port}":
            self._answer(421, {"error": "this receiver answers 127.0.0.1 only"})
            return
        if self.path != "/alerts":
            self._answer(404, {"error": "POST Alertmanager's notifications to /alerts"})
            return
        raw = self.headers.get("Content-Length") or "0"
        length = int(raw) if raw.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            self._answer(413 if length else 400, {"error": "a notification of 1 B to 1 MB"})
            return
        try:
            kept = self.server.log.add(json.loads(self.rfile.read(length)), time.time())
        except (ValueError, AttributeError) as exc:
            self._answer(400, {"error": f"not an Alertmanager notification: {exc}"})
            return
        self._answer(200, {"kept": kept})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Alertmanager's retries are not the terminal's business


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    log: PageLog


class Receiver(OnePerProcess):
    """The webhook receiver on loopback: started once per process, on first use (a gate
    runs its experiments one after another in one process, as the exporter does)."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.log = PageLog()
        self.server = _ReceiverServer(("127.0.0.1", port), _Handler)
        self.server.log = self.log
        self.thread = threading.Thread(target=self.server.serve_forever, name="pager",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving (tests; a CLI process simply exits)."""
        self.server.shutdown()
        self.server.server_close()
