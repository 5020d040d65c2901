"""The harness's own metrics, for Prometheus: which experiment runs, its phase, each active
fault and what the load's shoppers saw, so Grafana can draw fault windows from a query.

One exporter per harness process (a gate runs its experiments one after another in one
process); each run attaches itself while it runs. Labels hold only bounded values: the
experiment's name (a catalog file), a phase, a dependency, a toxic type, an attribute name,
a response class. Attribute values are sample values, never labels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from demo_shop.hosts import LoopbackHosts
from loadtests.classify import CLASSES

from .errors import StackError
from .observe import PrometheusError, query_key_series, wait_for_scrape
from .run.journal import Live, RunResult
from .serving import OnePerProcess
from .stack import Stack
from .vocabulary import RUN_PHASES, STATUS_NAME


class HarnessCollector(Collector):
    """Reads the attached run at scrape time; nothing is copied while the run goes on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: tuple[Live, RunResult] | None = None
        self._name = ""
        # (experiment, dependency) -> {"time_to_communicate": s, "time_to_clear": s,
        # "time_to_page": s, "time_to_resolve": s}: the last measurement of each, kept
        # after the run so the last scrape cannot miss it.
        self._communication: dict[tuple[str, str], dict[str, float | None]] = {}

    def attach(self, live: Live, result: RunResult, name: str) -> None:
        """Export this run until detach()."""
        with self._lock:
            self._run, self._name = (live, result), name

    def detach(self) -> None:
        """The run is over: only chaos_experiment_running 0 remains."""
        with self._lock:
            if self._run is not None:
                for dependency, values in self._run[1].communication.items():
                    self._communication[(self._name, dependency)] = dict(values)
                for dependency, values in self._run[1].paging.get("dependencies", {}).items():
                    self._communication.setdefault((self._name, dependency), {}).update(values)
            self._run, self._name = None, ""

    def collect(self) -> Iterator[Any]:
        with self._lock:
            run, name = self._run, self._name
            communication = dict(self._communication)
            if run is not None:  # the runner adds to these as it goes: read copies
                for dependency, values in list(run[1].communication.items()):
                    communication[(name, dependency)] = dict(values)
                for dependency, values in list(run[1].paging.get("dependencies", {}).items()):
                    communication.setdefault((name, dependency), {}).update(values)
        running = GaugeMetricFamily("chaos_experiment_running",
                                    "1 while an experiment runs in this harness")
        running.add_metric([], 1.0 if run else 0.0)
        yield running
        for probe, help_text in (
            ("time_to_communicate", "Seconds from a fault until /api/status named the "
                                    "dependency, in the last run of each experiment"),
            ("time_to_clear", "Seconds from the last rollback until /api/status cleared "
                              "the dependency, in the last run of each experiment"),
            ("time_to_page", "Seconds from a fault until Alertmanager paged the harness "
                             "with an alert naming the dependency, in the last run of each "
                             "experiment"),
            ("time_to_resolve", "Seconds from the last rollback until Alertmanager said "
                                "the dependency's page resolved, in the last run of each "
                                "experiment"),
        ):
            family = GaugeMetricFamily(f"chaos_{probe}_seconds", help_text,
                                       labels=["experiment", "dependency"])
            for (experiment, dependency), values in sorted(communication.items()):
                if values.get(probe) is not None:
                    family.add_metric([experiment, dependency], float(values[probe] or 0))
            yield family
        if run is None:
            return
        live = run[0]
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
        for fault, target in list(live.faults):
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


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not news."""


class Exporter(OnePerProcess):
    """The HTTP endpoint on loopback; started once per process, on first use."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.collector = HarnessCollector()
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.collector)
        # Only Host: 127.0.0.1:<port> (or localhost): no DNS rebinding into the run's data.
        self.server = make_server("127.0.0.1", port,
                                  LoopbackHosts(make_wsgi_app(self.registry)),
                                  ThreadingWSGIServer, handler_class=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving (tests; a CLI process simply exits)."""
        self.server.shutdown()
        self.server.server_close()


class ExporterObserver:
    """A run observer that serves the run on the harness's metrics endpoint; after the run,
    it waits for Prometheus (when the stack runs one) to scrape the last figures before
    letting go. A taken port is a note in the report, not a reason to skip the run."""

    def __init__(self, port: int, prometheus_url: Callable[[], str | None]) -> None:
        self._port = port
        self._prometheus_url = prometheus_url
        self._exporter: Exporter | None = None

    def started(self, name: str, live: Live, result: RunResult) -> None:
        try:
            self._exporter = Exporter.shared(self._port)
        except OSError as exc:
            result.notes.append(
                f"harness metrics not exported: port {self._port} is taken "
                f"({exc.strerror}); set CC_HARNESS_PORT to a free port")
            return
        self._exporter.collector.attach(live, result, name)

    def update(self, live: Live) -> None:
        pass

    def ended(self, result: RunResult) -> None:
        if self._exporter is None:
            return
        # The run's last figures (time-to-communicate among them) reach Prometheus before
        # this process, and its endpoint, may go away.
        url = self._prometheus_url()
        if url is not None and result.ended is not None and \
                not wait_for_scrape(url, "harness", result.ended):
            result.notes.append("Prometheus did not scrape the harness after the run")
        self._exporter.collector.detach()
        self._exporter = None


class PrometheusSeries:
    """A run observer that keeps the run's key series from the stack's Prometheus (when it
    runs) for the report's charts."""

    def __init__(self, prometheus_url: Callable[[], str | None]) -> None:
        self._prometheus_url = prometheus_url

    def started(self, name: str, live: Live, result: RunResult) -> None:
        pass

    def update(self, live: Live) -> None:
        pass

    def ended(self, result: RunResult) -> None:
        url = self._prometheus_url()
        if url is None or not result.rows:
            return
        try:
            result.prometheus = query_key_series(url, result.rows[0]["ts"], result.ended)
        except PrometheusError as exc:
            result.notes.append(f"Prometheus series not drawn: {exc}")


def stack_observers(stack: Stack) -> list[ExporterObserver | PrometheusSeries]:
    """The observers a CLI run has: the harness's metrics, then the Prometheus series (in
    this order: the last scrape is waited for before the series are read)."""

    def prometheus_url() -> str | None:
        try:
            return stack.prometheus_url()
        except StackError:  # an unreadable state file: the report draws the load's only
            return None

    return [ExporterObserver(stack.config.ports.harness, prometheus_url),
            PrometheusSeries(prometheus_url)]
