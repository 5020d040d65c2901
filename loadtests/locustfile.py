"""Labor Day shoppers: browse, fill a cart, check out, read the order back.

Every answer is classified against the graceful-failure contract; ungraceful ones are
Locust failures named by their reason, so Locust's failure table shows them. Each
checkout's idempotency key, outcome and order id go to an evidence file for the ledger
audit; a per-second timeline of users, requests, classes and latency goes beside it.

Runs on its own:
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 60s --load-profile labor-day
Options: --load-profile steady|ramp|labor-day, --day-minutes (labor-day length; default -t),
--run-dir (evidence and timeline; default reports/load-latest), --checkout-deadline.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
import locust.runners
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

# Workers report every second (not 3), so the live timeline and stop conditions lag little.
locust.runners.WORKER_REPORT_INTERVAL = 1.0

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # plain `locust -f` works too
from loadtests.classify import (  # noqa: E402
    DEGRADED,
    GIVE_UP_SECONDS,
    OK,
    UNGRACEFUL,
    Verdict,
    classify,
)
from loadtests.shapes import PROFILES, Ticker  # noqa: E402
from loadtests.timeline import Timeline  # noqa: E402

GOOD_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED_CARD = {**GOOD_CARD, "number": "4000000000000002"}
FALLBACK_SKUS = ["LAMP-001", "TOWL-001", "BOTL-001", "CHAIR-001", "SUNS-001"]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--load-profile", choices=PROFILES, default="steady",
                        env_var="LOAD_PROFILE",
                        help="Load shape: steady, ramp or labor-day (uses -u, -r, -t)")
    parser.add_argument("--day-minutes", type=float, default=0.0, env_var="LOAD_DAY_MINUTES",
                        help="Minutes the labor-day profile's sale day is compressed into "
                             "(default: the run time)")
    parser.add_argument("--run-dir", default="reports/load-latest", env_var="LOAD_RUN_DIR",
                        help="Folder for the evidence files and the timeline")
    parser.add_argument("--checkout-deadline", type=float, default=6.0,
                        env_var="LOAD_CHECKOUT_DEADLINE",
                        help="Seconds after which any answer counts as a hang (ungraceful)")
    parser.add_argument("--decline-share", type=float, default=0.05, env_var="LOAD_DECLINE_SHARE",
                        help="Share of checkouts made with a card that is declined")


class Evidence:
    """This process's evidence file: one JSON line per checkout attempt."""

    def __init__(self, run_dir: Path) -> None:
        self._path = run_dir / f"evidence-{os.getpid()}.jsonl"
        self._file: Any = None

    def write(self, **fields: Any) -> None:
        """Append one line (opened on first use, line-buffered: one write per line)."""
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", buffering=1)
        self._file.write(json.dumps(fields) + "\n")

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    run_dir = Path(options.run_dir if options else "reports/load-latest")
    environment.cc_run_dir = run_dir  # type: ignore[attr-defined]
    environment.cc_timeline = Timeline()  # type: ignore[attr-defined]
    environment.cc_evidence = Evidence(run_dir)  # type: ignore[attr-defined]
    if not isinstance(environment.runner, WorkerRunner):
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (*run_dir.glob("evidence-*.jsonl"), run_dir / "timeline.jsonl",
                      run_dir / "live.jsonl"):
            stale.unlink(missing_ok=True)
        (run_dir / "stop").unlink(missing_ok=True)


@events.report_to_master.add_listener
def _send_timeline(client_id: str, data: dict[str, Any]) -> None:
    environment = _environment()
    if environment is not None:
        data["cc_timeline"] = environment.cc_timeline.drain()  # type: ignore[attr-defined]


@events.worker_report.add_listener
def _merge_timeline(client_id: str, data: dict[str, Any]) -> None:
    environment = _environment()
    if environment is not None:
        environment.cc_timeline.merge(data.get("cc_timeline", {}))  # type: ignore[attr-defined]


_ENVIRONMENT: list[Environment] = []


@events.test_start.add_listener
def _start_sampling(environment: Environment, **_: Any) -> None:
    _ENVIRONMENT[:] = [environment]
    if isinstance(environment.runner, WorkerRunner):
        return

    distributed = not isinstance(environment.runner, locust.runners.LocalRunner)
    live = environment.cc_run_dir / "live.jsonl"  # type: ignore[attr-defined]

    def sample_users() -> None:
        """Each second: the user count, and the finished seconds to the live timeline."""
        while True:  # ends with the process (the greenlet is killed at quit)
            runner = environment.runner
            timeline = environment.cc_timeline  # type: ignore[attr-defined]
            if runner is not None:
                timeline.set_users(runner.user_count)
            timeline.flush_live(live, lag_seconds=3 if distributed else 1)
            gevent.sleep(0.5)

    environment.cc_sampler = gevent.spawn(sample_users)  # type: ignore[attr-defined]


@events.quitting.add_listener
def _write_outputs(environment: Environment, **_: Any) -> None:
    environment.cc_evidence.close()  # type: ignore[attr-defined]
    if not isinstance(environment.runner, WorkerRunner):
        environment.cc_timeline.write(environment.cc_run_dir / "timeline.jsonl")  # type: ignore[attr-defined]


def _environment() -> Environment | None:
    return _ENVIRONMENT[0] if _ENVIRONMENT else None


