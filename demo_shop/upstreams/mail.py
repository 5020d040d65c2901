"""mail: an SMTP sink that keeps every message it is given, and a read-only ledger of them.

A shop's mail server as the stack runs it: it accepts any message over SMTP on its own port
(the shop reaches it through Toxiproxy's mail proxy) and writes it to SQLite; the audit reads
GET /v1/messages directly, to judge "every confirmed order mailed once". The SMTP server is
aiosmtpd's, in a thread of the worker that serves the ledger.
Run: gunicorn --workers 1 "demo_shop.upstreams.mail:create_app()" with MAIL_SMTP_PORT set.
"""

from __future__ import annotations

import os
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask, Response, jsonify, request

from .common import SqliteStore, instrument

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at);
"""


def _text(message: EmailMessage) -> str:
    """The message's plain-text body ('' when it has none)."""
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


class Sink:
    """aiosmtpd's handler: every message accepted is a row, then "250"."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        message = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(),
                                     policy=default_policy)
        assert isinstance(message, EmailMessage)
        with self._store.write() as conn:
            conn.execute(
                "INSERT INTO messages (message_id, mail_from, rcpt_to, subject, body, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (str(message.get("Message-ID", "")), str(envelope.mail_from or ""),
                 ",".join(envelope.rcpt_tos), str(message.get("Subject", "")),
                 _text(message), time.time()))
        return "250 Message accepted for delivery"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The mail sink: SMTP on MAIL_SMTP_PORT (loopback), its ledger over HTTP."""
    app = Flask(__name__)
    app.config.from_mapping(
        DB_PATH=os.environ.get("MAIL_DB", "mail.sqlite3"),
        SMTP_HOST=os.environ.get("MAIL_SMTP_HOST", "127.0.0.1"),
        SMTP_PORT=int(os.environ.get("MAIL_SMTP_PORT", "0")),
    )
    if test_config:
        app.config.update(test_config)
    store = SqliteStore(app.config["DB_PATH"], SCHEMA)
    instrument(app, "mail")
    if app.config["SMTP_PORT"]:
        controller = Controller(Sink(store), hostname=app.config["SMTP_HOST"],
                                port=app.config["SMTP_PORT"], ready_timeout=10)
        controller.start()
        app.extensions["smtp"] = controller

    @app.get("/v1/messages")
    def messages() -> Response:
        """Every message received since ?since= (epoch seconds), oldest first."""
        try:
            since = float(request.args.get("since", "0"))
        except ValueError:
            since = 0.0
        rows = store.conn().execute(
            "SELECT message_id, mail_from, rcpt_to, subject, body, received_at "
            "FROM messages WHERE received_at >= ? ORDER BY seq", (since,)).fetchall()
        return jsonify(messages=[dict(row) for row in rows])

    return app
