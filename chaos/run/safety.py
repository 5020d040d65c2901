"""What keeps a run safe to stop: signals turned into an exception (so rollback runs),
signals held while a rollback runs, one run per stack, and the leftovers of a killed run
cleared at the next start."""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

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
def run_lock(run_dir: Path) -> Iterator[None]:
    """One experiment at a time per stack: a second run is refused, not queued."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "experiment.lock"
    handle: TextIO = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise HarnessError(f"another experiment is running on this stack ({holder}); "
                           "wait for it, or stop it (it rolls back on SIGTERM)") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def kill_leftover_load(run_dir: Path) -> list[str]:
    """A Locust left by a killed runner is stopped at the next start."""
    done = []
    for pid_file in run_dir.glob("load.pid"):
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if b"locust" in cmdline:
            os.kill(pid, signal.SIGTERM)
            done.append(f"stopped leftover load (pid {pid})")
        pid_file.unlink(missing_ok=True)
    return done
