"""The harness's own metrics, for Prometheus: which experiment runs, its phase, each active
fault and what the load's shoppers saw, so Grafana can draw fault windows from a query.

One exporter per harness process (a gate runs its experiments one after another in one
process); each run attaches itself while it runs. Labels hold only bounded values: the
experiment's name (a catalog file), a phase, a dependency, a toxic type, an attribute name,
a response class. Attribute values are sample values, never labels.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from loadtests.classify import CLASSES

from .vocabulary import RUN_PHASES, STATUS_NAME

if TYPE_CHECKING:
    from .runner import Runner



class HarnessCollector(Collector):
    """Reads the attached runner at scrape time; nothing is copied while the run goes on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._name = ""
        # (experiment, dependency) -> {"time_to_communicate": s, "time_to_clear": s}: the
        # last measurement of each, kept after the run so the last scrape cannot miss it.
        self._communication: dict[tuple[str, str], dict[str, float | None]] = {}

    def attach(self, runner: Runner, name: str) -> None:
        """Export this run until detach()."""
        with self._lock:
            self._runner, self._name = runner, name

    def detach(self) -> None:
        """The run is over: only chaos_experiment_running 0 remains."""
        with self._lock:
            if self._runner is not None:
                for dependency, values in self._runner.result.communication.items():
                    self._communication[(self._name, dependency)] = dict(values)
            self._runner, self._name = None, ""

    def collect(self) -> Iterator[Any]:
        with self._lock:
            runner, name = self._runner, self._name
            communication = dict(self._communication)
            if runner is not None:
                for dependency, values in runner.result.communication.items():
                    communication[(name, dependency)] = dict(values)
        running = GaugeMetricFamily("chaos_experiment_running",
                                    "1 while an experiment runs in this harness")
        running.add_metric([], 1.0 if runner else 0.0)
        yield running
        for probe, help_text in (
            ("time_to_communicate", "Seconds from a fault until /api/status named the "
                                    "dependency, in the last run of each experiment"),
            ("time_to_clear", "Seconds from the last rollback until /api/status cleared "
                              "the dependency, in the last run of each experiment"),
        ):
            family = GaugeMetricFamily(f"chaos_{probe}_seconds", help_text,
                                       labels=["experiment", "dependency"])
            for (experiment, dependency), values in sorted(communication.items()):
                if values.get(probe) is not None:
                    family.add_metric([experiment, dependency], float(values[probe] or 0))
            yield family
        if runner is None:
            return
        live = runner.live
        info = GaugeMetricFamily("chaos_experiment_phase",
                                 "1 for the phase the experiment is in, 0 for the others",
                                 labels=["experiment", "phase"])
        for phase in RUN_PHASES:
            info.add_metric([name, phase], 1.0 if live.phase == phase else 0.0)
        yield info
        active = GaugeMetricFamily(
            "chaos_fault_active", "1 for each fault active now, per dependency and toxic",
            labels=["experiment", "fault", "target", "dependency", "toxic", "stream"])
        attributes = GaugeMetricFamily(
            "chaos_fault_attribute", "Each attribute of an active fault (latency ms, rate...)",
            labels=["experiment", "target", "dependency", "toxic", "attribute"])
        for fault, target in runner.active_faults():
            dependency = STATUS_NAME[target]
            active.add_metric([name, fault.name, target, dependency, fault.toxic, fault.stream],
                              1.0)
            settings = {k: float(v) for k, v in fault.attributes.items()}
            if fault.toxicity < 1.0:
                settings["toxicity"] = fault.toxicity
            for key, setting in sorted(settings.items()):
                attributes.add_metric([name, target, dependency, fault.toxic, key], setting)
        yield active
        yield attributes
        responses = CounterMetricFamily(
            "chaos_load_responses", "Answers the load's shoppers got, by class",
            labels=["experiment", "class"])
        for cls in CLASSES:
            responses.add_metric([name, cls], float(live.totals.get(cls, 0)))
        yield responses
        rate = GaugeMetricFamily("chaos_load_requests_per_second",
                                 "Requests the load made in its last second",
                                 labels=["experiment"])
        rate.add_metric([name], float(live.last_row.get("requests", 0)))
        yield rate
        elapsed = GaugeMetricFamily("chaos_experiment_elapsed_seconds",
                                    "Seconds since the load started", labels=["experiment"])
        elapsed.add_metric([name], max(0.0, live.elapsed()))
        yield elapsed


class Exporter:
    """The HTTP endpoint on loopback; started once per process, on first use."""

    _lock = threading.Lock()
    _instance: Exporter | None = None

    def __init__(self, port: int) -> None:
        self.port = port
        self.collector = HarnessCollector()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.collector)
        self.server, self.thread = start_http_server(port, addr="127.0.0.1",
                                                     registry=self.registry)

    @classmethod
    def shared(cls, port: int) -> Exporter:
        """The process's exporter on this port; OSError when the port is taken."""
        with cls._lock:
            if cls._instance is None or cls._instance.port != port:
                if cls._instance is not None:
                    cls._instance.close()
                    cls._instance = None
                cls._instance = cls(port)
            return cls._instance

    def close(self) -> None:
        """Stop serving (tests; a CLI process simply exits)."""
        self.server.shutdown()
        self.server.server_close()
