"""The sequence of one experiment run; every stage lives in its own module:

shop profile -> preflight (safety) -> steady state before (judge) -> method (faults on
their timeline, stop conditions) -> rollback (always: success, failed hypothesis, stop
condition, exception, Ctrl-C, SIGTERM) -> recovery (the load goes on; the steady state
must come back within a deadline) -> teardown -> judge (the phases whose evidence arrives
late) -> audit. Every step is a journal entry, never a crash.

The runner takes what it acts on as collaborators (fault drivers, the load, the shop,
the status poller, the audit, observers), so the sequence is tested with fakes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from loadtests.run import MASTER_PORT, WORKERS_WAIT, LoadPlan, worker_command

from ..appfaults import AppFaultClient
from ..audit import read_evidence, run_audit
from ..errors import FaultError, HarnessError, StackError
from ..experiment import PAGING_PROBES, Experiment, Hypothesis
from ..faults import FaultInjector
from ..paging import PageLog, Receiver
from ..probes import Evidence, MetricsPoller, StatusPoller, Window, WindowStats
from ..shop import SAFEGUARD_JOURNAL, SafeguardSwitch, ShopClient
from ..stack import Stack
from ..target import SURFACES, Target, reference_target
from ..vocabulary import JUDGED_PHASES, STATUS_NAME
from .audit import AuditOnce, audit_run
from .journal import HypothesisResult, Journal, Live, RunResult
from .judge import communication, judge, judge_phase, paging
from .load import Feed, Load, LoadProcess
from .method import FaultDriver, Method, sweep, target_drivers
from .recovery import recovered_from, recovery_hypotheses, wait_cleared, wait_recovered
from .safety import Interrupted, interruptible, kill_leftover_load, run_lock, signals_held
from .series import reconcile

# Judged checkouts a baseline that judges checkouts needs (as a recovery window does).
MIN_CHECKOUTS = 3
# About how far the fresh seconds trail the clock: a grown baseline ends this much before
# the first fault is due.
FRESH_LAG = 2.0


class SteadyStateNotMet(HarnessError):
    """The system was not healthy before the method: no fault is injected, and the
    experiment fails."""


class RunObserver(Protocol):
    """Watches a run: the live view and the harness's metrics exporter are observers."""

    def started(self, name: str, live: Live, result: RunResult) -> None: ...

    def update(self, live: Live) -> None: ...

    def ended(self, result: RunResult) -> None: ...


class ViewObserver:
    """A view callback (the terminal's live view) as an observer."""

    def __init__(self, view: Callable[[Live], None]) -> None:
        self._view = view

    def started(self, name: str, live: Live, result: RunResult) -> None:
        pass

    def update(self, live: Live) -> None:
        self._view(live)

    def ended(self, result: RunResult) -> None:
        pass


