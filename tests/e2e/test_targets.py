"""The catalog against a second, different shop (Basket & Co, targets/basket.yaml) on a
stack of its own: the gate names its known weaknesses, skips what it lacks, and a target
that cannot be reached, or lacks a proxy, is refused at once with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.faults import HARNESS_PREFIX
from chaos.stack import Ports, Stack
from chaos.target import TARGETS_DIR
from tests.conftest import running_stack, small_stack_config, stack_env

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "chaos.cli"]
BASKET = TARGETS_DIR / "basket.yaml"
# One experiment per weakness Basket & Co was written with, and one it cannot take.
WEAKNESSES = ("payments-hard-down", "inventory-hard-down", "postgres-hard-down",
              "redis-hard-down")


@pytest.fixture(scope="module")
def basket(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Basket & Co on its own stack (free ports), three proxies named its way."""
    config = small_stack_config(shop_app="basket", proxy_names={
        "payments": "card_gateway", "inventory": "stock_api", "postgres": "orders_db"})
    with running_stack(config, request.session) as running:
        yield running


def failed_cases(junit: Path) -> dict[str, set[str]]:
    """Per experiment (suite), the hypotheses that failed."""
    return {suite.get("name", ""): {case.get("name", "") for case in suite.iter("testcase")
                                    if case.find("failure") is not None}
            for suite in ET.parse(junit).getroot().iter("testsuite")}


def test_the_gate_names_the_second_shops_weaknesses(basket: Stack, tmp_path: Path) -> None:
    names = [arg for name in WEAKNESSES for arg in ("--name", name)]
    result = subprocess.run([*CLI, "gate", "--target", str(BASKET), "--lanes", "1",
                             "--time-scale", "0.4", "--out", str(tmp_path), *names],
                            env=stack_env(basket, tmp_path), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = failed_cases(tmp_path / "junit.xml")
    for name in WEAKNESSES[:3]:  # found under the fault, not by a shop that never held
        journal = json.loads((tmp_path / name / "journal.json").read_text())
        assert journal["phase_verdicts"]["baseline"], (name, journal["reason"])
    # 3. its status page never looks at inventory: the outage is never told
    assert "status page names inventory" in failed["inventory-hard-down"]
    # 4. a failed payment leaves its stock reservation to expire
    assert "ledger audit: nothing lost" in failed["payments-hard-down"]
    payments = json.loads((tmp_path / "payments-hard-down" / "journal.json").read_text())
    rules = {v["rule"] for v in payments["audit"]["violations"]}
    assert rules & {"reservation not released", "reservation left to expire"}, rules
    # 2. a database error is Flask's bare 500: no request id, not the shop's answer
    assert "no ungraceful answers" in failed["postgres-hard-down"]
    failures = (tmp_path / "postgres-hard-down" / "load" / "locust_failures.csv").read_text()
    assert "no_request_id" in failures
    # What it does right holds: payments refused, the status page says so, and clears.
    assert "status page names payments" not in failed["payments-hard-down"]
    assert "no ungraceful answers" not in failed["payments-hard-down"]
    # It has no cache: skipped with the reason, neither passed nor failed.
    redis = json.loads((tmp_path / "redis-hard-down" / "journal.json").read_text())
    assert redis["verdict"] == "skipped" and "no redis dependency" in redis["reason"]
    assert "3 failed" in result.stderr + result.stdout
    assert "1 skipped (not in the target)" in result.stderr + result.stdout
    # Not judged, never passed: it gives no stock count and no metrics.
    assert any("initial_stock" in n for n in payments["not_judged"])
    assert any("metrics" in n for n in payments["not_judged"])
    toxics = [t.name for t in basket.faults.toxics() if t.name.startswith(HARNESS_PREFIX)]
    assert toxics == [] and all(basket.faults.proxy_names().values())


def test_a_target_that_does_not_answer_is_refused_at_once(tmp_path: Path) -> None:
    closed = Ports.free().shop  # nothing listens there
    text = BASKET.read_text().replace("stack: basket\n", "").replace(
        "${SHOP_PORT}", str(closed)).replace("${TOXIPROXY_PORT}", str(closed))
    target = tmp_path / "gone.yaml"
    target.write_text(text.replace("${AUDIT_DB_PASSWORD}", "x").replace(
        "${POSTGRES_PORT}", "1").replace("${PAYMENTS_PORT}", "1").replace(
        "${INVENTORY_PORT}", "1").replace("${SERVICE_TOKEN}", "t"))
    started = time.monotonic()
    result = subprocess.run([*CLI, "gate", "--target", str(target), "--name",
                             "payments-hard-down", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Toxiproxy does not answer" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 20
    assert not (tmp_path / "out" / "payments-hard-down").exists()  # nothing ran


def test_a_missing_proxy_is_refused_naming_what_toxiproxy_has(basket: Stack,
                                                              tmp_path: Path) -> None:
    text = BASKET.read_text().replace("proxy: stock_api", "proxy: warehouse")
    target = tmp_path / "renamed.yaml"
    target.write_text(text)
    result = subprocess.run([*CLI, "gate", "--target", str(target), "--name",
                             "payments-hard-down", "--out", str(tmp_path / "out")],
                            env=stack_env(basket, tmp_path), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "has no proxy warehouse (for inventory)" in message
    assert "card_gateway, orders_db, stock_api" in message
