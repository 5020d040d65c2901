"""The webhook receiver and what the paging probes measure from its pages: a page that
names the dependency counts, one that names another is unrelated, a notification that is
not Alertmanager's is refused, and so is a caller that does not say 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
import yaml

from chaos.experiment import Hypothesis
from chaos.paging import PageLog, Receiver, render_alertmanager
from chaos.probes import Evidence, StatusPoller, Window, measure


def notification(status: str, *alerts: tuple[str, str | None]) -> dict[str, object]:
    return {"status": status, "alerts": [
        {"status": status, "labels": {"alertname": name, **({"dependency": dep} if dep else {})},
         "annotations": {"summary": f"{name} {dep}"}} for name, dep in alerts]}


def probe(name: str, dependency: str | None = None) -> Hypothesis:
    return Hypothesis.model_validate({"name": name, "probe": name, "dependency": dependency,
                                      "tolerance": {"max": 10}})


def evidence(log: PageLog | None) -> Evidence:
    return Evidence(StatusPoller("http://127.0.0.1:1"), fault_start=100.0, last_rollback=130.0,
                    pages=log, broken=frozenset({"payments"}))


def test_time_to_page_and_resolve_count_only_the_dependency_named() -> None:
    log = PageLog()
    log.add(notification("firing", ("DependencyTrouble", "inventory")), 104.0)
    log.add(notification("firing", ("DependencyTrouble", "payments")), 109.5)
    log.add(notification("resolved", ("DependencyTrouble", "payments")), 128.0)  # too early
    log.add(notification("resolved", ("DependencyTrouble", "payments")), 141.0)
    window = Window("fault", 100, 130)
    assert measure(probe("time_to_page", "payments"), window, [], evidence(log)) == 9.5
    assert measure(probe("time_to_resolve", "payments"), window, [], evidence(log)) == 11.0
    # inventory was not broken: its page is unrelated; a symptom alert (no label) is not.
    log.add(notification("firing", ("CheckoutSuccessBelowSLO", None)), 112.0)
    assert measure(probe("unrelated_pages"), window, [], evidence(log)) == 1.0
    assert [p.dependency for p in log.unrelated({"payments"}, 100.0)] == ["inventory"]


def test_a_page_that_never_came_is_measured_as_nothing_and_fails_its_tolerance() -> None:
    log = PageLog()
    log.add(notification("firing", ("DependencyTrouble", "cache")), 105.0)  # wrong label
    hypothesis = probe("time_to_page", "payments")
    value = measure(hypothesis, Window("fault", 100, 130), [], evidence(log))
    assert value is None and not hypothesis.tolerance.holds(value)
    # Without an Alertmanager there is nothing to measure either (the runner says
    # "not judged" before it gets here).
    assert measure(hypothesis, Window("fault", 100, 130), [], evidence(None)) is None


def test_the_alertmanager_config_sends_every_alert_and_its_resolve_to_the_receiver() -> None:
    config = yaml.safe_load(render_alertmanager(9109))
    assert config["route"]["group_by"] == ["alertname", "dependency"]
    (hook,) = config["receivers"][0]["webhook_configs"]
    assert hook == {"url": "http://127.0.0.1:9109/alerts", "send_resolved": True,
                    "max_alerts": 0}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = Receiver(port)
    try:
        yield served
    finally:
        served.close()


def test_the_receiver_keeps_notifications_and_refuses_what_is_not_one(
        receiver: Receiver) -> None:
    url = f"http://127.0.0.1:{receiver.port}/alerts"
    answer = httpx.post(url, json=notification("firing", ("DependencyTrouble", "payments")))
    assert answer.status_code == 200 and answer.json() == {"kept": 1}
    assert httpx.post(url, json={"alerts": "no"}).status_code == 400
    assert httpx.post(url, content=b"{").status_code == 400
    assert httpx.post(url.replace("/alerts", "/other"), json={}).status_code == 404
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as raw:
        raw.sendall(f"POST /alerts HTTP/1.1\r\nHost: 127.0.0.1:{receiver.port}\r\n"
                    "Content-Length: x\r\n\r\n{}".encode())
        assert raw.recv(200).startswith(b"HTTP/1.0 400")  # a length that is no number
    # DNS rebinding: a page from a browser that was sent elsewhere says another Host.
    rebound = httpx.post(url, json=notification("firing", ("X", "cache")),
                         headers={"Host": "attacker.example"})
    assert rebound.status_code == 421
    assert [p.dependency for p in receiver.log.pages] == ["payments"]
