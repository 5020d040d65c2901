"""Honest semantics: each verdict rule shown failing where it must, not only passing."""

from __future__ import annotations

from pathlib import Path

from chaos.experiment import Hypothesis, Recovery, load_experiment, parse_experiment
from chaos.probes import Evidence, MetricsPoller, StatusPoller, Window, measure
from chaos.run import HypothesisResult, RunResult
from chaos.run.judge import judge
from chaos.run.recovery import recovered_from, recovery_hypotheses
from loadtests.shapes import build, users_at

EXPERIMENT = parse_experiment((Path(__file__).parent / "experiments" /
                               "valid-minimal.yaml").read_text())
TTC = Hypothesis.model_validate({"name": "told", "probe": "time_to_communicate",
                                 "dependency": "payments", "tolerance": {"max": 10}})


def poller(states: list[tuple[float, str]]) -> StatusPoller:
    status = StatusPoller("http://127.0.0.1:1")
    status.samples = [(at, {"payments": state}) for at, state in states]
    return status


def test_time_to_communicate_needs_a_clear_status_before_the_fault() -> None:
    fault = Window("fault", 100.0, 120.0)
    told = Evidence(poller([(99.0, "operational"), (101.0, "down")]), fault_start=100.0)
    result = judge("fault", TTC, fault, [], told)
    assert result.held and result.value == 1.0
    always = Evidence(poller([(99.0, "degraded"), (101.0, "down")]), fault_start=100.0)
    result = judge("fault", TTC, fault, [], always)
    assert not result.held and "status already degraded" in result.note
    unknown = Evidence(poller([(101.0, "down")]), fault_start=100.0)
    assert not judge("fault", TTC, fault, [], unknown).held


def test_every_touched_dependency_is_judged_on_clearing() -> None:
    hypotheses = recovery_hypotheses(EXPERIMENT)
    assert [(h.probe, h.dependency) for h in hypotheses] == [
        ("recovery_time", None), ("time_to_clear", "payments")]
    _, declared = load_experiment("inventory-hard-down")
    assert [h.name for h in recovery_hypotheses(declared) if h.probe == "time_to_clear"] == [
        "status page clears"]  # the experiment's own, not a second one


def row(ts: int, ok: int, checkout_ok: int, checkout_failed: int) -> dict[str, int]:
    return {"ts": ts, "ok": ok, "graceful_error": checkout_failed,
            "checkout_ok": checkout_ok, "checkout_graceful_error": checkout_failed}


def test_recovery_is_judged_on_checkouts_by_default() -> None:
    # Browsing is fine from the first second; checkouts fail for 4 s, then succeed.
    rows = [row(100 + i, ok=50, checkout_ok=0 if i < 4 else 2,
                checkout_failed=2 if i < 4 else 0) for i in range(12)]
    assert recovered_from(rows, 100.0, Recovery()) == 104.0
    assert recovered_from(rows, 100.0, Recovery(scope="all", success_ratio=0.9)) == 100.0
    assert recovered_from(rows[:6], 100.0, Recovery()) is None  # no whole window yet
    # A light load: one checkout every other second; the window grows to hold three.
    sparse = [row(200 + i, ok=5, checkout_ok=i % 2, checkout_failed=0) for i in range(12)]
    assert recovered_from(sparse, 200.0, Recovery()) == 200.0
    assert recovered_from(sparse[:5], 200.0, Recovery()) is None


def test_a_run_that_did_not_complete_scores_zero() -> None:
    held = HypothesisResult("fault", "h", "ungraceful", "at most 0", 0.0, True, 1.0)
    for verdict, score in (("passed", 100.0), ("aborted", 0.0), ("error", 0.0),
                           ("not_run", 0.0)):
        result = RunResult(EXPERIMENT, "x.yaml", Path("/tmp"), verdict=verdict, results=[held])
        assert result.score == score, verdict


def test_gate_scaling_keeps_the_flash_sale_fault_on_the_spike() -> None:
    _, flagship = load_experiment("flash-sale-payments-down")

    def stages_hit(experiment: object) -> set[str]:
        exp = flagship if experiment is None else experiment
        stages = build("labor-day", exp.load.users, exp.planned_seconds() + 1)  # type: ignore
        start = exp.fault_at()  # type: ignore[attr-defined]
        end = start + exp.faults[0].duration  # type: ignore[attr-defined]
        return {hit[1] for t in range(int(start), int(end))
                if (hit := users_at(stages, t)) is not None}

    assert "flash-sale spike" in stages_hit(flagship)
    scaled = flagship.scaled(0.4)
    assert scaled.planned_seconds() < flagship.planned_seconds()
    assert "flash-sale spike" in stages_hit(scaled)
    share = flagship.fault_at() / flagship.planned_seconds()
    assert abs(scaled.fault_at() / scaled.planned_seconds() - share) < 0.01


def test_shop_metric_rate_measures_a_counter_over_the_window() -> None:
    key = ("shop_checkout_outcomes_total", frozenset({("outcome", "success")}))
    metrics = MetricsPoller("http://127.0.0.1:1/metrics")
    metrics.samples = [(100.0, {key: 10.0}), (102.0, {key: 20.0}), (104.0, {key: 40.0}),
                       (110.0, {key: 99.0})]
    hypothesis = Hypothesis.model_validate({
        "name": "checkouts per second", "probe": "shop_metric_rate",
        "metric": "shop_checkout_outcomes", "labels": {"outcome": "success"},
        "tolerance": {"min": 1}})
    context = Evidence(StatusPoller("http://127.0.0.1:1"), shop_metrics=metrics)
    assert measure(hypothesis, Window("fault", 100.0, 105.0), [], context) == 7.5
    assert measure(hypothesis, Window("fault", 105.0, 109.0), [], context) is None
    context = Evidence(StatusPoller("http://127.0.0.1:1"))
    assert measure(hypothesis, Window("fault", 100.0, 105.0), [], context) is None
