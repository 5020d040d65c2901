"""The command line on the real stack: the scripted outage, status, and bad situations."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.errors import StackError
from chaos.stack import Ports, Stack, StackConfig

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "chaos.cli"]


def test_scripted_outage_passes_and_leaves_no_fault(
    stack: Stack, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    out = tmp_path / "report"
    result = subprocess.run([*CLI, "outage", "--dependency", "inventory", "--checkouts", "6",
                             "--out", str(out)],
                            env=cli_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (out / "outage.md").read_text()
    assert "Verdict: PASS" in report and "| fault | 6 | 0 | 0 | 6 | 0 | 0 |" in report
    assert 'id="sorry"' in (out / "sorry.html").read_text()
    assert stack.faults.proxy_names()["inventory"] is True
    assert not [t for t in stack.faults.toxics() if t.name.startswith("cc_")]


def test_status_reports_each_component(cli_env: dict[str, str]) -> None:
    result = subprocess.run([*CLI, "status"], env=cli_env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("postgres", "redis", "toxiproxy", "payments", "inventory", "shop"):
        assert name in result.stdout


def test_port_in_use_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    ports = Ports.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.shop))
        squatter.listen()
        stack = Stack(StackConfig(run_dir=tmp_path, ports=ports))
        with pytest.raises(StackError, match=f"shop port {ports.shop}"):
            stack.up()
    assert not (tmp_path / "stack.json").exists()


def test_cli_error_is_a_message_and_exit_2_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "CC_RUN_DIR": str(tmp_path), "CC_TOXIPROXY_PORT": str(Ports.free().shop)}
    result = subprocess.run([*CLI, "sweep"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Toxiproxy is not reachable" in result.stderr and "Traceback" not in result.stderr


def test_bad_port_setting_names_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "CC_RUN_DIR": str(tmp_path), "CC_SHOP_PORT": "eighty"}
    result = subprocess.run([*CLI, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "CC_SHOP_PORT" in result.stderr


def test_unknown_proxy_is_a_fault_error_naming_the_known_ones(stack: Stack) -> None:
    from chaos.errors import FaultError

    with pytest.raises(FaultError, match="payments"):
        stack.faults.disable("paymnets")
    with pytest.raises(FaultError, match="unknown toxic"):
        stack.faults.inject("payments", "latencyy", name="x")
