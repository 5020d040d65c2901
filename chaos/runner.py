"""The experiment runner, in phases recorded in a journal.

preflight -> steady state before -> method (load runs, faults start and stop on their
timeline, stop conditions watched) -> rollback (always: success, failed hypothesis, stop
condition, exception, Ctrl-C, SIGTERM) -> recovery (load continues; the steady state must
come back within a deadline) -> audit. Every step is a journal entry, never a crash.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import httpx

from loadtests.classify import CLASSES, CONTRACT_FAILURES, GIVE_UP_SECONDS
from loadtests.run import LoadPlan

from .appfaults import AppFaultClient
from .audit import EVENTUAL_RULES, AuditResult, read_evidence, run_audit
from .errors import FaultError, HarnessError, StackError
from .experiment import (
    Experiment,
    Fault,
    Hypothesis,
    Recovery,
    StopCondition,
    Tolerance,
)
from .exporter import Exporter
from .faults import FaultInjector
from .observe import PrometheusError, query_key_series, wait_for_scrape
from .probes import (
    Context,
    MetricsPoller,
    StatusPoller,
    Window,
    WindowStats,
    measure,
    scrape,
)
from .stack import Stack, StackConfig
from .vocabulary import JUDGED_PHASES, PROXY_DOWN, STATUS_NAME


class Interrupted(HarnessError):
    """Ctrl-C or SIGTERM: rollback runs, then the run ends."""


class SteadyStateNotMet(HarnessError):
    """The system was not healthy before the method: no fault is injected, and the
    experiment fails."""


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
        return {"phase": self.phase, "name": self.name, "probe": self.probe,
                "tolerance": self.tolerance, "value": self.value, "held": self.held,
                "weight": self.weight, "note": self.note}


@dataclass(slots=True)
class RunResult:
    """Everything a report needs."""

    experiment: Experiment
    source: str
    out_dir: Path
    verdict: str = "not_run"  # passed | failed | aborted | not_run | error
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
    notes: list[str] = field(default_factory=list)
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
        return {"passed": 0, "failed": 1, "aborted": 1}.get(self.verdict, 2)

    def phase_verdicts(self) -> dict[str, bool]:
        """Per phase: did every hypothesis in it hold."""
        phases: dict[str, bool] = {}
        for r in self.results:
            phases[r.phase] = phases.get(r.phase, True) and r.held
        return phases


@dataclass(slots=True)
class Live:
    """What the terminal view shows, updated by the runner."""

    phase: str = "preflight"
    started: float = field(default_factory=time.time)
    planned: float = 0.0
    last_row: dict[str, Any] = field(default_factory=dict)
    active_faults: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)

    def elapsed(self) -> float:
        """Seconds since the load started."""
        return time.time() - self.started


View = Callable[[Live], None]


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


class LoadProcess:
    """The Locust run behind an experiment, and its live timeline."""

    def __init__(self, plan: LoadPlan, log_path: Path, pid_path: Path) -> None:
        self.plan = plan
        self._log_path = log_path
        self._pid_path = pid_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self.rows: list[dict[str, Any]] = []

    def start(self) -> None:
        """Start Locust (bounded by its own -t)."""
        self.plan.run_dir.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen(self.plan.command(), stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._pid_path.parent.mkdir(parents=True, exist_ok=True)
        self._pid_path.write_text(str(self._proc.pid))

    @property
    def alive(self) -> bool:
        """True while Locust runs."""
        return self._proc is not None and self._proc.poll() is None

    def poll(self) -> list[dict[str, Any]]:
        """New finished seconds from the live timeline."""
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
        return new

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


class Runner:
    """Runs one validated experiment against a running stack."""

    def __init__(self, experiment: Experiment, source: str, stack: StackConfig, out_dir: Path,
                 view: View | None = None, poll_interval: float = 0.1,
                 export_metrics: bool = False) -> None:
        self.experiment = experiment
        self._export_metrics = export_metrics  # the CLI's runs serve the harness's metrics
        self.stack = stack
        self.out_dir = out_dir
        self.faults = FaultInjector("127.0.0.1", stack.ports.toxiproxy)
        self.app_faults = AppFaultClient({"payments": stack.payments_url,
                                          "inventory": stack.inventory_url})
        self.result = RunResult(experiment, source, out_dir)
        self.live = Live(planned=experiment.planned_seconds())
        self._view = view or (lambda live: None)
        self._poll = poll_interval
        self._active: dict[tuple[int, str], str] = {}  # (fault index, target) -> toxic name
        self.load: LoadProcess | None = None
        self.status = StatusPoller(stack.shop_url)
        self.context = Context(self.status)
        self._restore_shop: frozenset[str] | None = None  # the profile found, if changed

    # ---- journal --------------------------------------------------------------------------
    @contextmanager
    def step(self, phase: str, name: str) -> Iterator[JournalEntry]:
        """A journal entry around a block; an exception marks it failed and goes on up."""
        entry = JournalEntry(phase, name)
        self.result.journal.append(entry)
        self.live.phase = phase
        try:
            yield entry
        except BaseException as exc:
            entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        else:
            entry.status = "succeeded"
        finally:
            entry.end = time.time()

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Every phase; returns the result with a verdict (it never raises HarnessError)."""
        result = self.result
        self.out_dir.mkdir(parents=True, exist_ok=True)
        exporter = self._export() if self._export_metrics else None
        try:
            with run_lock(self.stack.run_dir), interruptible():
                # A report folder used before keeps the last run's load files, its stop
                # file among them, which would end this run's load at once. Cleared only
                # under the lock: another run may be writing there.
                shutil.rmtree(self.out_dir / "load", ignore_errors=True)
                try:
                    self._run_phases()
                finally:
                    self._put_shop_back()
        except SteadyStateNotMet as exc:
            # As the Chaos Toolkit has it: a system not in its steady state fails the
            # experiment (no fault was injected; the baseline hypotheses say what broke).
            result.verdict, result.reason = "failed", str(exc)
        except Interrupted as exc:
            result.verdict, result.reason = "error", f"{exc}; every fault was rolled back"
        except HarnessError as exc:
            result.verdict, result.reason = "error", str(exc)
        finally:
            result.ended = time.time()
            try:
                prometheus = Stack(self.stack).prometheus_url()
            except StackError:  # an unreadable state file: the report draws the load's only
                prometheus = None
            # The run's last figures (time-to-communicate among them) reach Prometheus before
            # this process, and its endpoint, may go away.
            if (prometheus is not None and exporter is not None
                    and not wait_for_scrape(prometheus, "harness", result.ended)):
                result.notes.append("Prometheus did not scrape the harness after the run")
            if exporter is not None:
                exporter.collector.detach()
            if prometheus is not None:
                self._query_prometheus(prometheus)
        return result

    def _export(self) -> Exporter | None:
        """Attach this run to the harness's metrics endpoint; a taken port is a note in the
        journal, not a reason to skip the experiment."""
        try:
            exporter = Exporter.shared(self.stack.ports.harness)
        except OSError as exc:
            self.result.notes.append(
                f"harness metrics not exported: port {self.stack.ports.harness} is taken "
                f"({exc.strerror}); set CC_HARNESS_PORT to a free port")
            return None
        exporter.collector.attach(self, Path(self.result.source).stem)
        return exporter

    def active_faults(self) -> list[tuple[Fault, str]]:
        """Each fault active now, with the dependency it is on."""
        faults = self.experiment.faults
        return [(faults[index], target) for index, target in list(self._active)]

    def _query_prometheus(self, url: str) -> None:
        """The stack's Prometheus ran: keep the run's key series for the report."""
        if not self.result.rows:
            return
        start = self.result.rows[0]["ts"]
        try:
            self.result.prometheus = query_key_series(url, start, self.result.ended)
        except PrometheusError as exc:
            self.result.notes.append(f"Prometheus series not drawn: {exc}")

    def _run_phases(self) -> None:
        exp, result = self.experiment, self.result
        with self.step("shop", f"the shop runs {exp.shop.describe()}") as entry:
            entry.output = self._ensure_shop(exp.shop.off)
        with self.step("preflight", "stack, Toxiproxy, proxies, leftovers") as entry:
            entry.output = self._preflight()
        try:
            self.context.metrics["run:start"] = scrape(f"{self.stack.shop_url}/metrics")
            self._start_load()
            t0 = time.time()
            before = Window("baseline", t0 + exp.load.warmup,
                            t0 + exp.load.warmup + exp.steady_state.duration)
            with self.step("steady-state-before", "steady state before the method"):
                self._wait_rows_until(before.end)
                result.windows["baseline"] = before
                held = self._judge("baseline", exp.steady_state.hypotheses, before)
                if not all(r.held for r in held):
                    failed = ", ".join(f"{r.name} ({_fmt(r.value)}, wanted {r.tolerance})"
                                       for r in held if not r.held)
                    raise SteadyStateNotMet(
                        "the steady state did not hold before the method, so no fault was "
                        f"injected: {failed}")
            aborted = False
            try:
                with self.step("method", "faults on their timeline") as entry:
                    aborted = self._method()
                    entry.output = {"aborted": aborted, "faults": self.result.fault_log}
            finally:
                with signals_held(), self.step("rollback", "remove every fault") as entry:
                    entry.output = self._roll_back_all()
                    if result.abort is not None:
                        result.abort["rolled_back_at"] = entry.end or time.time()
                        result.abort["latency"] = round(time.time() - result.abort["met_at"], 3)
            if not aborted:
                with self.step("recovery", "steady state back within the deadline") as entry:
                    entry.output = self._recovery()
            else:
                with self.step("recovery", "wait for the shop to be ready again (not judged: "
                               "the run was aborted)") as entry:
                    entry.output = {"ready_after": self._wait_ready(exp.recovery.deadline)}
        finally:
            with self.step("teardown", "stop the load"):
                self.status.stop()
                if self.context.shop_metrics is not None:
                    self.context.shop_metrics.stop()
                if self.load is not None:
                    self.load.stop()
                    result.rows = self.load.rows
                self.context.metrics["run:end"] = scrape(f"{self.stack.shop_url}/metrics")
        with self.step("audit", "nothing lost") as entry:
            entry.output = self._audit_and_agreement()
        result.results.sort(key=lambda r: JUDGED_PHASES.index(r.phase))
        broken = [f"{r.phase}: {r.name}" for r in result.results if not r.held]
        if result.abort is not None:
            result.verdict = "aborted"
            result.reason = (f"stop condition met: {result.abort['condition']} "
                             f"({result.abort['probe']} {result.abort['value']:g} > "
                             f"{result.abort['above']:g}); every fault was rolled back")
        else:
            result.verdict = "failed" if broken else "passed"
            result.reason = "every hypothesis held" if not broken else \
                "hypotheses that failed: " + "; ".join(broken)
        for name, window in result.windows.items():
            result.phase_stats[name] = WindowStats.of(window.rows(result.rows)).summary()

    # ---- phases ---------------------------------------------------------------------------
    def _preflight(self) -> dict[str, Any]:
        stopped = _kill_leftover_load(self.stack.run_dir)
        try:
            version = self.faults.version()
        except FaultError as exc:
            raise HarnessError(f"{exc}") from exc
        if self._wait_ready(15.0) is None:  # a grace for a shop still recovering
            raise HarnessError(f"the shop at {self.stack.shop_url} is not ready: start the "
                               "stack with `make up` (see `make status`)")
        proxies = self.faults.proxy_names()
        missing = [t for t in self.experiment.targets() if t not in proxies]
        if missing:
            raise HarnessError(f"Toxiproxy has no proxy {', '.join(missing)} "
                               f"(it has: {', '.join(sorted(proxies)) or 'none'}); "
                               "`make down && make up` recreates them")
        try:
            swept = self.faults.sweep() + self.app_faults.sweep()
        except FaultError as exc:
            raise HarnessError(str(exc)) from exc
        return {"toxiproxy": version, "proxies": sorted(proxies),
                "swept_leftovers": swept + stopped}

    def _ensure_shop(self, wanted: frozenset[str]) -> dict[str, Any]:
        """Restart the shop if it does not run with the safeguards the experiment asks for."""
        found = shop_safeguards(self.stack.shop_url)
        if found is None:
            return {"checked": False}  # the preflight says what is wrong with the shop
        if found == wanted:
            return {"safeguards_off": sorted(wanted), "restarted": False}
        self._restart_shop(wanted)
        self._restore_shop = found
        return {"safeguards_off": sorted(wanted), "restarted": True, "was": sorted(found)}

    def _restart_shop(self, off: frozenset[str]) -> None:
        try:
            Stack(self.stack).restart_shop(shop_profile_env(off))
        except StackError as exc:
            raise HarnessError(f"could not restart the shop with the experiment's "
                               f"safeguards: {exc}") from exc

    def _put_shop_back(self) -> None:
        """A run leaves the shop with the safeguards it found."""
        if self._restore_shop is not None:
            with signals_held(), self.step("teardown", "restart the shop as it was"):
                self._restart_shop(self._restore_shop)
            self._restore_shop = None

    def _wait_ready(self, timeout: float) -> float | None:
        """Seconds until the shop's /readyz answers 200 (None at the timeout), so a run hands
        the next one a stack that is ready, not one still recovering."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if httpx.get(f"{self.stack.shop_url}/readyz", timeout=2).is_success:
                    return round(time.monotonic() - started, 2)
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return None

    def _start_load(self) -> None:
        exp = self.experiment
        load_dir = self.out_dir / "load"
        self.load = LoadProcess(
            LoadPlan(self.stack.shop_url, exp.load.profile, exp.load.users, exp.load.spawn_rate,
                     int(exp.planned_seconds()) + 1, exp.load.processes, load_dir,
                     storefront_share=exp.load.storefront_share),
            self.out_dir / "locust.log", self.stack.run_dir / "load.pid")
        self.load.start()
        self.status.start()
        if any(h.probe == "shop_metric_rate" for h in exp.all_hypotheses()):
            self.context.shop_metrics = MetricsPoller(f"{self.stack.shop_url}/metrics")
            self.context.shop_metrics.start()
        self.live.started = time.time()

    def _tick(self) -> list[dict[str, Any]]:
        """Read new timeline rows, update the view; the load must still be running."""
        assert self.load is not None
        new = self.load.poll()
        for row in new:
            for key in CLASSES:
                self.live.totals[key] = self.live.totals.get(key, 0) + row.get(key, 0)
            self.live.last_row = row
        self._view(self.live)
        if not self.load.alive and not new:
            raise HarnessError("the load generator stopped early; see "
                               f"{self.out_dir / 'locust.log'}")
        return new

    def _wait_rows_until(self, until: float) -> None:
        """Wait until the timeline has rows up to `until` (bounded by a margin)."""
        assert self.load is not None
        deadline = until + 15.0
        while time.time() < deadline:
            self._tick()
            if self.load.rows and self.load.rows[-1]["ts"] + 1 >= until:
                return
            time.sleep(self._poll)
        raise HarnessError("the load timeline stopped arriving; see "
                           f"{self.out_dir / 'locust.log'}")

    def _method(self) -> bool:
        """Inject and roll back faults on schedule; True when a stop condition aborted."""
        exp = self.experiment
        t_m = time.time()
        started: set[int] = set()
        ended: set[int] = set()
        method_rows: list[dict[str, Any]] = []
        span_end = t_m + exp.method_span
        self.context.fault_start = t_m + min(f.start for f in exp.faults)
        while True:
            now = time.time()
            for index, action in due(exp.faults, now - t_m, started, ended):
                if action == "inject":
                    started.add(index)
                    self._inject(index, exp.faults[index])
                else:
                    ended.add(index)
                    self._roll_back(index, exp.faults[index])
            new = [r for r in self._tick() if r["ts"] + 1 > t_m]
            method_rows.extend(new)
            if new and self._stop_condition(method_rows):
                self.result.windows["fault"] = Window("fault", t_m, time.time())
                return True
            if len(ended) == len(exp.faults) or now >= span_end + 1:
                break
            time.sleep(self._poll)
        self.result.windows["fault"] = Window("fault", self.context.fault_start, time.time())
        self._judge("fault", exp.hypotheses, self.result.windows["fault"], defer=True)
        return False

    def _stop_condition(self, rows: list[dict[str, Any]]) -> bool:
        met = stop_condition_met(self.experiment.stop_conditions, rows)
        if met is None:
            return False
        condition, value = met
        self.result.abort = {"condition": condition.name, "probe": condition.probe,
                             "value": value, "above": condition.above, "met_at": time.time()}
        return True

    def _inject(self, index: int, fault: Fault) -> None:
        for target in fault.target:
            if fault.is_app:
                name = self.app_faults.inject(target, fault.toxic, dict(fault.attributes))
            elif fault.toxic == PROXY_DOWN:
                self.faults.disable(target)
                name = "(proxy disabled)"
            else:
                name = self.faults.inject(
                    target, fault.toxic, name=f"{index}-{_slug(fault.name)}",
                    stream=fault.stream, attributes=dict(fault.attributes),
                    toxicity=fault.toxicity)
            self._active[(index, target)] = name
            self.live.active_faults.append(f"{fault.toxic} on {target}")
        self.result.fault_log.append({"fault": fault.name, "event": "injected",
                                      "at": time.time(), "targets": fault.target,
                                      "toxic": fault.toxic})

    def _roll_back(self, index: int, fault: Fault) -> None:
        for target in fault.target:
            name = self._active.pop((index, target), None)
            if name is None:
                continue
            if fault.is_app:
                self.app_faults.roll_back(target, name)
            elif fault.toxic == PROXY_DOWN:
                self.faults.enable(target)
            else:
                self.faults.roll_back(target, name)
            label = f"{fault.toxic} on {target}"
            if label in self.live.active_faults:
                self.live.active_faults.remove(label)
        now = time.time()
        self.context.last_rollback = now
        self.result.fault_log.append({"fault": fault.name, "event": "rolled back", "at": now,
                                      "targets": fault.target, "toxic": fault.toxic})

    def _roll_back_all(self) -> list[str]:
        """Roll back what is still active, then sweep: nothing the harness made survives."""
        for index, fault in enumerate(self.experiment.faults):
            if any(key[0] == index for key in self._active):
                self._roll_back(index, fault)
        done = self.faults.sweep() + self.app_faults.sweep()
        self.live.active_faults.clear()
        return done

    def _recovery(self) -> dict[str, Any]:
        exp, result = self.experiment, self.result
        t_r = self.context.last_rollback or time.time()
        deadline = t_r + exp.recovery.deadline
        recovered_at: float | None = None
        assert self.load is not None
        while time.time() < deadline + exp.recovery.window + 3 and recovered_at is None:
            self._tick()
            recovered_at = recovered_from(self.load.rows, t_r, exp.recovery)
            time.sleep(self._poll)
        result.recovery_time = None if recovered_at is None else round(
            max(0.0, recovered_at - t_r), 2)
        self.context.recovery_time = result.recovery_time
        recovered_by = t_r + (result.recovery_time if result.recovery_time is not None
                              else exp.recovery.deadline)
        result.windows["recovery"] = Window("recovery", t_r, max(recovered_by, t_r) + 3)
        hypotheses = recovery_hypotheses(exp)
        self._judge("recovery", hypotheses, result.windows["recovery"], defer=True)
        # "After" is the steady state once the shop is back and says so: its pages are
        # judged on a cleared banner too.
        cleared_at = self._wait_cleared(t_r, t_r + exp.recovery.clear_within)
        start = max(time.time(), (recovered_at or deadline) + 1, (cleared_at or 0.0) + 1)
        after = Window("after", start, start + exp.steady_state.duration)
        self._wait_rows_until(after.end)
        result.windows["after"] = after
        self._judge("recovery", [h.model_copy(update={"name": f"after: {h.name}"})
                                 for h in exp.steady_state.hypotheses], after)
        return {"recovery_time": result.recovery_time, "last_rollback": t_r}

    def _wait_cleared(self, since: float, until: float) -> float | None:
        """When the status page last of all cleared every touched dependency after `since`
        (None: not by `until`); the load's rows keep arriving meanwhile."""
        dependencies = [STATUS_NAME[t] for t in self.experiment.targets()]
        while True:
            cleared = [self.status.first(d, since, True) for d in dependencies]
            if all(c is not None for c in cleared):
                return since + max((c for c in cleared if c is not None), default=0.0)
            if time.time() >= until:
                return None
            self._tick()
            time.sleep(self._poll)

    def _audit_and_agreement(self) -> dict[str, Any]:
        exp, result = self.experiment, self.result
        output: dict[str, Any] = {}
        self._judge_deferred()
        evidence = read_evidence(self.out_dir / "load")
        if exp.checks.audit:
            audit = self._audit_settled(evidence)
            result.audit = audit
            output["audit"] = audit.as_json()
            result.results.append(HypothesisResult(
                "audit", "ledger audit: nothing lost", "audit_violations", "at most 0",
                float(len(audit.violations)), audit.clean, 1.0))
        if exp.checks.metrics_agreement:
            disagreement, detail = self._metrics_disagreement(evidence)
            output["metrics_agreement"] = detail
            limit = exp.checks.max_metrics_disagreement
            result.results.append(HypothesisResult(
                "audit", "shop metrics agree with what shoppers saw", "metrics_agreement",
                f"at most {limit:g}", disagreement,
                disagreement is not None and disagreement <= limit, 1.0))
        return output

    def _audit_settled(self, evidence: list[dict[str, Any]]) -> AuditResult:
        """The audit, repeated while only 'not yet' violations remain (a paid order's stock
        not committed yet, an order not settled yet) and the settling time lasts: the
        shop reconciles those in the background, the rest are final at once."""
        settle_until = time.time() + self.experiment.checks.audit_settle
        while True:
            audit = run_audit(evidence, self.stack.direct_database_url,
                              self.stack.payments_url, self.stack.inventory_url,
                              since=self.result.started)
            pending = {v.rule for v in audit.violations} & EVENTUAL_RULES
            if audit.clean or pending != {v.rule for v in audit.violations} or \
                    time.time() >= settle_until:
                return audit
            time.sleep(1.0)

    def _metrics_disagreement(self, evidence: list[dict[str, Any]]) -> tuple[float | None, Any]:
        """Largest relative difference between the shop's checkout counters and the load's."""
        start = self.context.metrics.get("run:start", {})
        end = self.context.metrics.get("run:end", {})
        if not start or not end:
            return None, "the shop's /metrics could not be read"

        def shop(outcome: str) -> float:
            key = ("shop_checkout_outcomes_total", frozenset({("outcome", outcome)}))
            return end.get(key, 0.0) - start.get(key, 0.0)

        answered = [e for e in evidence if e.get("status")]
        seen = {"total": float(len(answered)),
                "success": float(sum(1 for e in answered if e["status"] == 201)),
                "declined": float(sum(1 for e in answered if e["status"] == 402))}
        counted = {"total": sum(shop(o) for o in ("success", "pending_payment", "declined",
                                                  "graceful_error", "error")),
                   "success": shop("success") + shop("pending_payment"),
                   "declined": shop("declined")}
        worst = max(abs(counted[k] - seen[k]) / max(seen[k], 1.0) for k in seen)
        return round(worst, 4), {"shop": counted, "load": seen}

    # ---- hypotheses -----------------------------------------------------------------------
    _deferred: list[tuple[str, list[Hypothesis], Window]]

    def _judge(self, phase: str, hypotheses: list[Hypothesis], window: Window,
               defer: bool = False) -> list[HypothesisResult]:
        """Judge now, or once the load has stopped (time-to-communicate and such need the
        status samples of the whole run, and the timeline needs its last seconds)."""
        if defer:
            if not hasattr(self, "_deferred"):
                self._deferred = []
            self._deferred.append((phase, hypotheses, window))
            return []
        assert self.load is not None
        judged = [judge(phase, h, window, self.load.rows, self.context) for h in hypotheses]
        self.result.results.extend(judged)
        return judged

    def _judge_deferred(self) -> None:
        for phase, hypotheses, window in getattr(self, "_deferred", []):
            self._judge(phase, hypotheses, window)
        self._deferred = []
        self._measure_communication()

    def _measure_communication(self) -> None:
        """Time-to-communicate and time-to-clear for every dependency the method touched."""
        fault = self.result.windows.get("fault")
        if fault is None or self.load is None:
            return
        for target in self.experiment.targets():
            dependency = STATUS_NAME[target]
            self.result.communication[dependency] = {
                probe: measure(Hypothesis.model_validate(
                    {"name": probe, "probe": probe, "dependency": dependency,
                     "tolerance": {"min": 0}}), fault, self.load.rows, self.context)
                for probe in ("time_to_communicate", "time_to_clear")}


