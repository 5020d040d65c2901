"""The run's stages with fakes at the driver and load boundaries: every fault injected is
rolled back (on success, on an abort, on an exception, on SIGTERM), stop conditions abort
the method, and the sequence goes through its phases in order."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chaos.audit import AuditResult
from chaos.errors import FaultError, HarnessError
from chaos.experiment import Experiment, Fault, StopCondition, parse_experiment
from chaos.paging import PageLog
from chaos.probes import StatusPoller, Window
from chaos.run import Collaborators, Interrupted, Live, Runner
from chaos.run.load import Feed
from chaos.run.method import Method
from chaos.shop import SafeguardSwitch, ShopClient
from chaos.vocabulary import RUN_PHASES
from loadtests.run import LoadPlan


class FakeDriver:
    """Records what it was asked; can refuse a target."""

    def __init__(self, refuse: str | None = None) -> None:
        self.on: dict[tuple[str, str], str] = {}
        self.log: list[tuple[str, str]] = []
        self.swept = 0
        self._refuse = refuse

    def inject(self, target: str, fault: Fault, label: str) -> str:
        if target == self._refuse:
            raise FaultError(f"{target} refused")
        self.on[(target, label)] = label
        self.log.append(("inject", target))
        return label

    def roll_back(self, target: str, handle: str) -> None:
        del self.on[(target, handle)]
        self.log.append(("roll_back", target))

    def sweep(self) -> list[str]:
        self.swept += 1
        return []


class FakeLoad:
    """A load that answers `per_second` requests each whole second (ok, unless told
    otherwise by `classes`), as the Locust timeline would."""

    def __init__(self, per_second: int = 10, classes: dict[str, int] | None = None,
                 sigterm_when: Callable[[], bool] | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        self.fresh: list[dict[str, Any]] = []  # this fake's seconds are final at once
        self._per_second = per_second
        self._classes = classes
        self._next = int(time.time()) - 1
        self._sigterm_when = sigterm_when  # SIGTERM arrives (as the runner sees it) then
        self.stopped = False

    def start(self) -> None:
        pass

    @property
    def alive(self) -> bool:
        return not self.stopped

    def poll(self) -> list[dict[str, Any]]:
        if self._sigterm_when is not None and self._sigterm_when():
            self._sigterm_when = None
            raise Interrupted("stopped by SIGTERM")
        new = []
        while self._next < int(time.time()):
            counts = self._classes or {"ok": self._per_second}
            row: dict[str, Any] = {"ts": self._next, "requests": sum(counts.values()),
                                   "graceful_error": 0, **counts}
            row.update({f"checkout_{c}": n for c, n in counts.items()})
            new.append(row)
            self._next += 1
        self.rows.extend(new)
        return new

    def stop(self) -> None:
        self.stopped = True


class FakeStatus(StatusPoller):
    """A status page that names every dependency at once and clears at once."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def state_before(self, dependency: str, at: float | None, within: float = 3.0) -> str:
        return "operational"

    def first(self, dependency: str, since: float, operational: bool) -> float:
        return 0.2


class FakeShop(ShopClient):
    def wait_ready(self, timeout: float) -> float:
        return 0.0

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {}

    def safeguards_off(self) -> frozenset[str]:
        return frozenset()


# The steady state both fake experiments share.
STEADY = """load: {warmup: 0s}
steady_state:
  duration: 1s
  hypotheses:
    - {name: checkouts succeed, probe: success_ratio, tolerance: {min: 0.9}}
"""

EXPERIMENT = parse_experiment("""
title: fake
description: a run in seconds against fakes
""" + STEADY + """faults:
  - {name: slow payments, target: [payments, inventory], toxic: latency,
     attributes: {latency: 100}, duration: 1s}
  - {name: redis gone, target: redis, toxic: down, start: 0.2s, duration: 1s}
hypotheses:
  - {name: no ungraceful answers, probe: ungraceful, tolerance: {max: 0}}
recovery: {deadline: 5s, window: 1s}
checks: {audit: false, metrics_agreement: false}
stop_conditions:
  - {name: ungraceful pile up, probe: ungraceful, above: 5}
""", "fake.yaml")


