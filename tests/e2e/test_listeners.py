"""Loopback is not the only lock: every HTTP listener the project runs refuses a Host that is
not its own loopback address and port (a page elsewhere reaching it through DNS rebinding),
the services' state-changing calls take only JSON with the install's token, and no body
larger than the services read gets in. Against the real stack's processes."""

from __future__ import annotations

import socket

import httpx
import pytest

from chaos.exporter import Exporter
from chaos.paging import Receiver
from chaos.stack import Stack
from tests.conftest import service_post

pytestmark = pytest.mark.e2e
ATTACKER = {"Host": "attacker.example"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listeners(stack: Stack) -> dict[str, tuple[str, str]]:
    """name -> (base URL, a path it answers) for every HTTP listener of the stack's own."""
    p = stack.config.ports
    found = {"shop": (stack.config.shop_url, "/healthz"),
             "payments": (stack.config.payments_url, "/healthz"),
             "inventory": (stack.config.inventory_url, "/healthz"),
             # A service reached through its proxy answers the proxy's Host, no other.
             "payments through its proxy": (f"http://127.0.0.1:{p.proxy_payments}", "/healthz"),
             "inventory through its proxy": (f"http://127.0.0.1:{p.proxy_inventory}",
                                             "/healthz")}
    if stack.config.mailed:
        found["mail ledger"] = (stack.config.mail_url, "/healthz")
    return found


def test_every_listener_of_the_stack_refuses_a_rebinding_host(stack: Stack) -> None:
    for name, (base, path) in listeners(stack).items():
        assert httpx.get(base + path, timeout=5).status_code < 400, name
        refused = httpx.get(base + path, headers=ATTACKER, timeout=5)
        assert refused.status_code == 421, f"{name} answered {refused.status_code}"
        elsewhere = httpx.get(base + path, headers={"Host": "127.0.0.1:1"}, timeout=5)
        assert elsewhere.status_code == 421, f"{name} took another port's Host"


def test_the_harness_own_listeners_refuse_a_rebinding_host() -> None:
    exporter, receiver = Exporter(free_port()), Receiver(free_port())
    try:
        metrics = f"http://127.0.0.1:{exporter.port}/metrics"
        assert httpx.get(metrics, timeout=5).status_code == 200
        assert httpx.get(metrics, headers=ATTACKER, timeout=5).status_code == 421
        alerts = f"http://127.0.0.1:{receiver.port}/alerts"
        assert httpx.post(alerts, json={"alerts": []}, headers=ATTACKER,
                          timeout=5).status_code == 421
    finally:
        exporter.close()
        receiver.close()


def test_state_changing_calls_take_only_json_with_the_install_token(stack: Stack) -> None:
    base = stack.config.payments_url
    held = service_post(stack, f"{base}/v1/charges", headers={"Idempotency-Key": "k-" +
                                                                  str(free_port())},
                        json={"order_id": "o-token", "amount_cents": 500, "capture": False,
                              "card": {"number": "4242424242424242", "exp_month": 12,
                                       "exp_year": 2030, "cvc": "123"}}, timeout=10)
    assert held.status_code == 201, held.text
    capture = f"{base}/v1/charges/{held.json()['charge_id']}/capture"
    # A cross-site form: no token, a form's content type.
    form = httpx.post(capture, data={"x": "1"}, timeout=5)
    assert form.status_code == 415
    no_token = httpx.post(capture, json={}, timeout=5)
    assert no_token.status_code == 401
    wrong = httpx.post(capture, json={}, headers={"Authorization": "Bearer guessed"}, timeout=5)
    assert wrong.status_code == 401
    admin = httpx.post(f"{base}/_admin/faults", json={"errors": {"rate": 1}}, timeout=5)
    assert admin.status_code == 401
    assert service_post(stack, capture, timeout=5).json()["status"] == "captured"


def test_a_body_larger_than_the_services_read_is_refused(stack: Stack) -> None:
    big = {"order_id": "o", "pad": "x" * (200 * 1024)}
    for base in (stack.config.payments_url, stack.config.inventory_url):
        answer = service_post(stack, f"{base}/v1/charges" if base == stack.config.payments_url
                              else f"{base}/v1/reservations", json=big,
                              headers={"Idempotency-Key": "big"}, timeout=10)
        assert answer.status_code == 413, (base, answer.status_code)
