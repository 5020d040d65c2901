"""The harness's metrics: phase, active faults with bounded labels, the load's classes, and
time-to-communicate kept after the run (a run's live figures handed to the collector)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chaos.experiment import Fault
from chaos.exporter import CLASSES, HarnessCollector
from chaos.run import Live, RunResult
from chaos.vocabulary import RUN_PHASES
from tests.unit.test_runner import EXPERIMENT


def samples(collector: HarnessCollector) -> dict[str, list[Any]]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_a_running_experiment_exports_its_phase_faults_and_answers() -> None:
    latency = Fault(name="payments slower", target=["payments", "postgres"], toxic="latency",
                    attributes={"latency": 300, "jitter": 50}, toxicity=0.5, duration=5)
    live = Live(phase="method", totals={"ok": 40, "graceful_error": 3, "ungraceful": 1},
                last_row={"requests": 25}, faults=[(latency, "payments"), (latency, "postgres")])
    collector = HarnessCollector()
    collector.attach(live, RunResult(EXPERIMENT, "x/payments-slow.yaml", Path(".")),
                     "payments-slow")
    got = samples(collector)
    assert [s.value for s in got["chaos_experiment_running"]] == [1.0]
    phases = {s.labels["phase"]: s.value for s in got["chaos_experiment_phase"]}
    assert set(phases) == set(RUN_PHASES) and phases["method"] == 1 and sum(phases.values()) == 1
    active = {(s.labels["target"], s.labels["dependency"]) for s in got["chaos_fault_active"]}
    assert active == {("payments", "payments"), ("postgres", "database")}
    attributes = {(s.labels["target"], s.labels["attribute"]): s.value
                  for s in got["chaos_fault_attribute"]}
    assert attributes[("payments", "latency")] == 300
    assert attributes[("postgres", "toxicity")] == 0.5
    answers = {s.labels["class"]: s.value for s in got["chaos_load_responses_total"]}
    assert set(answers) == set(CLASSES) and answers["ungraceful"] == 1 and answers["ok"] == 40
    assert got["chaos_load_requests_per_second"][0].value == 25
    # No label carries a value that grows without bound (numbers, ids, free text).
    for name, values in got.items():
        for s in values:
            for label, value in s.labels.items():
                assert not re.fullmatch(r"[\d.]+", value), (name, label, value)


def test_after_the_run_only_time_to_communicate_stays() -> None:
    result = RunResult(EXPERIMENT, "x/redis-down.yaml", Path("."))
    collector = HarnessCollector()
    collector.attach(Live(phase="audit"), result, "redis-down")
    result.communication["cache"] = {"time_to_communicate": 0.8, "time_to_clear": None}
    collector.detach()
    got = samples(collector)
    assert [s.value for s in got["chaos_experiment_running"]] == [0.0]
    assert "chaos_fault_active" not in got and "chaos_load_responses_total" not in got
    (told,) = got["chaos_time_to_communicate_seconds"]
    assert told.labels == {"experiment": "redis-down", "dependency": "cache"}
    assert told.value == 0.8
    assert "chaos_time_to_clear_seconds" not in got  # never cleared: no made-up zero

