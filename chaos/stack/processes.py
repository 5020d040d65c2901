"""The processes a stack starts: found, spawned with their logs, recorded in a state file,
waited for, and stopped — only those (each pid's start time is checked, so a reused pid
is never killed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import StackError
from ..waiting import poll
from .config import LOOPBACK, Progress


@dataclass(slots=True)
class Running:
    """A process the stack started, as recorded in the state file."""

    name: str
    pid: int
    port: int
    started_ticks: int
    log: str


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One line of `make status`."""

    name: str
    pid: int | None
    port: int
    running: bool
    healthy: bool
    detail: str


def find_binary(name: str, env_var: str, extra_dirs: tuple[Path, ...] = ()) -> str:
    """A binary from an env var, PATH, or a known folder; StackError says how to get it."""
    explicit = os.environ.get(env_var)
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise StackError(f"{env_var}={explicit} is not an executable file")
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError(
        f"`{name}` was not found (looked at ${env_var}, PATH and "
        f"{', '.join(str(d) for d in extra_dirs) or 'nowhere else'}). Run `make setup`, "
        f"which installs it, or set {env_var} to its path."
    )


def postgres_bin(tool: str) -> str:
    """initdb/postgres from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return find_binary(tool, f"CC_{tool.upper()}", tuple(debian))


def port_in_use(port: int) -> bool:
    """True when something already listens on the loopback port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(proc: Running) -> bool:
    ticks = start_ticks(proc.pid)
    if ticks != proc.started_ticks:
        return False
    state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


class ProcessTable:
    """The processes one stack started, recorded in its state file."""

    def __init__(self, state_file: Path, log_dir: Path, ready_timeout: float,
                 progress: Progress) -> None:
        self.state_file = state_file
        self._log_dir = log_dir
        self._ready_timeout = ready_timeout
        self._progress = progress
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # started by this object

    def load(self) -> list[Running]:
        """The processes recorded."""
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StackError(f"{self.state_file} is unreadable ({exc}); delete it") from exc
        return [Running(**item) for item in raw.get("processes", [])]

    def save(self, procs: list[Running], extra: dict[str, Any]) -> None:
        """Record the processes (and what else the stack keeps beside them)."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"processes": [asdict(p) for p in procs], **extra},
                                  indent=2))
        tmp.replace(self.state_file)

    def spawn(
        self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None,
        user: str | None = None, cwd: Path | None = None,
    ) -> Running:
        """Start a process in its own session, its output in logs/<name>.log."""
        log_path = self._log_dir / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=full_env, cwd=cwd or self._log_dir.parent, start_new_session=True,
                user=user, group=user, extra_groups=[] if user else None,
            )
        self._children[proc.pid] = proc
        ticks = start_ticks(proc.pid) or 0
        running = Running(name, proc.pid, port, ticks, str(log_path))
        # Recorded now, before any readiness wait: a timeout, Ctrl-C or SIGKILL of the
        # harness during the wait leaves a process `down` (or the next start) knows of.
        self._record(running)
        self._progress(f"started {name} (pid {proc.pid}, port {port})")
        return running

    def _record(self, running: Running) -> None:
        """Add one process to the state file, keeping what else it holds."""
        try:
            raw = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        known = [item for item in raw.get("processes", []) if isinstance(item, dict)]
        extra = {k: v for k, v in raw.items() if k != "processes"}
        self.save([*(Running(**item) for item in known), running], extra)

    def wait(self, proc: Running, ready: Callable[[], bool], what: str,
             timeout: float | None = None) -> None:
        """Poll ready() until it is true, the process dies, or the deadline (the stack's
        ready timeout unless given) passes."""
        def up() -> bool:
            if not alive(proc):
                raise StackError(f"{proc.name} exited while starting; {self.tail(proc)}")
            return ready()

        limit = timeout or self._ready_timeout
        # OSError and HTTP errors: not yet listening.
        if poll(up, limit, ignore=(OSError, httpx.HTTPError)):
            self._progress(f"{proc.name} ready")
            return
        raise StackError(
            f"{proc.name} was not {what} within {limit:.0f}s; "
            f"{self.tail(proc)}"
        )

    @staticmethod
    def tail(proc: Running, lines: int = 8) -> str:
        try:
            text = Path(proc.log).read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return f"no log at {proc.log}"
        return f"last lines of {proc.log}:\n  " + "\n  ".join(text)

    def stop(self, procs: list[Running], grace: float = 10.0,
             how: signal.Signals = signal.SIGTERM) -> list[str]:
        """Signal each live process group (newest first; SIGTERM unless `how` says, e.g.
        SIGINT for PostgreSQL's fast shutdown), then SIGKILL what lingers."""
        live = [p for p in reversed(procs) if alive(p)]
        for proc in live:
            try:
                os.killpg(proc.pid, how)
            except ProcessLookupError:
                continue
        poll(lambda: not any(alive(p) for p in live), grace, every=0.05)
        for proc in live:
            if alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in live:
            child = self._children.pop(proc.pid, None)
            if child is not None:
                child.wait(timeout=5)  # reap what this object started: no zombie is left
            self._progress(f"stopped {proc.name} (pid {proc.pid})")
        # A child of this object that another process stopped (a run restarting the shop
        # from its own process) is reaped here, so no zombie outlives the stack.
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        return [p.name for p in live]