class ShopperBase(FastHttpUser):
    """What every shopper can do (browse, fill a cart, check out), each answer classified;
    no tasks of its own, so other locustfiles can pick single journeys (benchmarks/)."""

    abstract = True
    wait_time = between(0.5, 2.0)
    network_timeout = GIVE_UP_SECONDS
    connection_timeout = 5.0
    skus: list[str] = []

    def on_start(self) -> None:
        """Learn the catalog once per process (the API is the source of skus)."""
        if not ShopperBase.skus:
            verdict, response = self.call("GET", "/api/products", "/api/products")
            if verdict.cls == OK:
                ShopperBase.skus = [p["sku"] for p in response.json()]

    def call(self, method: str, path: str, name: str, *, checkout: bool = False,
             headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[Verdict, Any]:
        """One request, classified; ungraceful answers are failures named by their reason."""
        options = self.environment.parsed_options
        deadline = options.checkout_deadline if options else 6.0
        with self.client.request(method, path, name=name, headers=headers,
                                 catch_response=True, **kwargs) as response:
            elapsed = response.request_meta["response_time"] / 1000.0
            if response.status_code == 0:
                error = type(getattr(response, "error", None)).__name__
                verdict = classify(None, {}, "", elapsed, deadline, error)
            else:
                verdict = classify(response.status_code, response.headers or {},
                                   response.text or "", elapsed, deadline)
            if verdict.cls == UNGRACEFUL:
                response.failure(verdict.reason)
            else:
                response.success()
            self.environment.cc_timeline.record(  # type: ignore[attr-defined]
                verdict.cls, elapsed * 1000.0, checkout=checkout)
        return verdict, response

    def _skus(self) -> list[str]:
        return ShopperBase.skus or FALLBACK_SKUS

    def _browse(self) -> None:
        self.call("GET", "/", "/")
        for sku in random.sample(self._skus(), k=random.randint(1, 2)):
            self.call("GET", f"/products/{sku}", "/products/[sku]")

    def _fill_cart(self, cart: dict[str, str]) -> bool:
        added = False
        for sku in random.sample(self._skus(), k=random.randint(1, 2)):
            verdict, _ = self.call("POST", "/api/cart/items", "/api/cart/items", headers=cart,
                                   json={"sku": sku, "qty": random.randint(1, 2)})
            added = added or verdict.cls in (OK, DEGRADED)  # a cookie cart is a cart
        self.call("GET", "/api/cart", "/api/cart", headers=cart)
        return added

    def checkout(self, cart: dict[str, str]) -> None:
        """Check out once; on 503/429 wait as told (at most 2 s) and retry with the same key."""
        options = self.environment.parsed_options
        share = options.decline_share if options else 0.05
        card: dict[str, Any] = DECLINED_CARD if random.random() < share else GOOD_CARD
        key = uuid.uuid4().hex
        for attempt in (1, 2):
            verdict, response = self.call(
                "POST", "/api/checkout", "/api/checkout", checkout=True,
                headers={**cart, "Idempotency-Key": key}, json={"card": card})
            body = _json(response)
            self.environment.cc_evidence.write(  # type: ignore[attr-defined]
                ts=time.time(), idempotency_key=key, cart_id=cart["X-Cart-Id"],
                attempt=attempt, status=response.status_code, cls=verdict.cls,
                reason=verdict.reason, order_id=body.get("order_id"),
                order_status=body.get("status"), total_cents=body.get("total_cents"),
                card=str(card["number"])[-4:], request_id=(response.headers or {}).get(
                    "X-Request-ID", ""))
            if response.status_code in (429, 503) and attempt == 1:
                retry_after = _seconds((response.headers or {}).get("Retry-After", "1"))
                gevent.sleep(min(retry_after, 2.0))
                continue
            break
        if response.status_code == 201 and body.get("order_id"):
            self.call("GET", f"/api/orders/{body['order_id']}", "/api/orders/[id]")


class Shopper(ShopperBase):
    """A Labor Day shopper. Most browse, fewer fill a cart, fewer still check out."""

    @task(12)
    def browse(self) -> None:
        """Look at the sale and a product or two."""
        self._browse()

    @task(5)
    def fill_cart_and_leave(self) -> None:
        """Browse, add to cart, look at the cart, leave."""
        self._browse()
        self._fill_cart({"X-Cart-Id": uuid.uuid4().hex})

    @task(3)
    def buy(self) -> None:
        """Browse, fill a cart, check out, read the order back."""
        self._browse()
        cart = {"X-Cart-Id": uuid.uuid4().hex}
        if not self._fill_cart(cart):
            return
        self.checkout(cart)


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except Exception:  # not JSON: an error page, a reset, nothing at all
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


class ProfileShape(LoadTestShape):
    """steady, ramp or labor-day, reading Locust's own -u (peak users), -r and -t."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._ticker: Ticker | None = None

    def tick(self) -> tuple[int, float] | None:
        """Users wanted now; None ends the run (also when a `stop` file appears in the run
        folder: Locust then lets each user finish its journey, so every answer is recorded)."""
        options = self.runner.environment.parsed_options if self.runner else None
        if options is not None and (Path(options.run_dir) / "stop").exists():
            return None
        if self._ticker is None:
            users = int(getattr(options, "num_users", None) or 10)
            run_time = float(getattr(options, "run_time", None) or 60)
            day_minutes = float(getattr(options, "day_minutes", 0.0) or 0.0)
            profile = getattr(options, "load_profile", "steady")
            duration = day_minutes * 60 if profile == "labor-day" and day_minutes else run_time
            spawn_rate = float(getattr(options, "spawn_rate", None) or 10)
            self._ticker = Ticker(profile, users, duration, spawn_rate)
        return self._ticker.tick(self.get_run_time())