@dataclass(slots=True)
class Collaborators:
    """What a run acts on: the real stack's (`for_stack`), or fakes in unit tests."""

    drivers: Mapping[str, FaultDriver]
    preflight: Callable[[list[str]], dict[str, Any]]  # the experiment's targets -> output
    shop: ShopClient
    profile: SafeguardSwitch
    status: StatusPoller
    start_load: Callable[[LoadPlan], Load]
    audit_once: Callable[[float], AuditOnce]  # run start -> one audit of the evidence
    observers: Sequence[RunObserver] = field(default_factory=tuple)
    run_dir: Path = Path(".")
    # Distributed load: the users run in this many workers started apart (0: Locust here).
    workers_expect: int = 0
    master_port: int = MASTER_PORT
    workers_wait: float = WORKERS_WAIT
    # Why the target cannot show what a probe measures (None: it can): its hypotheses
    # are then "not judged", never passed.
    unjudgeable: Callable[[str], str | None] = lambda probe: None
    # The pages Alertmanager sends the harness during a run (None: no Alertmanager runs;
    # the paging hypotheses are then not judged). Called once, as the run starts.
    pages: Callable[[], PageLog | None] = lambda: None
    # The other surfaces where the shop tells its state (by label: the HTML status page,
    # the banner), each polled like `status`, and why each one the target lacks is not
    # judged.
    surfaces: Mapping[str, StatusPoller] = field(default_factory=dict)
    surfaces_missing: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_stack(cls, stack: Stack, out_dir: Path, observers: Sequence[RunObserver] = (),
                  workers_expect: int = 0, master_port: int = MASTER_PORT,
                  workers_wait: float = WORKERS_WAIT,
                  target: Target | None = None) -> Collaborators:
        """The real thing: the target's Toxiproxy and the services' fault endpoints, Locust,
        the shop (restarted through the stack when the experiment wants other safeguards).
        The stack is the harness's own; a target without `stack:` is reached as it says."""
        target = target or reference_target(stack.config)
        run_dir = stack.config.run_dir
        injector = toxiproxy_of(target)
        admin = {str(role): d.fault_admin for role, d in target.dependencies.items()
                 if d.fault_admin is not None}
        tokens = {str(role): d.fault_admin_token for role, d in target.dependencies.items()
                  if d.fault_admin_token}
        drivers = target_drivers(injector, {r: target.proxy(r) for r in target.roles},
                                 AppFaultClient(admin, tokens))
        shape = target.shape()
        shop = shop_of(target)
        shape_file = out_dir / "target-shape.json"

        def start_load(plan: LoadPlan) -> Load:
            load = LoadProcess(replace(plan, target_shape=shape.to_file(shape_file)),
                               out_dir / "locust.log", run_dir / "load.pid")
            load.start()
            return load

        def audit_once(since: float) -> AuditOnce:
            return lambda evidence: run_audit(evidence, target.ledgers, since=since)

        def restart_shop(env: dict[str, str]) -> None:
            if target.stack is None:
                raise StackError(f"target {target.name} cannot be restarted by the harness")
            stack.restart_shop(env)

        formats, missing = target.surface_formats()
        surfaces = {label: StatusPoller(target.shop.base_url, interval=0.5,
                                        status_format=found)
                    for label, found in formats.items() if label != SURFACES["status"]}
        missing.pop(SURFACES["status"], None)  # the status API's own hypotheses say so

        def pages() -> PageLog | None:
            if stack.alertmanager_url() is None:
                return None
            return Receiver.shared(stack.config.ports.pager).log

        return cls(drivers=drivers,
                   preflight=lambda roles: target_preflight(run_dir, target, injector, shop,
                                                            drivers, roles),
                   shop=shop,
                   profile=SafeguardSwitch(shop, restart_shop,
                                           run_dir / SAFEGUARD_JOURNAL),
                   status=StatusPoller(target.shop.base_url, status_format=shape.status),
                   start_load=start_load,
                   audit_once=audit_once, observers=tuple(observers), run_dir=run_dir,
                   workers_expect=workers_expect, master_port=master_port,
                   workers_wait=workers_wait, unjudgeable=target.unjudgeable, pages=pages,
                   surfaces=surfaces, surfaces_missing=missing)


def toxiproxy_of(target: Target) -> FaultInjector:
    """The fault adapter on the target's Toxiproxy."""
    api = urlsplit(target.toxiproxy.api)
    return FaultInjector(api.hostname or "127.0.0.1", api.port or 8474)


def shop_of(target: Target) -> ShopClient:
    """The target's shop seen from outside: its ready route and metrics."""
    return ShopClient(target.shop.base_url, target.shop.routes.ready, target.shop.metrics)


