"""The method: faults injected and rolled back on their timeline while the load runs, the
stop conditions watched. Each kind of fault reaches the system through a FaultDriver (a
Toxiproxy toxic, a proxy taken down, a fault inside a service), so the timeline knows
nothing of how, and its rollback can be tested with fake drivers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from loadtests.classify import CONTRACT_FAILURES

from ..appfaults import AppFaultClient
from ..experiment import Fault, StopCondition
from ..faults import FaultInjector
from ..probes import Window
from ..vocabulary import PROXY_DOWN
from .journal import Live
from .load import Feed


class FaultDriver(Protocol):
    """Puts one kind of fault on a target and takes it off again."""

    def inject(self, target: str, fault: Fault, label: str) -> str:
        """Turn the fault on; returns the handle to roll it back by."""
        ...

    def roll_back(self, target: str, handle: str) -> None:
        """Turn one fault off."""
        ...

    def sweep(self) -> list[str]:
        """Turn off everything of this kind the harness made (any run's); what it did."""
        ...


class ToxicDriver:
    """A Toxiproxy toxic on the proxy of the fault's role (`proxies`: role -> the target's
    proxy name; a role not in it is its own proxy's name)."""

    def __init__(self, injector: FaultInjector, proxies: Mapping[str, str] | None = None) -> None:
        self._injector = injector
        self._proxies = dict(proxies or {})

    def inject(self, target: str, fault: Fault, label: str) -> str:
        return self._injector.inject(self._proxies.get(target, target), fault.toxic,
                                     name=label, stream=fault.stream,
                                     attributes=dict(fault.attributes),
                                     toxicity=fault.toxicity)

    def roll_back(self, target: str, handle: str) -> None:
        self._injector.roll_back(self._proxies.get(target, target), handle)

    def sweep(self) -> list[str]:
        return self._injector.sweep_toxics()


class ProxyDownDriver:
    """The role's proxy disabled: every connection refused. Its sweep re-enables only the
    target's proxies (None: every proxy of a Toxiproxy the harness runs itself)."""

    def __init__(self, injector: FaultInjector, proxies: Mapping[str, str] | None = None) -> None:
        self._injector = injector
        self._proxies = dict(proxies or {})

    def inject(self, target: str, fault: Fault, label: str) -> str:
        self._injector.disable(self._proxies.get(target, target))
        return "(proxy disabled)"

    def roll_back(self, target: str, handle: str) -> None:
        self._injector.enable(self._proxies.get(target, target))

    def sweep(self) -> list[str]:
        return self._injector.enable_all(sorted(self._proxies.values()) or None)


class AppFaultDriver:
    """A fault inside the payments or inventory service, set on its admin endpoint."""

    def __init__(self, client: AppFaultClient) -> None:
        self._client = client

    def inject(self, target: str, fault: Fault, label: str) -> str:
        return self._client.inject(target, fault.toxic, dict(fault.attributes))

    def roll_back(self, target: str, handle: str) -> None:
        self._client.roll_back(target, handle)

    def sweep(self) -> list[str]:
        return self._client.sweep()


def driver_kind(fault: Fault) -> str:
    """Which driver a fault goes through: "app", "down" or "toxic"."""
    if fault.is_app:
        return "app"
    return "down" if fault.toxic == PROXY_DOWN else "toxic"


def target_drivers(injector: FaultInjector, proxies: Mapping[str, str],
                   app: AppFaultClient) -> dict[str, FaultDriver]:
    """The real drivers for a target: its Toxiproxy, role -> proxy, its services' fault
    endpoints."""
    return {"toxic": ToxicDriver(injector, proxies), "down": ProxyDownDriver(injector, proxies),
            "app": AppFaultDriver(app)}


@dataclass(frozen=True, slots=True)
class MethodOutcome:
    """How the method went: when its first fault started, the window judged as "fault",
    and the stop condition that aborted it (None: it ran to its end)."""

    fault_start: float
    window: Window
    abort: dict[str, Any] | None


class Method:
    """The experiment's faults on their timeline, through the drivers; every fault it
    injected is rolled back by `roll_back_all`, whatever happened."""

    def __init__(self, faults: list[Fault], drivers: Mapping[str, FaultDriver], live: Live,
                 log: list[dict[str, Any]]) -> None:
        self._faults = faults
        self._drivers = drivers
        self._live = live
        self._log = log  # the result's fault log, appended to
        self._active: dict[tuple[int, str], str] = {}  # (fault index, target) -> handle
        self.last_rollback: float | None = None

    def run(self, feed: Feed, stop_conditions: list[StopCondition],
            span: float, shift: float = 0.0) -> MethodOutcome:
        """Inject and roll back on schedule until every fault has ended (or `span` + 1 s
        has passed), watching the stop conditions on the method's rows. `shift`: seconds
        the schedule is already into (a baseline that grew took them from the wait before
        the first fault, which still starts when planned and lasts its whole duration)."""
        t_m = time.time() - shift
        started: set[int] = set()
        ended: set[int] = set()
        method_rows: list[dict[str, Any]] = []
        fault_start = t_m + min(f.start for f in self._faults)
        while True:
            now = time.time()
            for index, action in due(self._faults, now - t_m, started, ended):
                if action == "inject":
                    started.add(index)
                    self.inject(index)
                else:
                    ended.add(index)
                    self.roll_back(index)
            new = [r for r in feed.tick() if r["ts"] + 1 > t_m]
            method_rows.extend(new)
            met = stop_condition_met(stop_conditions, method_rows) if new else None
            if met is not None:
                condition, value = met
                abort = {"condition": condition.name, "probe": condition.probe,
                         "value": value, "above": condition.above, "met_at": time.time()}
                return MethodOutcome(fault_start, Window("fault", t_m, time.time()), abort)
            if len(ended) == len(self._faults) or now >= t_m + span + 1:
                break
            feed.pause()
        return MethodOutcome(fault_start, Window("fault", fault_start, time.time()), None)

    def inject(self, index: int) -> None:
        """Turn fault `index` on, on each of its targets."""
        fault = self._faults[index]
        driver = self._drivers[driver_kind(fault)]
        for target in fault.target:
            self._active[(index, target)] = driver.inject(
                target, fault, f"{index}-{_slug(fault.name)}")
            self._live.faults.append((fault, target))
        self._log.append({"fault": fault.name, "event": "injected", "at": time.time(),
                          "targets": fault.target, "toxic": fault.toxic})

    def roll_back(self, index: int) -> None:
        """Turn fault `index` off wherever it is on."""
        fault = self._faults[index]
        driver = self._drivers[driver_kind(fault)]
        for target in fault.target:
            handle = self._active.pop((index, target), None)
            if handle is None:
                continue
            driver.roll_back(target, handle)
            if (fault, target) in self._live.faults:
                self._live.faults.remove((fault, target))
        now = time.time()
        self.last_rollback = now
        self._log.append({"fault": fault.name, "event": "rolled back", "at": now,
                          "targets": fault.target, "toxic": fault.toxic})

    def roll_back_all(self) -> list[str]:
        """Roll back what is still active, then sweep every driver: nothing the harness
        made survives."""
        for index in sorted({index for index, _ in self._active}):
            self.roll_back(index)
        done = sweep(self._drivers)
        self._live.faults.clear()
        return done


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


def sweep(drivers: Mapping[str, FaultDriver]) -> list[str]:
    """Every driver's leftovers cleared, any run's (a driver serving two kinds is swept
    once); what was done."""
    unique = {id(d): d for d in drivers.values()}
    return [line for driver in unique.values() for line in driver.sweep()]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40]
