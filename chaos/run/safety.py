"""What keeps a run safe to stop: signals turned into an exception (so rollback runs),
signals held while a rollback runs, one run per stack, and the leftovers of a killed run
cleared at the next start."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

import psutil

from ..errors import HarnessError


class Interrupted(HarnessError):
    """Ctrl-C or SIGTERM: rollback runs, then the run ends."""


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM (and Ctrl-C) raise Interrupted in the main thread, so finally blocks run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT for the block (a rollback must not be cut short by a second
    Ctrl-C); they are delivered, and raise, as soon as it ends."""
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def run_lock(run_dir: Path, what: str = "experiment") -> Iterator[None]:
    """One command that changes faults or the shop at a time per stack (an experiment, the
    matrix, an outage, a sweep): a second is refused, not queued."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "experiment.lock"
    handle: TextIO = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise HarnessError(f"another run holds this stack ({holder}); wait for it, or "
                           "stop it (it rolls back on SIGTERM)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{what}, pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def record_process(pid_file: Path, pid: int) -> None:
    """Remember a process we started: its pid and its start time, so a later run signals
    it only if that pid is still the same process (pids are reused)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": pid, "started": psutil.Process(pid).create_time()}))


def recorded_process(pid_file: Path) -> psutil.Process | None:
    """The process a pid file recorded, if it still runs (same pid and start time)."""
    try:
        data = json.loads(pid_file.read_text())
        process = psutil.Process(int(data["pid"]))
        if abs(process.create_time() - float(data["started"])) < 0.01:
            return process
    except (OSError, ValueError, TypeError, KeyError, psutil.Error):
        pass
    return None


def kill_leftover_load(run_dir: Path) -> list[str]:
    """A Locust left by a killed runner is stopped at the next start — only the one we
    recorded: a pid that now belongs to another process is never signalled."""
    done = []
    for pid_file in run_dir.glob("load.pid"):
        process = recorded_process(pid_file)
        if process is not None:
            with contextlib.suppress(psutil.Error):
                process.terminate()
                done.append(f"stopped leftover load (pid {process.pid})")
        pid_file.unlink(missing_ok=True)
    return done