def collaborators(load: FakeLoad, toxic: FakeDriver, down: FakeDriver,
                  tmp_path: Path) -> Collaborators:
    shop = FakeShop("http://127.0.0.1:1")

    def start_load(plan: LoadPlan) -> FakeLoad:
        return load

    return Collaborators(
        drivers={"toxic": toxic, "down": down, "app": FakeDriver()},
        preflight=lambda targets: {"targets": targets}, shop=shop,
        profile=SafeguardSwitch(shop, lambda env: None), status=FakeStatus("http://127.0.0.1:1"),
        start_load=start_load, audit_once=lambda since: lambda evidence: AuditResult(),
        run_dir=tmp_path / "run")


def run(experiment: Experiment, load: FakeLoad, tmp_path: Path,
        toxic: FakeDriver | None = None, down: FakeDriver | None = None) -> Any:
    toxic, down = toxic or FakeDriver(), down or FakeDriver()
    runner = Runner(experiment, "fake.yaml", tmp_path / "out",
                    collaborators(load, toxic, down, tmp_path))
    return runner.run(), toxic, down


def test_a_run_goes_through_its_phases_in_order_and_rolls_every_fault_back(
        tmp_path: Path) -> None:
    result, toxic, down = run(EXPERIMENT, FakeLoad(), tmp_path)
    assert result.verdict == "passed", result.reason
    phases = list(dict.fromkeys(e.phase for e in result.journal))
    assert phases == [p for p in RUN_PHASES if p in phases]
    assert {"method", "rollback", "recovery", "judge", "audit"} <= set(phases)
    assert toxic.log.count(("inject", "payments")) == 1 and not toxic.on and not down.on
    assert toxic.swept == down.swept == 1
    assert {r.phase for r in result.results} == {"baseline", "fault", "recovery"}


class Watcher:
    """An observer keeping what each update showed of the run's communication figures."""

    def __init__(self) -> None:
        self.result: Any = None
        self.seen: list[dict[str, dict[str, float | None]]] = []

    def started(self, name: str, live: Any, result: Any) -> None:
        self.result = result

    def update(self, live: Any) -> None:
        self.seen.append({d: dict(v) for d, v in self.result.communication.items()})

    def ended(self, result: Any) -> None:
        pass


def test_the_communication_figures_are_known_while_the_run_goes_on(tmp_path: Path) -> None:
    """The harness's metrics plot time to communicate and to clear during the run, not
    only once it has ended (a dashboard shows the run it is about)."""
    watcher = Watcher()
    c = collaborators(FakeLoad(), FakeDriver(), FakeDriver(), tmp_path)
    result = Runner(EXPERIMENT, "fake.yaml", tmp_path / "out",
                    replace(c, observers=(watcher,))).run()
    assert result.verdict == "passed", result.reason
    told = [s for s in watcher.seen if s.get("payments", {}).get("time_to_communicate")]
    cleared = [s for s in watcher.seen if s.get("cache", {}).get("time_to_clear")]
    assert told and cleared, watcher.seen[-3:]
    # Known during the fault (before every fault was rolled back), not at the end only.
    assert not watcher.seen[watcher.seen.index(told[0])].get("cache", {}).get(
        "time_to_clear")


def test_sigterm_mid_method_still_rolls_back_every_fault(tmp_path: Path) -> None:
    toxic = FakeDriver()
    load = FakeLoad(sigterm_when=lambda: bool(toxic.on))  # once a fault is on
    result, toxic, down = run(EXPERIMENT, load, tmp_path, toxic=toxic)
    assert result.verdict == "error" and "SIGTERM" in result.reason
    assert toxic.log and not toxic.on and not down.on
    rollback = [e for e in result.journal if e.phase == "rollback"]
    assert rollback and rollback[0].status == "succeeded"
    assert load.stopped


def test_a_failing_steady_state_injects_nothing(tmp_path: Path) -> None:
    result, toxic, down = run(EXPERIMENT, FakeLoad(classes={"graceful_error": 10}), tmp_path)
    assert result.verdict == "failed" and "no fault was injected" in result.reason
    assert not toxic.log and not down.log


class LateJudgedLoad(FakeLoad):
    """Every second arrives fresh first; when the load stops, the final timeline has the
    baseline's answers judged again as ungraceful (a page's banner, judged late)."""

    def poll(self) -> list[dict[str, Any]]:
        super().poll()
        self.fresh, self.rows = self.fresh + self.rows, []
        return []

    def stop(self) -> None:
        super().stop()
        final = [dict(r) for r in self.fresh]
        for row in final[:3]:
            row.update(ok=0, checkout_ok=0, ungraceful=row["requests"],
                       checkout_ungraceful=row["requests"])
        self.rows, self.fresh = final, []


