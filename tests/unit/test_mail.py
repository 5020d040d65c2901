"""The mail role: a target's mail ledger and its pattern (errors name the field and line),
the audit's "every confirmed order mailed once" over synthetic ledgers (each rule made to
fail), the stack's mail sink and proxy only for a target with the role, and the sink itself
taking a real SMTP message (aiosmtpd on a free loopback port)."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from chaos.audit import CHECKS, EVENTUAL_RULES, Ledgers, audit_ledgers
from chaos.stack import StackConfig
from chaos.stack.config import Ports
from chaos.target import TargetError, parse_target
from demo_shop.upstreams.mail import create_app
from tests.unit.test_foreign_target import OWN

MAIL = OWN + """\
  mail: {proxy: smtp}
ledgers:
  mail: {http: "http://127.0.0.1:9001/v1/messages", key: messages,
         order: 'Confirmation of order (\\\\S+)'}
"""
PATTERN = r"Confirmation of order (\S+)"


def _order(order_id: str, status: str = "confirmed", created: float = 5.0) -> dict[str, Any]:
    return {"order_id": order_id, "idempotency_key": f"k-{order_id}", "status": status,
            "total_cents": 100, "attempt": 1, "reservation_id": order_id, "charge_id": None,
            "stock_committed": True, "updated": created, "created": created}


def _mail(order_id: str, at: float = 6.0, where: str = "subject") -> dict[str, Any]:
    text = f"Confirmation of order {order_id}"
    return {"subject": text if where == "subject" else "Your order",
            "body": text if where == "body" else "", "received_at": at}


def _rules(orders: list[dict[str, Any]], mail: list[dict[str, Any]]) -> list[str]:
    ledgers = Ledgers(orders, [], [], [], 1.0, 10.0, 600.0, {},
                      frozenset({"orders", "mail"}), mail, PATTERN)
    return sorted(v.rule for v in audit_ledgers(ledgers, []).violations)


def test_a_target_declares_the_mail_role_and_its_ledger() -> None:
    target = parse_target(MAIL, variables={})
    assert "mail" in target.roles and target.proxy("mail") == "smtp"
    assert target.ledgers.mail is not None and target.ledgers.mail.key == "messages"


@pytest.mark.parametrize(("pattern", "says"), [
    ("'Confirmation of order \\\\S+'", "give the order id a group"),
    ("'Confirmation of order (\\\\S+'", "not a regular expression"),
])
def test_a_mail_pattern_without_an_order_group_names_its_field_and_line(
        pattern: str, says: str) -> None:
    broken = MAIL.replace("'Confirmation of order (\\\\S+)'", pattern)
    assert broken != MAIL
    with pytest.raises(TargetError) as caught:
        parse_target(broken, variables={})
    message = str(caught.value)
    assert "ledgers.mail.order" in message and "line" in message and says in message


def test_a_mail_ledger_must_be_loopback() -> None:
    with pytest.raises(TargetError, match=r"ledgers\.mail"):
        parse_target(MAIL.replace("http://127.0.0.1:9001", "http://mail.example.com"),
                     variables={})


def test_every_confirmed_order_mailed_once_holds_on_a_shop_that_does() -> None:
    assert _rules([_order("1"), _order("2", "declined")], [_mail("1"), _mail("x", at=0.5)]
                  ) == []
    assert _rules([_order("1")], [_mail("1", where="body")]) == []  # found in the body


def test_each_mail_rule_fails_on_a_shop_with_its_bug() -> None:
    assert _rules([_order("1")], []) == ["confirmation not mailed"]
    assert _rules([_order("1")], [_mail("1"), _mail("1")]) == \
        ["confirmation mailed more than once"]
    assert _rules([], [_mail("9")]) == ["confirmation of a lost order"]
    assert _rules([_order("3", "failed")], [_mail("3")]) == ["confirmation of a failed order"]
    # A confirmation received before the run started is not this run's.
    assert _rules([_order("1")], [_mail("1", at=0.5)]) == ["confirmation not mailed"]
    # A shop may queue its mail while the server is away: the audit waits for it.
    assert "confirmation not mailed" in EVENTUAL_RULES
    assert "confirmation mailed more than once" not in EVENTUAL_RULES


def test_a_target_without_a_mail_ledger_is_not_judged_on_mail() -> None:
    ledgers = Ledgers([_order("1")], [], [], [], 1.0, 10.0, 600.0, {},
                      frozenset({"orders"}))
    result = audit_ledgers(ledgers, [])
    assert result.clean
    assert any("mailed once" in n and "no mail ledger" in n for n in result.not_judged)
    assert len(CHECKS) == 10


def test_the_sink_and_its_proxy_exist_only_for_a_target_with_the_mail_role(
        tmp_path: Path) -> None:
    reference = StackConfig(run_dir=tmp_path, ports=Ports())
    assert not reference.mailed
    assert [s.name for s in reference.proxy_specs()] == \
        ["payments", "inventory", "postgres", "redis"]
    mailed = StackConfig(run_dir=tmp_path, ports=Ports(), proxy_names={
        "payments": "pay", "mail": "smtp"})
    assert mailed.mailed
    specs = {s.name: s for s in mailed.proxy_specs()}
    assert set(specs) == {"pay", "smtp"}
    assert specs["smtp"].upstream.endswith(f":{Ports().smtp}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_sink_keeps_each_message_it_is_sent(tmp_path: Path) -> None:
    port = _free_port()
    app = create_app({"DB_PATH": str(tmp_path / "mail.sqlite3"), "SMTP_PORT": port})
    try:
        message = EmailMessage()
        message["Subject"], message["From"], message["To"] = (
            "Confirmation of order 100042", "orders@shop.example", "sam@example.com")
        message.set_content("We are pleased to confirm your order 100042.")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(message)
        answer = app.test_client().get("/v1/messages").get_json()["messages"]
        assert len(answer) == 1
        assert answer[0]["subject"] == "Confirmation of order 100042"
        assert answer[0]["rcpt_to"] == "sam@example.com"
        assert "order 100042" in answer[0]["body"]
        later = app.test_client().get(f"/v1/messages?since={answer[0]['received_at'] + 1}")
        assert later.get_json()["messages"] == []
    finally:
        app.extensions["smtp"].stop()
