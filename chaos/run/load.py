"""The load behind a run: the Locust process, and the feed of its live timeline that every
stage reads (the view updated, a load that died noticed)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from loadtests.classify import CLASSES
from loadtests.run import LoadPlan
from loadtests.timeline import FRESH_FILE, read_timeline

from ..errors import HarnessError
from .journal import Live
from .safety import record_process


class Load(Protocol):
    """What the runner needs of a load generator: `rows` are final (judged), `fresh` the
    complete seconds after them that may still be judged again (planned on only)."""

    rows: list[dict[str, Any]]
    fresh: list[dict[str, Any]]

    def start(self) -> None: ...

    @property
    def alive(self) -> bool: ...

    def poll(self) -> list[dict[str, Any]]: ...

    def stop(self) -> None: ...


class LoadProcess:
    """The Locust run behind an experiment, and its live timeline."""

    def __init__(self, plan: LoadPlan, log_path: Path, pid_path: Path) -> None:
        self.plan = plan
        self._log_path = log_path
        self._pid_path = pid_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self.rows: list[dict[str, Any]] = []
        self.fresh: list[dict[str, Any]] = []
        self.workers: int | None = None  # distributed: workers connected, as the master says

    def start(self) -> None:
        """Start Locust (bounded by its own -t)."""
        self.plan.run_dir.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(self.plan.command(), stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        record_process(self._pid_path, self._proc.pid)

    @property
    def alive(self) -> bool:
        """True while Locust runs."""
        return self._proc is not None and self._proc.poll() is None

    def poll(self) -> list[dict[str, Any]]:
        """New finished seconds from the live timeline (and, distributed, how many workers
        the master has: said before any second is, while it waits for them)."""
        if self.plan.workers_expect:
            try:
                said = json.loads((self.plan.run_dir / "workers.json").read_text())
                self.workers = int(said["connected"])
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                pass  # not written yet (or being written): the next read has it
        path = self.plan.run_dir / "live.jsonl"
        try:
            with path.open() as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        complete = chunk[: chunk.rfind("\n") + 1]
        self._offset += len(complete.encode())
        new = [json.loads(line) for line in complete.splitlines() if line.strip()]
        self.rows.extend(new)
        self._read_fresh()
        return new

    def _read_fresh(self) -> None:
        try:
            fresh = json.loads((self.plan.run_dir / FRESH_FILE).read_text())
        except (FileNotFoundError, ValueError):
            fresh = []  # not written yet (or being replaced: the next read has it)
        last = self.rows[-1]["ts"] if self.rows else None
        self.fresh = [r for r in fresh if last is None or r["ts"] > last]

    def stop(self, graceful: float = 20.0) -> None:
        """Ask the load shape to end (users finish their journeys, every answer recorded),
        then SIGTERM, then SIGKILL, each after a bounded wait."""
        if self._proc is None:
            return
        (self.plan.run_dir / "stop").touch()
        for action, wait in ((None, graceful), (self._proc.terminate, 10.0),
                             (self._proc.kill, 5.0)):
            if self._proc.poll() is not None:
                break
            if action is not None:
                action()
            try:
                self._proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        self._pid_path.unlink(missing_ok=True)
        self.poll()
        # Locust writes the whole timeline as it quits, every late judgement in it: the
        # run is judged on that, so it need not wait for the live file to catch up.
        final = self.plan.run_dir / "timeline.jsonl"
        if final.exists():
            whole = read_timeline(final)
            if whole:
                self.rows = whole
        self.fresh = []


class Feed:
    """The load's timeline as the stages read it: each read updates the live figures and
    tells the observers; a load that stopped early is an error, not a silent gap."""

    def __init__(self, load: Load, live: Live, notify: Callable[[Live], None],
                 log_hint: Path, poll_interval: float = 0.1) -> None:
        self.load = load
        self._live = live
        self._notify = notify
        self._hint = log_hint
        self.poll_interval = poll_interval

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every final second read so far: what phases are judged on."""
        return self.load.rows

    @property
    def latest(self) -> list[dict[str, Any]]:
        """The final seconds and the fresh ones after them: what a run plans on (when a
        window is over, whether the shop has recovered), never what it judges by."""
        return self.load.rows + self.load.fresh if self.load.fresh else self.load.rows

    def tick(self) -> list[dict[str, Any]]:
        """Read new timeline rows, update the view; the load must still be running."""
        new = self.load.poll()
        for row in new:
            for key in CLASSES:
                self._live.totals[key] = self._live.totals.get(key, 0) + row.get(key, 0)
            self._live.last_row = row
        if self.load.fresh:
            self._live.last_row = self.load.fresh[-1]
        self._notify(self._live)
        if not self.load.alive and not new:
            raise HarnessError(f"the load generator stopped early; see {self._hint}")
        return new

    def wait_rows_until(self, until: float, margin: float = 15.0) -> None:
        """Wait until the timeline has rows, fresh ones included, up to `until` (bounded
        by a margin)."""
        deadline = until + margin
        while True:
            self.tick()
            latest = self.latest
            if latest and latest[-1]["ts"] + 1 >= until:
                return
            if time.time() >= deadline:
                raise HarnessError(f"the load timeline stopped arriving; see {self._hint}")
            time.sleep(self.poll_interval)

    def pause(self) -> None:
        """Between two reads."""
        time.sleep(self.poll_interval)

    def wait_workers(self, expected: int, seconds: float, hint: str) -> float:
        """Distributed load: wait until `expected` workers report to the master (nothing is
        judged before); the seconds it took, or HarnessError naming the worker command."""
        started = time.time()
        while time.time() < started + seconds:
            self.load.poll()
            if (getattr(self.load, "workers", None) or 0) >= expected:
                return round(time.time() - started, 2)
            if not self.load.alive:
                break
            self._notify(self._live)
            time.sleep(self.poll_interval)
        found = getattr(self.load, "workers", None) or 0
        raise HarnessError(f"{found} of {expected} load workers reported within {seconds:.0f} s,"
                           f" so nothing was judged; start each with: {hint}")
