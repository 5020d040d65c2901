"""What a run records: the journal of its steps, each hypothesis judged, the result a
report is written from, and the live figures the terminal view and the exporter show."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..audit import AuditResult
from ..experiment import Experiment, Fault
from ..probes import Window


@dataclass(slots=True)
class JournalEntry:
    """One step of the run."""

    phase: str
    step: str
    status: str = "running"
    start: float = field(default_factory=time.time)
    end: float | None = None
    output: Any = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """For the journal file."""
        duration = None if self.end is None else round(self.end - self.start, 3)
        return {"phase": self.phase, "step": self.step, "status": self.status,
                "start": self.start, "end": self.end, "duration": duration,
                "output": self.output, "error": self.error}


@dataclass(slots=True)
class HypothesisResult:
    """A hypothesis judged in one phase."""

    phase: str
    name: str
    probe: str
    tolerance: str
    value: float | None
    held: bool
    weight: float
    note: str = ""  # why it failed when the value alone does not say

    def as_json(self) -> dict[str, Any]:
        """For the journal file."""
        return asdict(self)


@dataclass(slots=True)
class RunResult:
    """Everything a report needs."""

    experiment: Experiment
    source: str
    out_dir: Path
    verdict: str = "not_run"  # passed | failed | aborted | skipped | not_run | error
    reason: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None
    journal: list[JournalEntry] = field(default_factory=list)
    results: list[HypothesisResult] = field(default_factory=list)
    windows: dict[str, Window] = field(default_factory=dict)
    fault_log: list[dict[str, Any]] = field(default_factory=list)
    phase_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    audit: AuditResult | None = None
    recovery_time: float | None = None
    abort: dict[str, Any] | None = None
    # Per dependency the method touched: seconds until /api/status named it, and until it
    # cleared after the last rollback (measured in every run, hypotheses or not).
    communication: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # The same per surface besides the status API (the HTML status page, the banner).
    surfaces: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    # Per dependency the method touched: seconds until its alert paged (from the fault's
    # start) and resolved (from the last rollback), through a real Alertmanager; the
    # unrelated alerts; every page received (see chaos.paging). {}: no Alertmanager ran.
    paging: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Checks the target gave no source for (a ledger, metrics): never counted as held.
    not_judged: list[str] = field(default_factory=list)
    # The key series from the stack's Prometheus, when it ran (see chaos.observe).
    prometheus: dict[str, Any] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        """The run went through every phase and was judged (not aborted, not errored)."""
        return self.verdict in ("passed", "failed")

    @property
    def score(self) -> float:
        """Weighted share of hypotheses that held, 0-100; 0 for a run that did not
        complete (aborted, errored or not run): what was not judged did not hold."""
        if not self.completed:
            return 0.0
        total = sum(r.weight for r in self.results)
        return round(100 * sum(r.weight for r in self.results if r.held) / total, 1) \
            if total else 0.0

    @property
    def exit_code(self) -> int:
        """0 all held, 1 a hypothesis failed or the run was aborted, 2 it could not be made."""
        return {"passed": 0, "failed": 1, "aborted": 1, "skipped": 0}.get(self.verdict, 2)

    def phase_verdicts(self) -> dict[str, bool]:
        """Per phase: did every hypothesis in it hold."""
        phases: dict[str, bool] = {}
        for r in self.results:
            phases[r.phase] = phases.get(r.phase, True) and r.held
        return phases


@dataclass(slots=True)
class Live:
    """What the terminal view and the exporter show, updated as the run goes."""

    phase: str = "preflight"
    started: float = field(default_factory=time.time)
    planned: float = 0.0
    last_row: dict[str, Any] = field(default_factory=dict)
    faults: list[tuple[Fault, str]] = field(default_factory=list)  # active: (fault, target)
    totals: dict[str, int] = field(default_factory=dict)

    def elapsed(self) -> float:
        """Seconds since the load started."""
        return time.time() - self.started

    @property
    def active_faults(self) -> list[str]:
        """Each active fault, as "<toxic> on <target>"."""
        return [f"{fault.toxic} on {target}" for fault, target in self.faults]


View = Callable[[Live], None]


class Journal:
    """The steps of one run, appended to its result as they happen."""

    def __init__(self, result: RunResult, live: Live) -> None:
        self._result = result
        self._live = live

    @contextmanager
    def step(self, phase: str, name: str) -> Iterator[JournalEntry]:
        """A journal entry around a block; an exception marks it failed and goes on up."""
        entry = JournalEntry(phase, name)
        self._result.journal.append(entry)
        self._live.phase = phase
        try:
            yield entry
        except BaseException as exc:
            entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        else:
            entry.status = "succeeded"
        finally:
            entry.end = time.time()