def check_target(target: Target, roles: Sequence[str] | None = None,
                 injector: FaultInjector | None = None, shop: ShopClient | None = None,
                 ready_within: float = 15.0) -> tuple[str, dict[str, bool]]:
    """The target answers: its Toxiproxy, a proxy for each role (every role it maps by
    default), its shop's ready route. HarnessError (exit 2) says what to fix; else
    Toxiproxy's version and its proxies."""
    injector = injector or toxiproxy_of(target)
    shop = shop or shop_of(target)
    try:
        version = injector.version()
    except FaultError as exc:
        raise HarnessError(f"target {target.name}: Toxiproxy does not answer at "
                           f"{target.toxiproxy.api}: "
                           + ("start the stack with `make up`" if target.stack else
                              "start it, or fix toxiproxy.api in the target file")) from exc
    if shop.wait_ready(ready_within) is None:  # a grace for a shop still recovering
        hint = ("start the stack with `make up` (see `make status`)" if target.stack else
                "check shop.base_url and shop.routes.ready in the target file")
        raise HarnessError(f"target {target.name}: the shop at {shop.base_url} is not ready "
                           f"(GET {shop.ready_route} did not answer 2xx): {hint}")
    proxies = injector.proxy_names()
    wanted = target.roles if roles is None else roles
    missing = [f"{target.proxy(r)} (for {r})" for r in wanted if target.proxy(r) not in proxies]
    if missing:
        hint = ("`make down && make up` recreates them" if target.stack else
                "create them, or fix dependencies.<role>.proxy in the target file")
        raise HarnessError(f"target {target.name}: Toxiproxy at {target.toxiproxy.api} has no "
                           f"proxy {', '.join(missing)} (it has: "
                           f"{', '.join(sorted(proxies)) or 'none'}): {hint}")
    return version, proxies


def target_preflight(run_dir: Path, target: Target, injector: FaultInjector, shop: ShopClient,
                     drivers: Mapping[str, FaultDriver], roles: list[str]) -> dict[str, Any]:
    """The target can take the experiment (check_target, for the roles it breaks); a
    killed run's load and faults are cleared."""
    stopped = kill_leftover_load(run_dir)
    version, proxies = check_target(target, roles, injector, shop)
    try:
        swept = injector.close_exposed() + sweep(drivers)
    except FaultError as exc:
        raise HarnessError(str(exc)) from exc
    return {"target": target.name, "toxiproxy": version, "proxies": sorted(proxies),
            "swept_leftovers": swept + stopped}


