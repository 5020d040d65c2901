"""`make fuzz` in little: Schemathesis against the live stack's shop, through a Toxiproxy
proxy made for the run, driven by the shop's own OpenAPI document (the long mode is
`make fuzz LONG=1`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.fuzz import PROXY, run_fuzz
from chaos.stack import Stack

pytestmark = pytest.mark.e2e


def test_the_live_shop_survives_a_short_fuzz_run(stack: Stack, tmp_path: Path) -> None:
    result = run_fuzz(stack.faults, stack.config.ports.shop, tmp_path, examples=8,
                      seconds=240, seed=14)
    log = result.log.read_text()
    assert result.passed, log[-4000:]
    assert result.operations == "6/6" and result.cases >= 30, log[-2000:]
    assert "ST101" not in log  # no server error
    assert result.junit.exists()
    assert PROXY not in stack.faults.proxy_names()  # the run's proxy is gone again