def judge(phase: str, h: Hypothesis, window: Window, rows: list[dict[str, Any]],
          context: Context) -> HypothesisResult:
    """One hypothesis judged over a window of the timeline (and the run's context)."""
    judged_over = window
    if phase == "fault" and h.probe == "ungraceful":
        # A request made during the fault that hangs is only seen when the shopper
        # gives up on it, up to GIVE_UP_SECONDS later: it counts against the fault.
        judged_over = Window(window.name, window.start, window.end + GIVE_UP_SECONDS)
    value = measure(h, judged_over, rows, context)
    held, note = h.tolerance.holds(value), ""
    if h.probe == "time_to_communicate" and h.dependency is not None:
        before = context.status.state_before(h.dependency, context.fault_start)
        if before != "operational":
            held = False
            note = (f"status already {before or 'unknown'} before the fault: a status page "
                    "that was not clear before cannot show that it told")
    return HypothesisResult(phase, h.name, h.probe, h.tolerance.describe(),
                            None if value is None else round(value, 4), held, h.weight, note)


def recovered_from(rows: list[dict[str, Any]], since: float, recovery: Recovery,
                   min_answers: int = 3) -> float | None:
    """The first second from which `recovery.window` whole seconds of answers in scope
    succeed at the wanted ratio; None: not yet. A window with fewer than `min_answers`
    judged answers (declines aside: a light load's checkouts are sparse) grows, up to three
    times its length, until it has them."""
    span = max(1, round(recovery.window))
    by_second = {r["ts"]: r for r in rows if r["ts"] >= int(since)}
    for start in sorted(by_second):
        taken: list[dict[str, Any]] = []
        for offset in range(3 * span):
            row = by_second.get(start + offset)
            if row is None:
                break  # not arrived yet (or the load paused): judge no further from here
            taken.append(row)
            stats = WindowStats.of(taken)
            counts = stats.checkouts if recovery.scope == "checkout" else stats.classes
            judged = sum(counts.values()) - counts["declined"]
            if len(taken) >= span and judged >= min_answers:
                ratio = stats.success_ratio(recovery.scope)
                if ratio is not None and ratio >= recovery.success_ratio:
                    return float(start)
                break
    return None


