"""The locustfile, headless for a few seconds against the whole stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from chaos.stack import Stack
from loadtests.timeline import read_timeline

pytestmark = pytest.mark.e2e


def run_load(
    stack: Stack, out: Path, *extra: str, duration: str = "8s"
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "chaos.cli", "load", "--host", stack.config.shop_url,
           "--users", "10", "--spawn-rate", "10", "--duration", duration, "--out", str(out),
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CC_RUN_DIR": str(stack.config.run_dir)})


def evidence(out: Path) -> list[dict]:
    return [json.loads(line) for path in out.glob("evidence-*.jsonl")
            for line in path.read_text().splitlines()]


def test_headless_run_writes_timeline_and_evidence_that_match(stack: Stack, tmp_path: Path) -> None:
    result = run_load(stack, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_timeline(tmp_path / "timeline.jsonl")
    assert len(rows) >= 6 and max(r["users"] for r in rows) == 10
    total = sum(r["requests"] for r in rows)
    final = json.loads((tmp_path / "locust.json").read_text())  # written after the last user
    assert total == sum(entry["num_requests"] for entry in final) > 0  # each one classified
    assert (tmp_path / "locust_stats.csv").exists() and (tmp_path / "locust.html").exists()
    assert sum(r["ok"] for r in rows) > 0 and sum(r["ungraceful"] for r in rows) == 0
    confirmed = [e for e in evidence(tmp_path) if e["order_status"] == "confirmed"]
    assert confirmed, "no checkout reached the evidence file"
    for entry in confirmed[:5]:  # the orders shoppers were told about exist
        order = httpx.get(f"{stack.config.shop_url}/api/orders/{entry['order_id']}").json()
        assert order["status"] == "confirmed" and order["total_cents"] == entry["total_cents"]
    assert len({e["idempotency_key"] for e in confirmed}) == len(confirmed)


def test_with_inventory_down_checkouts_turn_graceful_and_browsing_stays_ok(
    stack: Stack, faults, tmp_path: Path
) -> None:
    faults.disable("inventory")  # no reservation, no order: an honest 503 and a retry
    result = run_load(stack, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr  # graceful is not a failure
    rows = read_timeline(tmp_path / "timeline.jsonl")
    assert sum(r["ungraceful"] for r in rows) == 0
    assert sum(r["ok"] for r in rows) > 0  # browsing and carts still work
    attempts = evidence(tmp_path)
    assert attempts and {e["cls"] for e in attempts} <= {"graceful_error", "declined"}
    assert {e["status"] for e in attempts} <= {503, 402}
    retried = [e for e in attempts if e["attempt"] == 2]
    firsts = {e["idempotency_key"] for e in attempts if e["attempt"] == 1}
    assert retried and all(e["idempotency_key"] in firsts for e in retried)  # same key reused


def test_a_host_that_does_not_answer_stops_before_any_load(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "chaos.cli", "load", "--host", "http://127.0.0.1:9",
           "--out", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "does not answer" in result.stderr
    assert not (tmp_path / "timeline.jsonl").exists()
