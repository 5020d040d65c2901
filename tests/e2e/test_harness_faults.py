"""Faults of the harness's own making, under load: a shop worker killed -9 mid-checkout,
PostgreSQL restarted, the payments worker killed -9 while captures are in flight. No proxy
toxic can do these; each must leave the ledgers clean once the shop has settled (the
reconciler finishes what a dead worker left), and checkouts must work again after."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from chaos.audit import run_audit, stack_sources
from chaos.stack import Stack
from chaos.vocabulary import GOOD_CARD
from chaos.waiting import eventually

pytestmark = pytest.mark.e2e
SHOPPERS = 6
MAX_CHECKOUTS = 400  # every load loop is bounded in count...
MAX_SECONDS = 60.0  # ...and in time


@dataclass
class Load:
    """Shoppers checking out in a loop (a retry with the same key after a lost answer),
    recording what each was told, until told to stop or out of budget."""

    url: str
    stop: threading.Event = field(default_factory=threading.Event)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def confirmed(self) -> int:
        with self.lock:
            return sum(1 for e in self.evidence if e["order_status"] == "confirmed")

    def start(self) -> None:
        started = time.monotonic()
        for _ in range(SHOPPERS):
            thread = threading.Thread(target=self._shop, args=(started,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads)

    def _shop(self, started: float) -> None:
        with httpx.Client(base_url=self.url, timeout=8) as client:
            while not self.stop.is_set() and time.monotonic() - started < MAX_SECONDS:
                with self.lock:
                    if len(self.evidence) >= MAX_CHECKOUTS:
                        return
                self._one(client)

    def _one(self, client: httpx.Client) -> None:
        cart, key = uuid.uuid4().hex, uuid.uuid4().hex
        try:
            added = client.post("/api/cart/items", json={"sku": "LAMP-001", "qty": 1},
                                headers={"X-Cart-Id": cart})
        except httpx.HTTPError:
            return
        if added.status_code != 200:
            return
        for attempt in (1, 2):
            status, body = None, {}
            try:
                answer = client.post("/api/checkout", json={"card": GOOD_CARD},
                                     headers={"X-Cart-Id": cart, "Idempotency-Key": key})
                status = answer.status_code
                body = answer.json()
            except (httpx.HTTPError, ValueError):
                pass
            with self.lock:
                self.evidence.append({
                    "ts": time.time(), "idempotency_key": key, "cart_id": cart,
                    "attempt": attempt, "status": status, "order_id": body.get("order_id"),
                    "order_status": body.get("status") if status == 201 else None,
                    "total_cents": body.get("total_cents"),
                    "charged": False if status == 201 and body.get("status") ==
                    "payment_pending" else body.get("charged", None)})
            if status not in (None, 429, 503) or self.stop.is_set():
                return
            time.sleep(0.5)  # a shopper's pause before pressing the button again


def under_load(stack: Stack, fault: Callable[[Load], None]) -> Load:
    """Load, the fault once checkouts flow, more load, then a clean audit within a minute."""
    since = time.time()
    load = Load(stack.config.shop_url)
    load.start()
    try:
        eventually(lambda: load.confirmed() >= 8, 30, "checkouts flowing before the fault")
        fault(load)
        before = load.confirmed()
        eventually(lambda: load.confirmed() >= before + 8, 45,
                   "checkouts confirmed again after the fault")
    finally:
        load.finish()

    def clean() -> bool:
        result = run_audit(load.evidence, stack_sources(stack.config), since)
        clean.last = result  # type: ignore[attr-defined]
        return result.clean

    try:
        eventually(clean, 90, "the ledgers settle clean")
    except TimeoutError:
        pytest.fail("audit not clean: " + "; ".join(
            f"{v.rule}: {v.detail} {v.ids}" for v in clean.last.violations[:10]))  # type: ignore[attr-defined]
    return load


def _respawned(stack: Stack, name: str, gone: int, count: int) -> bool:
    pids = stack.workers(name)
    return len(pids) == count and gone not in pids


def test_a_shop_worker_killed_mid_checkout(stack: Stack) -> None:
    def kill_a_worker(load: Load) -> None:
        workers = stack.workers("shop")
        os.kill(workers[0], signal.SIGKILL)
        eventually(lambda: _respawned(stack, "shop", workers[0], len(workers)), 30,
                   "gunicorn replaced the killed worker")

    load = under_load(stack, kill_a_worker)
    assert load.confirmed() >= 16


def test_postgres_restarted_under_load(stack: Stack) -> None:
    lost: list[int] = []

    def restart(load: Load) -> None:
        before = len(load.evidence)
        stack.restart_postgres()
        lost.append(len(load.evidence) - before)

    load = under_load(stack, restart)
    statuses = {e["status"] for e in load.evidence}
    assert 201 in statuses and lost  # shoppers were served while it restarted


def test_payments_killed_mid_capture(stack: Stack) -> None:
    """kill -9 the payments worker three times while six shoppers check out: each kill
    cuts the authorizations and captures in flight (money may have moved, the answer is
    lost); gunicorn starts a new worker and the shop must find out what happened."""
    def kill_payments(load: Load) -> None:
        for _ in range(3):
            workers = stack.workers("payments")
            os.kill(workers[0], signal.SIGKILL)
            eventually(lambda w=workers: _respawned(stack, "payments", w[0], len(w)), 30,
                       "gunicorn replaced the payments worker")
            mark = load.confirmed()
            eventually(lambda m=mark: load.confirmed() > m, 30, "a checkout got through")

    cut_before = payments_calls_cut(stack)
    under_load(stack, kill_payments)
    # The kills landed mid-call: the shop saw payments calls cut (its retries and the
    # payment_pending fallback kept shoppers from seeing it; the audit says no money was lost).
    assert payments_calls_cut(stack) > cut_before


def payments_calls_cut(stack: Stack) -> float:
    """Payments calls the shop saw fail on a lost connection or answer, from its metrics."""
    text = httpx.get(f"{stack.config.shop_url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("shop_dependency_errors_total{")
               and 'dependency="payments"' in line and 'kind="other"' not in line)
