"""The services' admin endpoint for application-level faults, and the experiment format for
them (the real services with the shop are in tests/integration/test_app_faults.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.experiment import ExperimentError, parse_experiment
from chaos.waiting import eventually
from demo_shop.upstreams.inventory import create_app as inventory_app
from demo_shop.upstreams.payments import create_app as payments_app


def test_the_admin_endpoint_is_absent_unless_enabled(tmp_path: Path) -> None:
    app = inventory_app({"DB_PATH": str(tmp_path / "i.sqlite3")})
    assert app.test_client().post("/_admin/faults", json={"errors": {"rate": 1}}).status_code \
        == 404


def test_the_admin_endpoint_answers_loopback_only(tmp_path: Path) -> None:
    app = payments_app({"DB_PATH": str(tmp_path / "p.sqlite3"), "SERVICE_ADMIN": True,
                        "FINGERPRINT_KEY": "k" * 32})
    client = app.test_client()
    far = client.post("/_admin/faults", json={"errors": {"rate": 1}},
                      environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403
    bad = client.post("/_admin/faults", json={"errors": {"rate": 2}})
    assert bad.status_code == 400 and "errors.rate" in bad.json["title"]


def test_faults_apply_to_api_calls_and_health_but_not_metrics(tmp_path: Path) -> None:
    client = inventory_app({"DB_PATH": str(tmp_path / "i.sqlite3"),
                            "SERVICE_ADMIN": True}).test_client()
    assert client.post("/_admin/faults", json={"errors": {"rate": 1, "status": 429}}
                       ).status_code == 200
    assert client.get("/v1/stock").status_code == 429
    assert client.get("/healthz").status_code == 429
    assert client.get("/metrics").status_code == 200
    assert client.delete("/_admin/faults/errors").json == {"active": {}}
    assert client.get("/v1/stock").status_code == 200


EXPERIMENT = """
title: t
description: d
steady_state:
  hypotheses: [{name: ok, probe: ungraceful, tolerance: {max: 0}}]
faults:
  - {name: f, target: TARGET, toxic: TOXIC, attributes: ATTRS, duration: 5s}
"""


def experiment(target: str, toxic: str, attrs: str) -> str:
    return EXPERIMENT.replace("TARGET", target).replace("TOXIC", toxic).replace("ATTRS", attrs)


def test_app_faults_are_valid_experiment_faults() -> None:
    parsed = parse_experiment(experiment("payments", "app_errors", "{percent: 30, status: 503}"))
    assert parsed.faults[0].is_app and parsed.faults[0].attributes["percent"] == 30


@pytest.mark.parametrize(("target", "toxic", "attrs", "says"), [
    ("redis", "app_errors", "{percent: 10}", "applies to payments and inventory, not redis"),
    ("inventory", "app_capture_lost", "{percent: 10}", "applies to payments, not inventory"),
    ("payments", "app_errors", "{percent: 150}", "percent must be from 0 to 100"),
    ("payments", "app_errors", "{percent: 10, status: 418}", "status must be one of"),
    ("payments", "app_latency", "{percent: 10}", "takes no attribute percent"),
])
def test_bad_app_faults_are_refused_with_what_to_fix(target: str, toxic: str, attrs: str,
                                                      says: str) -> None:
    with pytest.raises(ExperimentError, match=says):
        parse_experiment(experiment(target, toxic, attrs))


def test_a_release_after_expiry_is_recorded_as_given_back(tmp_path: Path) -> None:
    """The shop gives stock back late (inventory was unreachable): the record says released,
    not expired, and the units are free either way."""
    client = inventory_app({"DB_PATH": str(tmp_path / "i.sqlite3"),
                            "PROCESSING_MS": 0}).test_client()
    made = client.post("/v1/reservations", json={"reservation_id": "r1", "ttl_seconds": 0.05,
                                                  "items": [{"sku": "LAMP-001", "qty": 1}]})
    assert made.status_code == 201
    eventually(lambda: client.get("/v1/reservations/r1").json["state"] == "expired", 5,
               "the hold expires", every=0.02)
    released = client.post("/v1/reservations/r1/release", json={})
    assert released.status_code == 200 and released.json["state"] == "released"
    assert client.post("/v1/reservations/r1/commit", json={}).status_code == 409
