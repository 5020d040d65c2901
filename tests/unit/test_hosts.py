"""Who may call a local listener: a loopback Host of its own port, JSON with the token."""

from __future__ import annotations

import pytest
from flask import Flask

from demo_shop.hosts import LoopbackHosts, host_allowed, token_refusal


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
    ("127.0.0.1:9000", True),  # the proxy's port, given as also reached on
    ("attacker.example", False), ("attacker.example:8000", False),
    ("127.0.0.1.attacker.example:8000", False), ("127.0.0.1:8001", False),
    ("127.0.0.1:", False), ("", False), ("localhost", False),  # port 80: not ours
])
def test_only_a_loopback_host_of_the_listeners_ports_is_allowed(host: str,
                                                                 allowed: bool) -> None:
    assert host_allowed(host, {8000, 9000}) is allowed


def test_the_middleware_answers_421_before_the_app_runs() -> None:
    app = Flask(__name__)
    ran: list[str] = []

    @app.get("/")
    def index() -> str:
        ran.append("index")
        return "ok"

    app.wsgi_app = LoopbackHosts(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/", headers={"Host": "localhost"}).status_code == 200  # port 80
    refused = client.get("/", headers={"Host": "attacker.example"})
    assert refused.status_code == 421 and refused.json["status"] == 421
    assert ran == ["index"]


@pytest.mark.parametrize(("token", "headers", "content_type", "says"), [
    ("t" * 32, {"Authorization": "Bearer " + "t" * 32}, "application/json", None),
    ("t" * 32, {"Authorization": "Bearer " + "t" * 32}, "application/json; charset=utf-8",
     None),
    ("t" * 32, {}, "application/json", "token"),
    ("t" * 32, {"Authorization": "Bearer nope"}, "application/json", "token"),
    ("t" * 32, {"Authorization": "Bearer " + "t" * 32}, "application/x-www-form-urlencoded",
     "JSON"),
    ("t" * 32, {"Authorization": "Bearer " + "t" * 32}, None, "JSON"),
    ("", {}, "application/json", None),  # a service run by hand: JSON only
    ("", {}, "text/plain", "JSON"),
])
def test_a_state_changing_call_needs_json_and_the_token(
        token: str, headers: dict[str, str], content_type: str | None,
        says: str | None) -> None:
    refused = token_refusal(token, headers, content_type)
    assert (refused is None) if says is None else (refused is not None and says in refused)