def test_the_verdict_is_made_on_the_final_seconds_not_the_fresh_ones(tmp_path: Path) -> None:
    result, toxic, _ = run(EXPERIMENT, LateJudgedLoad(), tmp_path)
    assert toxic.log  # the fresh seconds held: the method ran
    assert result.verdict == "failed", result.reason
    assert "baseline: checkouts succeed" in result.reason


class Rows:
    """A feed for the method alone: each tick answers with the next prepared rows."""

    def __init__(self, batches: list[list[dict[str, Any]]], error_at: int | None = None):
        self.batches = batches
        self.rows: list[dict[str, Any]] = []
        self.ticks = 0
        self._error_at = error_at

    def tick(self) -> list[dict[str, Any]]:
        self.ticks += 1
        if self._error_at is not None and self.ticks >= self._error_at:
            raise HarnessError("the load generator stopped early")
        new = self.batches.pop(0) if self.batches else []
        stamped = [{"ts": int(time.time()) + 1, **r} for r in new]
        self.rows.extend(stamped)
        return stamped

    def pause(self) -> None:
        time.sleep(0.01)


def method(faults: list[Fault], drivers: dict[str, FakeDriver]) -> Method:
    return Method(faults, drivers, Live(), [])


def test_a_stop_condition_aborts_the_method_and_rollback_takes_everything_off() -> None:
    toxic = FakeDriver()
    m = method(EXPERIMENT.faults[:1], {"toxic": toxic})
    feed = Rows([[{"requests": 10, "graceful_error": 0, "ungraceful": 6}]])
    outcome = m.run(feed, EXPERIMENT.stop_conditions, span=30)  # type: ignore[arg-type]
    assert outcome.abort is not None and outcome.abort["condition"] == "ungraceful pile up"
    assert set(toxic.on) == {("payments", "0-slow-payments"), ("inventory", "0-slow-payments")}
    m.roll_back_all()
    assert not toxic.on and toxic.swept == 1


def test_a_condition_below_its_limit_lets_the_method_run_to_its_end() -> None:
    toxic = FakeDriver()
    quiet = StopCondition(name="never", probe="ungraceful", above=100)
    m = method([EXPERIMENT.faults[0].model_copy(update={"duration": 0.2})], {"toxic": toxic})
    outcome = m.run(Rows([[{"requests": 10, "graceful_error": 0, "ungraceful": 1}]] * 50),
                    [quiet], span=0.2)  # type: ignore[arg-type]
    assert outcome.abort is None
    assert toxic.log[-2:] == [("roll_back", "payments"), ("roll_back", "inventory")]


def test_an_exception_mid_method_leaves_nothing_on_after_rollback() -> None:
    toxic, down = FakeDriver(), FakeDriver()
    m = method(EXPERIMENT.faults, {"toxic": toxic, "down": down})
    with pytest.raises(HarnessError):
        m.run(Rows([], error_at=30), [], span=30)  # type: ignore[arg-type]
    assert toxic.on and down.on  # both faults were on when the load died
    m.roll_back_all()
    assert not toxic.on and not down.on and toxic.swept == down.swept == 1


def test_a_target_that_refuses_its_fault_leaves_the_others_to_rollback() -> None:
    toxic = FakeDriver(refuse="inventory")
    m = method(EXPERIMENT.faults[:1], {"toxic": toxic})
    with pytest.raises(FaultError):
        m.inject(0)
    assert set(toxic.on) == {("payments", "0-slow-payments")}
    m.roll_back_all()
    assert not toxic.on


def test_the_feed_says_when_the_load_died(tmp_path: Path) -> None:
    load = FakeLoad()
    load.stopped = True
    feed = Feed(load, Live(), lambda live: None, tmp_path / "locust.log")
    load._next = int(time.time()) + 10  # no whole second left to report
    with pytest.raises(HarnessError, match="stopped early"):
        feed.tick()


class PastLoad(FakeLoad):
    """Seconds already in: a checkout every other second (a quiet sale-day morning)."""

    def __init__(self, since: int, until: int) -> None:
        super().__init__()
        self.rows = [{"ts": ts, "requests": 5, "ok": 5,
                      "checkout_ok": 1 if (ts - since) % 2 == 0 else 0}
                     for ts in range(since, until)]

    def poll(self) -> list[dict[str, Any]]:
        return []


