"""SHOP_METRICS=off (for `make bench`'s overhead figure) makes every shop metric a no-op."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import demo_shop.metrics as m
m.HTTP_REQUESTS.labels("/", "GET", "200").inc()
m.CHECKOUT_LATENCY.labels("success").observe(0.2)
m.BREAKER_STATE.labels("payments").set(2)
m.REVENUE_CONFIRMED.inc(500)
text = m.render_latest()[0].decode()
print(sum(1 for line in text.splitlines() if line.startswith("shop_")))
"""


def shop_samples(setting: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env={**env, "SHOP_METRICS": setting},
                            capture_output=True, text=True, timeout=60, check=True)
    return int(result.stdout.strip())


def test_metrics_record_by_default_and_nothing_when_off() -> None:
    assert shop_samples("on") > 4
    assert shop_samples("off") == 0