class Runner:
    """Runs one validated experiment."""

    def __init__(self, experiment: Experiment, source: str, out_dir: Path,
                 collaborators: Collaborators) -> None:
        self.experiment = experiment
        self.out_dir = out_dir
        self.c = collaborators
        self.result = RunResult(experiment, source, out_dir)
        self.live = Live(planned=experiment.planned_seconds())
        self.journal = Journal(self.result, self.live)
        self.method = Method(experiment.faults, collaborators.drivers, self.live,
                             self.result.fault_log)
        self.feed: Feed | None = None
        self.shop_metrics: MetricsPoller | None = None
        self._fault_start: float | None = None
        self._pages: PageLog | None = None
        self._metrics: dict[str, Any] = {}
        self._late: list[tuple[str, list[Hypothesis], Window]] = []  # judged once the load stopped
        self._method_shift = 0.0  # seconds a grown baseline took from before the first fault

    @classmethod
    def on_stack(cls, experiment: Experiment, source: str, stack: Stack, out_dir: Path,
                 observers: Sequence[RunObserver] = (), workers_expect: int = 0,
                 master_port: int = MASTER_PORT, workers_wait: float = WORKERS_WAIT,
                 target: Target | None = None) -> Runner:
        """A run against a running stack (and the target it runs)."""
        return cls(experiment, source, out_dir,
                   Collaborators.for_stack(stack, out_dir, observers, workers_expect,
                                           master_port, workers_wait, target))

    # ---- the run --------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Every phase; returns the result with a verdict (it never raises HarnessError)."""
        result = self.result
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for observer in self.c.observers:
            observer.started(Path(result.source).stem, self.live, result)
        try:
            self._pages = self.c.pages()
        except OSError as exc:
            result.notes.append(f"paging not judged: the alert receiver's port is taken "
                                f"({exc.strerror}); set CC_PAGER_PORT to a free port")
        try:
            with run_lock(self.c.run_dir), interruptible():
                # A report folder used before keeps the last run's load files, its stop
                # file among them, which would end this run's load at once. Cleared only
                # under the lock: another run may be writing there.
                shutil.rmtree(self.out_dir / "load", ignore_errors=True)
                try:
                    self._phases()
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
            for observer in self.c.observers:
                observer.ended(result)
        return result

    def _phases(self) -> None:
        exp, result, step = self.experiment, self.result, self.journal.step
        with step("shop", f"the shop runs {exp.shop.describe()}") as entry:
            entry.output = self.c.profile.ensure(exp.shop.off)
        restored = entry.output.get("restored_after_killed_run")
        if restored is not None:
            result.notes.append("a killed run had changed the shop's safeguards: restored "
                                "first (" + (", ".join(restored) + " off" if restored
                                             else "every safeguard on") + ")")
        with step("preflight", "stack, Toxiproxy, proxies, leftovers") as entry:
            entry.output = self.c.preflight(exp.targets())
        for line in entry.output.get("swept_leftovers", []):
            result.notes.append(f"cleared a killed run's leftover: {line}")
        try:
            self._metrics["start"] = self.c.shop.metrics()
            feed = self._start_load()
            self._steady_state_before(feed)
            aborted = self._method(feed)
            if not aborted:
                with step("recovery", "steady state back within the deadline") as entry:
                    entry.output = self._recovery(feed)
            else:
                with step("recovery", "wait for the shop to be ready again (not judged: "
                          "the run was aborted)") as entry:
                    entry.output = {"ready_after": self.c.shop.wait_ready(
                        exp.recovery.deadline)}
        finally:
            with step("teardown", "stop the load"):
                self._stop_load()
        with step("judge", "the phases judged once the load stopped"):
            self._judge_late()
        with step("audit", "nothing lost") as entry:
            outcome = audit_run(exp.checks, read_evidence(self.out_dir / "load"),
                                self.c.audit_once(result.started),
                                self._metrics.get("start", {}), self._metrics.get("end", {}),
                                shop_has_metrics=self.c.shop.metrics_route is not None)
            result.results.extend(outcome.results)
            result.not_judged.extend(outcome.not_judged)
            result.audit = outcome.audit
            entry.output = outcome.output
            if exp.checks.metrics_agreement and self.c.shop.metrics_route is not None:
                entry.output["series"] = self._reconcile_series()
        self._verdict()

    # ---- stages ---------------------------------------------------------------------------
    def _start_load(self) -> Feed:
        exp = self.experiment
        load = self.c.start_load(
            LoadPlan(self.c.shop.base_url, exp.load.profile, exp.load.users,
                     exp.load.spawn_rate, int(exp.load_seconds()) + 1, exp.load.processes,
                     self.out_dir / "load", storefront_share=exp.load.storefront_share,
                     retry_given_up=exp.load.retry_given_up,
                     shape_seconds=int(exp.planned_seconds()) + 1, hold=True,
                     workers_expect=self.c.workers_expect, master_port=self.c.master_port,
                     workers_wait=int(self.c.workers_wait) + 1))
        self.feed = Feed(load, self.live, self._notify, self.out_dir / "locust.log")
        if self.c.workers_expect:
            with self.journal.step("preflight", f"wait for {self.c.workers_expect} load "
                                   "workers to report") as entry:
                hint = " ".join(worker_command("127.0.0.1", self.c.master_port,
                                               Path("reports/load-worker")))
                entry.output = {"waited": self.feed.wait_workers(
                    self.c.workers_expect, self.c.workers_wait, hint)}
        self.c.status.start()
        for poller in self.c.surfaces.values():
            poller.start()
        reconciled = exp.checks.metrics_agreement and self.c.shop.metrics_route is not None
        if reconciled or any(h.probe == "shop_metric_rate" for h in exp.all_hypotheses()):
            self.shop_metrics = MetricsPoller(f"{self.c.shop.base_url}/metrics", interval=1.0)
            self.shop_metrics.start()
        self.live.started = time.time()
        return self.feed

    def _steady_state_before(self, feed: Feed) -> None:
        exp = self.experiment
        t0 = time.time()
        before = Window("baseline", t0 + exp.load.warmup,
                        t0 + exp.load.warmup + exp.steady_state.duration)
        planned_end = before.end
        with self.journal.step("steady-state-before", "steady state before the method"):
            feed.wait_rows_until(before.end)
            before = self._enough_checkouts(feed, before)
            # Under the labor-day shape the faults keep their planned times (the fault
            # planned for the spike still meets it), however long the baseline took;
            # under a steady load the method simply starts after it.
            if exp.load.profile == "labor-day":
                self._method_shift = before.end - planned_end
            self.result.windows["baseline"] = before
            # Judged on the seconds as they stand now, to decide whether to go on; the
            # verdict is the judgement of the final seconds (a page's banner may still be
            # judged again), made once the load has stopped.
            held = judge_phase("baseline", exp.steady_state.hypotheses, before, feed.latest,
                               self._evidence())
            self._late.append(("baseline", list(exp.steady_state.hypotheses), before))
            if not all(r.held for r in held):
                self.result.results.extend(held)
                failed = ", ".join(f"{r.name} ({_fmt(r.value)}, wanted {r.tolerance})"
                                   for r in held if not r.held)
                raise SteadyStateNotMet(
                    "the steady state did not hold before the method, so no fault was "
                    f"injected: {failed}")

    def _enough_checkouts(self, feed: Feed, before: Window) -> Window:
        """A baseline that judges checkouts needs some: a quiet one (the labor-day shape
        starts at 15 % of its peak; a shop whose checkout journey takes seconds) grows a
        second at a time, up to three times its length, until it holds MIN_CHECKOUTS
        judged checkouts; under the labor-day shape never past the first fault's planned
        start. Too few after that, and the hypotheses judge what there is."""
        exp = self.experiment
        if not any(h.scope == "checkout" for h in exp.steady_state.hypotheses):
            return before
        room = 2 * exp.steady_state.duration
        if exp.load.profile == "labor-day":
            room = min(room, min(f.start for f in exp.faults) - FRESH_LAG)
        limit = before.end + room
        while before.end + 1 <= limit:
            counts = WindowStats.of(before.rows(feed.latest)).checkouts
            if sum(counts.values()) - counts["declined"] >= MIN_CHECKOUTS:
                break
            before = Window("baseline", before.start, before.end + 1)
            feed.wait_rows_until(before.end)
        return before

    def _method(self, feed: Feed) -> bool:
        """The faults on their timeline, always rolled back; True when a stop condition
        aborted the method."""
        exp, result = self.experiment, self.result
        try:
            with self.journal.step("method", "faults on their timeline") as entry:
                outcome = self.method.run(feed, exp.stop_conditions, exp.method_span,
                                          shift=self._method_shift)
                self._fault_start = outcome.fault_start
                result.windows["fault"] = outcome.window
                result.abort = outcome.abort
                if outcome.abort is None:  # an aborted method is not judged
                    self._late.append(("fault", list(exp.hypotheses), outcome.window))
                entry.output = {"aborted": outcome.abort is not None,
                                "faults": result.fault_log}
        finally:
            with signals_held(), self.journal.step("rollback", "remove every fault") as entry:
                entry.output = self.method.roll_back_all()
                if result.abort is not None:
                    result.abort["rolled_back_at"] = entry.end or time.time()
                    result.abort["latency"] = round(time.time() - result.abort["met_at"], 3)
        return result.abort is not None

    def _recovery(self, feed: Feed) -> dict[str, Any]:
        exp, result = self.experiment, self.result
        t_r = self.method.last_rollback or time.time()
        result.recovery_time = wait_recovered(feed, t_r, exp.recovery)
        recovered_by = t_r + (result.recovery_time if result.recovery_time is not None
                              else exp.recovery.deadline)
        result.windows["recovery"] = Window("recovery", t_r, max(recovered_by, t_r) + 3)
        self._late.append(("recovery", recovery_hypotheses(exp), result.windows["recovery"]))
        # "After" is the steady state once the shop is back and says so: its pages are
        # judged on a cleared banner too.
        cleared_at = wait_cleared(feed, self.c.status, exp.targets(), t_r,
                                  t_r + exp.recovery.clear_within)
        recovered_at = None if result.recovery_time is None else t_r + result.recovery_time
        # The window starts when the shop was back and said so, however late the harness
        # learnt it: the seconds it covers may already be in.
        start = max((recovered_at or t_r + exp.recovery.deadline) + 1,
                    (cleared_at if cleared_at is not None else time.time()) + 1)
        after = Window("after", start, start + exp.steady_state.duration)
        feed.wait_rows_until(after.end)
        result.windows["after"] = after
        self._late.append(("recovery", [h.model_copy(update={"name": f"after: {h.name}"})
                                        for h in exp.steady_state.hypotheses], after))
        return {"recovery_time": result.recovery_time, "last_rollback": t_r}

    def _stop_load(self) -> None:
        self.c.status.stop()
        for poller in self.c.surfaces.values():
            poller.stop()
        if self.shop_metrics is not None:
            self.shop_metrics.stop()
        if self.feed is not None:
            self.feed.load.stop()
            self.result.rows = self.feed.rows
        self._metrics["end"] = self.c.shop.metrics()

    def _judge_late(self) -> None:
        """The fault and recovery phases, judged once the load has stopped: a hang counts
        when its shopper gives up, after the fault, and the status samples of the whole
        run are in."""
        rows = self.result.rows
        t_r = self.method.last_rollback
        if self.result.recovery_time is not None and t_r is not None:
            # Planned on the fresh seconds; judged on the final ones.
            back = recovered_from(rows, t_r, self.experiment.recovery)
            self.result.recovery_time = None if back is None else round(max(0.0, back - t_r), 2)
        self._wait_for_resolve()
        evidence = self._evidence()
        for phase, hypotheses, window in self._late:
            judged = []
            for h in hypotheses:
                why = self.c.unjudgeable(h.probe)
                if why is None and h.probe in PAGING_PROBES and self._pages is None:
                    why = ("no Alertmanager runs beside the stack: run with OBSERVE=1 "
                           "(make chaos OBSERVE=1, make observe, or --observe)")
                if why is None:
                    judged.append(h)
                else:
                    self.result.not_judged.append(f"{phase}: {h.name} ({why})")
            self.result.results.extend(judge_phase(phase, judged, window, rows, evidence))
            self._judge_surfaces(phase, hypotheses, window, evidence)
        self._late = []
        fault = self.result.windows.get("fault")
        # A shop without a status page has no timings to show ("-" would read as "never").
        if fault is not None and self.c.unjudgeable("time_to_communicate") is None:
            self.result.communication.update(
                communication(self.experiment.targets(), fault, rows, evidence))
        if fault is not None and self._pages is not None \
                and self.c.unjudgeable("time_to_page") is None:
            self.result.paging = paging(self.experiment.targets(), evidence)

    def _reconcile_series(self) -> dict[str, Any]:
        """Every series the dashboards plot against the load's record of the same run
        (chaos.run.series): a result per series, named after its metric."""
        exp, result = self.experiment, self.result
        t_r = self.method.last_rollback
        checks = reconcile(
            read_evidence(self.out_dir / "load"), result.rows, self._metrics.get("start", {}),
            self._metrics.get("end", {}),
            list(self.shop_metrics.samples) if self.shop_metrics is not None else [],
            self.c.status, [STATUS_NAME[t] for t in exp.targets()], self._fault_start,
            None if t_r is None else t_r + exp.recovery.clear_within,
            exp.checks.max_series_disagreement)
        out: dict[str, Any] = {}
        for check in checks:
            name = f"dashboard series {check.metric}: {check.what}"
            out[check.metric] = {"held": check.held, "value": check.value, **check.detail}
            if check.held is None:
                result.not_judged.append(f"audit: {name} ({check.why})")
                continue
            result.results.append(HypothesisResult(
                "audit", name, "series_agreement", check.tolerance, check.value, check.held,
                1.0, "" if check.held else f"{check.metric}: {check.detail}"))
        return out

    def _judge_surfaces(self, phase: str, hypotheses: list[Hypothesis], window: Window,
                        evidence: Evidence) -> None:
        """Every other surface where the shop tells shoppers its state (the HTML status
        page, the banner) held to the same time to communicate and to clear as its status
        API; a surface the target does not give is not judged."""
        rows = self.result.rows
        for h in hypotheses:
            if h.probe not in ("time_to_communicate", "time_to_clear"):
                continue
            for label, poller in self.c.surfaces.items():
                on = h.model_copy(update={"name": f"{h.name} (on the {label})"})
                self.result.results.append(judge(phase, on, window, rows,
                                                 replace(evidence, status=poller)))
            for label, why in self.c.surfaces_missing.items():
                self.result.not_judged.append(f"{phase}: {h.name} (on the {label}) ({why})")
        fault = self.result.windows.get("fault")
        if phase == "recovery" and fault is not None:
            for label, poller in self.c.surfaces.items():
                self.result.surfaces[label] = communication(
                    self.experiment.targets(), fault, rows, replace(evidence, status=poller))

    def _wait_for_resolve(self) -> None:
        """A page resolves a few seconds after the status clears (a scrape, a rule
        evaluation, Alertmanager's group interval): wait for it as long as the experiment's
        time_to_resolve tolerances allow, so a late resolve is measured, not missed."""
        t_r = self.method.last_rollback
        if self._pages is None or t_r is None:
            return
        for h in self.experiment.recovery.hypotheses:
            if h.probe == "time_to_resolve" and h.dependency is not None:
                limit = h.tolerance.max if h.tolerance.max is not None else 60.0
                self._pages.wait_for(h.dependency, "resolved", t_r, t_r + min(limit, 120) + 1)

    def _verdict(self) -> None:
        result = self.result
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

    # ---- helpers --------------------------------------------------------------------------
    def _evidence(self) -> Evidence:
        return Evidence(self.c.status, fault_start=self._fault_start,
                        last_rollback=self.method.last_rollback,
                        recovery_time=self.result.recovery_time,
                        shop_metrics=self.shop_metrics, pages=self._pages,
                        broken=frozenset(STATUS_NAME[t] for t in self.experiment.targets()))

    def _notify(self, live: Live) -> None:
        self._communication_so_far()
        for observer in self.c.observers:
            observer.update(live)

    def _communication_so_far(self) -> None:
        """Time to communicate and to clear as soon as the status page has shown them, so
        the harness's metrics carry them while the run goes on (the dashboards plot the run
        they are about); the figures judged once the load has stopped replace these."""
        injected = [e["at"] for e in self.result.fault_log if e["event"] == "injected"]
        if not injected or self.c.unjudgeable("time_to_communicate") is not None:
            return
        rolled_back = sum(1 for e in self.result.fault_log if e["event"] == "rolled back")
        done = not self.live.faults and rolled_back >= len(self.experiment.faults)
        cleared_since = self.method.last_rollback if done else None
        for target in self.experiment.targets():
            dependency = STATUS_NAME[target]
            known = self.result.communication.setdefault(
                dependency, {"time_to_communicate": None, "time_to_clear": None})
            if known["time_to_communicate"] is None:
                known["time_to_communicate"] = self.c.status.first(dependency, injected[0],
                                                                   False)
            if known["time_to_clear"] is None and cleared_since is not None:
                known["time_to_clear"] = self.c.status.first(dependency, cleared_since, True)
            if self._pages is not None:
                paged = self.result.paging.setdefault("dependencies", {}).setdefault(
                    dependency, {"time_to_page": None, "time_to_resolve": None})
                if paged["time_to_page"] is None:
                    paged["time_to_page"] = self._pages.first(dependency, "firing",
                                                              injected[0])
                if paged["time_to_resolve"] is None and cleared_since is not None:
                    paged["time_to_resolve"] = self._pages.first(dependency, "resolved",
                                                                 cleared_since)

    def _put_shop_back(self) -> None:
        """A run leaves the shop with the safeguards it found."""
        if self.c.profile.found is not None:
            with signals_held(), self.journal.step("teardown", "restart the shop as it was"):
                self.c.profile.restore()


def _fmt(value: float | None) -> str:
    return "nothing measured" if value is None else f"{value:g}"


__all__ = ["Collaborators", "RunObserver", "Runner", "SteadyStateNotMet", "ViewObserver"]