def grown(fault_start: str, tmp_path: Path, profile: str = "labor-day") -> tuple[float, float]:
    experiment = parse_experiment(f"""
title: quiet
description: a baseline with few checkouts
load: {{profile: {profile}}}
steady_state:
  duration: 2s
  hypotheses:
    - {{name: checkouts succeed, probe: success_ratio, scope: checkout, tolerance: {{min: 0.9}}}}
faults:
  - {{name: slow payments, target: payments, toxic: latency, attributes: {{latency: 100}},
     start: {fault_start}, duration: 1s}}
""", "quiet.yaml")
    now = int(time.time())
    load = PastLoad(now - 30, now)
    runner = Runner(experiment, "quiet.yaml", tmp_path / "out",
                    collaborators(load, FakeDriver(), FakeDriver(), tmp_path))
    feed = Feed(load, Live(), lambda live: None, tmp_path / "log")
    window = runner._enough_checkouts(feed, Window("baseline", now - 30, now - 28))
    return window.start, window.end


def test_a_quiet_baseline_grows_until_it_has_checkouts_to_judge(tmp_path: Path) -> None:
    start, end = grown("20s", tmp_path)
    assert end - start == 5  # 3 checkouts: seconds 0, 2 and 4 of the window
    start, end = grown("4s", tmp_path)
    assert end - start == 4  # never past the first fault's start (4 s, less the lag)
    start, end = grown("0s", tmp_path)
    assert end - start == 2  # a fault due at once: the baseline keeps its length


def test_under_a_steady_load_a_quiet_baseline_grows_and_the_method_waits(
        tmp_path: Path) -> None:
    """A shop whose checkout journey takes seconds: its faults may start later (the
    steady load has no spike to meet), so the baseline grows whatever the first fault's
    start, up to three times its length."""
    start, end = grown("0s", tmp_path, profile="steady")
    assert end - start == 5


PAGED = parse_experiment("""
title: paged
description: a run whose paging is judged when an Alertmanager runs
""" + STEADY + """faults:
  - {name: slow payments, target: payments, toxic: latency, attributes: {latency: 100},
     duration: 1s}
hypotheses:
  - {name: payments pages, probe: time_to_page, dependency: payments, tolerance: {max: 5}}
  - {name: nothing else pages, probe: unrelated_pages, tolerance: {max: 0}}
recovery:
  deadline: 5s
  window: 1s
  hypotheses:
    - {name: payments resolves, probe: time_to_resolve, dependency: payments,
       tolerance: {max: 3}}
checks: {audit: false, metrics_agreement: false}
""", "paged.yaml")


class PagingDriver(FakeDriver):
    """Alertmanager's pages as the faults go: firing at injection, resolved at rollback."""

    def __init__(self, log: PageLog) -> None:
        super().__init__()
        self.pages = log

    def inject(self, target: str, fault: Fault, name: str) -> str:
        handle = super().inject(target, fault, name)
        self.pages.add({"alerts": [{"status": "firing", "labels": {
            "alertname": "DependencyTrouble", "dependency": "payments"}}]}, time.time())
        return handle

    def roll_back(self, target: str, handle: str) -> None:
        super().roll_back(target, handle)
        # As Alertmanager would: a little after the rollback (here, stamped so).
        self.pages.add({"alerts": [{"status": "resolved", "labels": {
            "alertname": "DependencyTrouble", "dependency": "payments"}}]}, time.time() + 0.5)


def test_paging_is_judged_from_the_pages_and_not_judged_without_an_alertmanager(
        tmp_path: Path) -> None:
    log = PageLog()
    driver = PagingDriver(log)
    c = collaborators(FakeLoad(), driver, FakeDriver(), tmp_path)
    result = Runner(PAGED, "paged.yaml", tmp_path / "out", replace(c, pages=lambda: log)).run()
    assert result.verdict == "passed", result.reason
    judged = {r.name: r.value for r in result.results}
    assert judged["payments pages"] is not None and judged["payments pages"] < 1
    assert judged["nothing else pages"] == 0 and judged["payments resolves"] is not None
    assert result.paging["dependencies"]["payments"]["time_to_page"] is not None
    # No Alertmanager: the same hypotheses are not judged, never passed.
    alone = Runner(PAGED, "paged.yaml", tmp_path / "alone",
                   collaborators(FakeLoad(), FakeDriver(), FakeDriver(), tmp_path)).run()
    assert not {"payments pages", "payments resolves"} & {r.name for r in alone.results}
    assert any("payments pages" in n and "no Alertmanager" in n for n in alone.not_judged)
