"""Who may call a local listener. Loopback is not a lock by itself: a page in the shopper's
browser can reach 127.0.0.1 through a name it controls (DNS rebinding), and a cross-site
form can POST to it. So every listener the project runs answers only a Host header that is
a loopback name with one of its own ports (421 otherwise), and state-changing admin and
ledger endpoints take only JSON with the install's token (`require_token`)."""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

_LOOPBACK_NAME = re.compile(r"^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$")
# The ports a listener is also reached on (a Toxiproxy proxy in front of it), comma-separated.
ALSO_PORTS_ENV = "LISTEN_ALSO_PORTS"


def host_allowed(host: str, ports: Collection[int], default_port: int = 80) -> bool:
    """True for `127.0.0.1:<port>` (or localhost, [::1]) with one of these ports."""
    name, port = host, default_port
    if ":" in host and not host.endswith("]"):
        name, _, given = host.rpartition(":")
        if not given.isdigit():
            return False
        port = int(given)
    return bool(_LOOPBACK_NAME.match(name.lower())) and port in ports


def also_ports(value: str | None = None) -> frozenset[int]:
    """The ports of LISTEN_ALSO_PORTS (or value)."""
    raw = os.environ.get(ALSO_PORTS_ENV, "") if value is None else value
    return frozenset(int(p) for p in raw.split(",") if p.strip().isdigit())


StartResponse = Callable[..., Any]


class LoopbackHosts:
    """WSGI middleware: 421 Misdirected Request for a Host that is not this listener's."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
                 also: Collection[int] = ()) -> None:
        self.app = app
        self.also = frozenset(also)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        own = environ.get("SERVER_PORT", "")
        ports = {int(own)} if str(own).isdigit() else set()
        if host_allowed(environ.get("HTTP_HOST", ""), ports | self.also):
            return self.app(environ, start_response)
        body = json.dumps({"type": "about:blank", "status": 421, "title": "Misdirected Request",
                           "detail": "this listener answers only its loopback address and "
                                     "port in the Host header"}).encode()
        start_response("421 Misdirected Request", [
            ("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))])
        return [body]


def token_refusal(token: str, headers: Any, content_type: str | None,
                  body_expected: bool = True) -> str | None:
    """Why a state-changing admin or ledger request is refused, or None: it must be JSON
    (a cross-site form cannot send that) and carry the install's token. An empty token
    (a service run by hand, or under test) asks for the JSON only."""
    if body_expected and (content_type or "").split(";")[0].strip() != "application/json":
        return "send a JSON body (Content-Type: application/json)"
    if not token:
        return None
    given = str(headers.get("Authorization", ""))
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return "send the install's token (Authorization: Bearer <admin_token of " \
               ".run/secrets.json>)"
    return None
