"""Shared fixtures: one real stack per test session (free loopback ports, own run folder).

Tests name their own carts, keys and orders with fresh ids, so none depends on another's
leftovers; every toxic a test makes is swept after it, and the stack is stopped at the
end of the session even when tests fail. A stack left by a killed session is stopped
at the next session's start.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.stack import PROJECT_ROOT, Ports, Stack, StackConfig

TEST_RUNS = PROJECT_ROOT / ".run" / "test"
OUTPUT = PROJECT_ROOT / "test-output"


def stop_leftovers() -> None:
    """Stop stacks that an earlier, killed test session left running."""
    for state in TEST_RUNS.glob("*/stack.json"):
        try:
            ports = Ports(**json.loads(state.read_text())["ports"])
        except (OSError, ValueError, TypeError):
            continue
        Stack(StackConfig(run_dir=state.parent, ports=ports)).down()


@pytest.fixture(scope="session", autouse=True)
def no_leftovers() -> None:
    """Before anything starts: stacks a killed session left running are stopped."""
    stop_leftovers()


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests put screenshots and reports for people to look at."""
    OUTPUT.mkdir(exist_ok=True)
    return OUTPUT


def forget(run_dir: Path, session: pytest.Session) -> None:
    """A stopped stack's folder goes, unless a test failed: then its logs stay to read."""
    if not session.testsfailed:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The whole topology, started once for the session and always stopped."""
    config = StackConfig(
        run_dir=TEST_RUNS / uuid.uuid4().hex[:8],
        ports=Ports.free(),
        shop_workers=2,
        shop_threads=8,
        payments_processing_ms=10.0,
    )
    running = Stack(config)
    try:
        running.up()
        yield running
    finally:
        running.down()
        forget(config.run_dir, request.session)


@pytest.fixture
def cli_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """Environment for the CLI as a child process: the session stack's ports and run folder,
    and a history file of the test's own."""
    import os
    from dataclasses import asdict

    env = {**os.environ, "CC_RUN_DIR": str(stack.config.run_dir),
           "CC_HISTORY_FILE": str(tmp_path / "history.jsonl"), "COLUMNS": "200"}
    env.update({f"CC_{k.upper()}_PORT": str(v) for k, v in asdict(stack.config.ports).items()})
    return env


@pytest.fixture
def faults(stack: Stack) -> Iterator[object]:
    """The stack's fault injector; every harness toxic, disabled proxy and service fault is
    undone after."""
    yield stack.faults
    stack.faults.sweep()
    stack.app_faults.sweep()