def recovery_hypotheses(exp: Experiment) -> list[Hypothesis]:
    """The experiment's recovery hypotheses (a recovery deadline when it names none), and
    the status page clearing for every dependency the method touched that none judges."""
    declared = list(exp.recovery.hypotheses) or [Hypothesis(
        name=f"{exp.recovery.scope} success back within {exp.recovery.deadline:g}s",
        probe="recovery_time", tolerance=Tolerance(max=exp.recovery.deadline))]
    cleared = {h.dependency for h in exp.all_hypotheses() if h.probe == "time_to_clear"}
    for dependency in sorted({STATUS_NAME[t] for t in exp.targets()} - cleared):
        declared.append(Hypothesis.model_validate({
            "name": f"status page clears {dependency}", "probe": "time_to_clear",
            "dependency": dependency, "tolerance": {"max": exp.recovery.clear_within}}))
    return declared


def shop_safeguards(shop_url: str) -> frozenset[str] | None:
    """The safeguards the running shop has off (None when it does not answer)."""
    try:
        return frozenset(httpx.get(f"{shop_url}/healthz", timeout=5).json()
                         .get("safeguards_off", []))
    except (httpx.HTTPError, ValueError):
        return None


def shop_profile_env(off: frozenset[str]) -> dict[str, str]:
    """The shop's environment for a set of safeguards turned off."""
    return {"SHOP_RESILIENCE": "on", "SHOP_SAFEGUARDS_OFF": ",".join(sorted(off))}


