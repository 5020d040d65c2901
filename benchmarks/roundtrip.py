"""Checkout round trip with and without Toxiproxy in the path, measured side by side.

Starts its own stack on free loopback ports, plus a second shop wired straight to the
dependencies; runs N checkouts alternating between the two shops (so drift hits both
alike), times only POST /api/checkout, and prints medians and p95. Stops everything.
Usage: python benchmarks/roundtrip.py [N]   (default 200 per shop)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from chaos.stack import LOOPBACK, Ports, Stack, StackConfig
from chaos.vocabulary import GOOD_CARD
from chaos.waiting import poll


def checkout_seconds(client: httpx.Client) -> float:
    """Fill a fresh cart (untimed), then time one checkout."""
    cart = {"X-Cart-Id": uuid.uuid4().hex}
    client.post("/api/cart/items", json={"sku": "LAMP-001", "qty": 1}, headers=cart)
    started = time.perf_counter()
    response = client.post("/api/checkout", json={"card": GOOD_CARD},
                           headers={**cart, "Idempotency-Key": uuid.uuid4().hex})
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"checkout failed: {response.status_code} {response.text[:200]}")
    return elapsed


def main(n: int) -> dict[str, float]:
    """Run the comparison and return the figures."""
    run_dir = Path(tempfile.mkdtemp(prefix="cc-roundtrip-"))
    stack = Stack(StackConfig(run_dir=run_dir, ports=Ports.free()))
    direct_port = Ports.free().shop
    direct = None
    try:
        stack.up()
        p = stack.config.ports
        env = {**stack.shop_env(),
               "SHOP_BIND": f"{LOOPBACK}:{direct_port}",
               "SHOP_DATABASE_URL": stack.config.direct_database_url,
               "SHOP_REDIS_URL": stack.config.redis_url(p.redis),
               "SHOP_PAYMENTS_URL": stack.config.payments_url,
               "SHOP_INVENTORY_URL": stack.config.inventory_url,
               "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "direct-metrics")}
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        direct = subprocess.Popen([gunicorn, "-c", "python:demo_shop.gunicorn_conf"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if poll(lambda: httpx.get(f"http://{LOOPBACK}:{direct_port}/readyz").is_success, 30,
                ignore=(httpx.HTTPError,)) is None:
            raise SystemExit("the direct shop did not become ready")
        shops = {"toxiproxy": httpx.Client(base_url=stack.config.shop_url, timeout=10),
                 "direct": httpx.Client(base_url=f"http://{LOOPBACK}:{direct_port}", timeout=10)}
        for client in shops.values():  # warm up pools and keep-alive connections
            for _ in range(10):
                checkout_seconds(client)
        times: dict[str, list[float]] = {name: [] for name in shops}
        for _ in range(n):
            for name, client in shops.items():
                times[name].append(checkout_seconds(client))
        figures = {}
        for name, values in times.items():
            values.sort()
            figures[f"{name}_median_ms"] = statistics.median(values) * 1000
            figures[f"{name}_p95_ms"] = values[int(0.95 * len(values)) - 1] * 1000
        figures["added_median_ms"] = figures["toxiproxy_median_ms"] - figures["direct_median_ms"]
        figures["checkouts_each"] = n
        return figures
    finally:
        if direct is not None:
            direct.terminate()
            direct.wait(10)
        stack.down()


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print(json.dumps({k: round(v, 2) for k, v in result.items()}, indent=2))
