"""Shared fixtures: one real stack per test session (free loopback ports, own run folder).

Tests name their own carts, keys and orders with fresh ids, so none depends on another's
leftovers; every toxic a test makes is swept after it, and the stack is stopped at the
end of the session even when tests fail. A stack left by a killed session is stopped
at the next session's start.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
import pytest

from chaos.stack import PROJECT_ROOT, Ports, Stack, StackConfig

TEST_RUNS = PROJECT_ROOT / ".run" / "test"
OUTPUT = PROJECT_ROOT / "test-output"


def stop_leftovers() -> None:
    """Stop stacks that an earlier, killed test session left running (not those of a test
    session still running beside this one: their owner file names a live pid)."""
    for state in TEST_RUNS.glob("*/stack.json"):
        try:
            owner = int((state.parent / "owner").read_text())
        except (OSError, ValueError):
            owner = 0
        if owner and owner != os.getpid() and psutil.pid_exists(owner):
            continue
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


def small_stack_config(**settings: Any) -> StackConfig:
    """A test stack's configuration: its own run folder, free loopback ports, a small shop."""
    return StackConfig(run_dir=TEST_RUNS / uuid.uuid4().hex[:8], ports=Ports.free(),
                       shop_workers=2, shop_threads=8, payments_processing_ms=10.0,
                       **settings)


@contextmanager
def running_stack(config: StackConfig, session: pytest.Session) -> Iterator[Stack]:
    """The stack up for the block, and always stopped after."""
    running = Stack(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / "owner").write_text(str(os.getpid()))
    try:
        running.up()
        yield running
    finally:
        running.down()
        forget(config.run_dir, session)


def stack_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """Environment for the CLI as a child process: the stack's ports and run folder, a
    history file of the test's own, the default target."""
    env = {**os.environ, "CC_RUN_DIR": str(stack.config.run_dir),
           "CC_HISTORY_FILE": str(tmp_path / "history.jsonl"), "COLUMNS": "200"}
    env.update({f"CC_{k.upper()}_PORT": str(v) for k, v in asdict(stack.config.ports).items()})
    env.pop("CC_TARGET", None)
    return env


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The whole topology, started once for the session and always stopped."""
    with running_stack(small_stack_config(), request.session) as running:
        yield running


@pytest.fixture
def cli_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """Environment for the CLI as a child process: the session stack's ports and run folder,
    and a history file of the test's own."""
    return stack_env(stack, tmp_path)


@pytest.fixture
def faults(stack: Stack) -> Iterator[object]:
    """The stack's fault injector; every harness toxic, disabled proxy and service fault is
    undone after."""
    yield stack.faults
    stack.faults.sweep()
    stack.app_faults.sweep()


def service_post(stack: Stack, url: str, **kwargs: Any) -> Any:
    """A state-changing call to one of the stack's services, as its clients make it: JSON
    (an empty object when no body) with the install's token."""
    import httpx

    headers = {"Authorization": f"Bearer {stack.config.secrets.admin_token}",
               **kwargs.pop("headers", {})}
    kwargs.setdefault("json", {})
    return httpx.post(url, headers=headers, **kwargs)
