"""What a run may signal and when a command may touch the stack (issue 14, point 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.cli import main
from chaos.run import run_lock
from chaos.run.safety import kill_leftover_load, record_process
from chaos.waiting import eventually


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_recorded_process_is_stopped_at_the_next_start(tmp_path: Path, sleeper) -> None:
    record_process(tmp_path / "load.pid", sleeper.pid)
    assert kill_leftover_load(tmp_path) == [f"stopped leftover load (pid {sleeper.pid})"]
    eventually(lambda: sleeper.poll() is not None, 10, "the leftover stopped")
    assert not (tmp_path / "load.pid").exists()


def test_a_reused_pid_is_never_signalled(tmp_path: Path, sleeper) -> None:
    """The pid file names a pid that now belongs to another process (its start time
    differs): whatever its command line says, it is left alone."""
    record_process(tmp_path / "load.pid", sleeper.pid)
    data = json.loads((tmp_path / "load.pid").read_text())
    (tmp_path / "load.pid").write_text(json.dumps({**data, "started": data["started"] - 50}))
    assert kill_leftover_load(tmp_path) == []
    assert sleeper.poll() is None and not (tmp_path / "load.pid").exists()


def test_an_old_style_pid_file_signals_nothing(tmp_path: Path, sleeper) -> None:
    (tmp_path / "load.pid").write_text(str(sleeper.pid))
    assert kill_leftover_load(tmp_path) == [] and sleeper.poll() is None


def test_sweep_is_refused_while_another_run_holds_the_stack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CC_TOXIPROXY_PORT", "9")  # nothing may be called: refused first
    with run_lock(tmp_path, "experiment"):
        result = CliRunner().invoke(main, ["sweep"])
    assert result.exit_code == 2, result.output
    assert "another run holds this stack (experiment, pid" in result.output


def test_a_killed_gates_lanes_and_their_stacks_are_cleared_at_the_next_start(
        tmp_path: Path) -> None:
    from dataclasses import asdict

    from chaos.lanes import clear_leftover_lanes
    from chaos.stack import Ports
    from chaos.stack.processes import Running, start_ticks

    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    lane, server = (subprocess.Popen(sleep, start_new_session=True) for _ in range(2))
    try:
        folder = tmp_path / "0"
        record_process(folder / "lane.pid", lane.pid)
        ticks = start_ticks(server.pid)
        assert ticks is not None
        (folder / "stack.json").write_text(json.dumps({
            "processes": [asdict(Running("redis", server.pid, 1, ticks, "redis.log"))],
            "ports": asdict(Ports.free())}))
        cleared = clear_leftover_lanes(lambda message: None, root=tmp_path)
        eventually(lambda: lane.poll() is not None and server.poll() is not None, 30,
                   "the lane and its stack stopped")
        assert cleared == [f"lane 0 (pid {lane.pid})", "lane 0's stack (1 processes)"]
        assert not (folder / "lane.pid").exists() and not (folder / "stack.json").exists()
        assert clear_leftover_lanes(lambda message: None, root=tmp_path) == []
    finally:
        for proc in (lane, server):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_make_down_stops_a_killed_runners_load_and_clears_its_safeguard_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After kill -9 of a runner nothing of it ran: its Locust still runs and its safeguard
    journal is on disk. `down` stops the one and removes the other, and says so."""
    from chaos.shop import SAFEGUARD_JOURNAL

    monkeypatch.setenv("CC_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CC_TOXIPROXY_PORT", "9")  # no stack: nothing else to stop
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record_process(tmp_path / "load.pid", sleeper.pid)
        (tmp_path / SAFEGUARD_JOURNAL).write_text(json.dumps({"found_off": []}))
        result = CliRunner().invoke(main, ["down"])
        assert result.exit_code == 0, result.output
        assert f"stopped leftover load (pid {sleeper.pid})" in result.output
        assert "safeguard journal" in result.output
        assert sleeper.wait(10) is not None  # terminated, not left to run
        assert not (tmp_path / SAFEGUARD_JOURNAL).exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_a_process_is_recorded_the_moment_it_is_spawned(tmp_path: Path) -> None:
    """Before its readiness wait: a wait that times out (or a harness killed in it) leaves
    a process the state file names, so `down` stops it; nothing holds its port unknown."""
    from chaos.errors import StackError
    from chaos.stack.processes import ProcessTable, alive

    (tmp_path / "logs").mkdir()
    table = ProcessTable(tmp_path / "stack.json", tmp_path / "logs", 0.3, lambda _: None)
    table.save([], {"shop": "reference"})
    proc = table.spawn("slow", [sys.executable, "-c", "import time; time.sleep(60)"], 1)
    try:
        assert [p.pid for p in table.load()] == [proc.pid]
        assert json.loads((tmp_path / "stack.json").read_text())["shop"] == "reference"
        with pytest.raises(StackError, match="was not ready"):
            table.wait(proc, lambda: False, "ready")
        assert table.stop(table.load()) and not alive(proc)
    finally:
        if alive(proc):
            table.stop([proc])