def due(faults: list[Fault], elapsed: float, started: set[int],
        ended: set[int]) -> list[tuple[int, str]]:
    """What the fault timeline wants done `elapsed` seconds into the method:
    (index, "inject") for faults whose start has come, (index, "roll_back") for faults
    whose end has come; a fault whose whole window has passed is injected then rolled back."""
    actions = []
    for index, fault in enumerate(faults):
        if index not in started and elapsed >= fault.start:
            actions.append((index, "inject"))
            started = started | {index}
        if index in started and index not in ended and elapsed >= fault.end:
            actions.append((index, "roll_back"))
    return actions


def stop_condition_met(conditions: list[StopCondition],
                       rows: list[dict[str, Any]]) -> tuple[StopCondition, float] | None:
    """The first stop condition the method's rows meet, with the value that met it."""
    for condition in conditions:
        if condition.probe == "ungraceful":
            value = float(sum(r.get(c, 0) for r in rows for c in CONTRACT_FAILURES))
            if value > condition.above:
                return condition, value
            continue
        need = max(1, int(condition.for_))
        recent = rows[-need:]
        ratios = [(r["graceful_error"] + sum(r.get(c, 0) for c in CONTRACT_FAILURES))
                  / r["requests"]
                  for r in recent if r["requests"]]
        if len(ratios) == need and all(x > condition.above for x in ratios):
            return condition, ratios[-1]
    return None


def _kill_leftover_load(run_dir: Path) -> list[str]:
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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40]


def _fmt(value: float | None) -> str:
    return "nothing measured" if value is None else f"{value:g}"


__all__ = ["Interrupted", "RunResult", "Runner"]
