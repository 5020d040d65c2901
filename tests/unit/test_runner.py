"""The runner's pure parts: fault timeline, stop conditions, verdicts, JUnit, live rows."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.experiment import Fault, StopCondition, parse_experiment
from chaos.report import junit_suite, markdown, write_junit
from chaos.run import HypothesisResult, RunResult
from chaos.run.method import due, stop_condition_met
from loadtests.timeline import Timeline, histogram_percentile

EXPERIMENT = parse_experiment((Path(__file__).parent / "experiments" /
                               "valid-minimal.yaml").read_text())


def fault(start: float, duration: float, name: str = "f") -> Fault:
    return Fault(name=name, target=["payments"], toxic="latency", attributes={"latency": 1},
                 start=start, duration=duration)


def replay(faults: list[Fault], ticks: list[float]) -> list[tuple[float, int, str]]:
    """Drive `due` like the runner's loop does, recording every action with its time."""
    started: set[int] = set()
    ended: set[int] = set()
    log = []
    for t in ticks:
        for index, action in due(faults, t, started, ended):
            (started if action == "inject" else ended).add(index)
            log.append((t, index, action))
    return log


def test_overlapping_faults_start_and_stop_on_their_own_timeline() -> None:
    faults = [fault(0, 10, "a"), fault(5, 10, "b")]
    log = replay(faults, [x / 2 for x in range(0, 40)])
    assert log == [(0.0, 0, "inject"), (5.0, 1, "inject"), (10.0, 0, "roll_back"),
                   (15.0, 1, "roll_back")]


def test_a_fault_whose_window_passed_between_ticks_is_still_rolled_back() -> None:
    log = replay([fault(1, 1)], [0.0, 5.0])
    assert log == [(5.0, 0, "inject"), (5.0, 0, "roll_back")]


def rows(*specs: tuple[int, int, int]) -> list[dict]:
    return [{"requests": r, "graceful_error": g, "ungraceful": u} for r, g, u in specs]


def test_ungraceful_stop_condition_counts_the_whole_method() -> None:
    condition = StopCondition(name="too many", probe="ungraceful", above=5)
    assert stop_condition_met([condition], rows((10, 0, 3), (10, 0, 2))) is None
    met = stop_condition_met([condition], rows((10, 0, 3), (10, 0, 3)))
    assert met == (condition, 6.0)


def test_error_ratio_must_hold_for_the_whole_span() -> None:
    condition = StopCondition.model_validate(
        {"name": "errors", "probe": "error_ratio", "above": 0.5, "for": "3s"})
    assert stop_condition_met([condition], rows((10, 9, 0), (10, 2, 0), (10, 9, 0))) is None
    assert stop_condition_met([condition], rows((10, 9, 0), (10, 6, 1), (10, 9, 0)))
    assert stop_condition_met([condition], rows((10, 9, 0), (10, 9, 0))) is None  # only 2 s


def result_with(*held: tuple[str, bool, float], verdict: str = "failed") -> RunResult:
    result = RunResult(EXPERIMENT, "x.yaml", Path("/tmp"), verdict=verdict, reason="r")
    result.results = [HypothesisResult(phase, f"h{i}", "ungraceful", "at most 0",
                                       0.0 if ok else 3.0, ok, weight)
                      for i, (phase, ok, weight) in enumerate(held)]
    return result


def test_score_is_the_weighted_share_of_hypotheses_that_held() -> None:
    result = result_with(("baseline", True, 1), ("fault", False, 3), ("audit", True, 1))
    assert result.score == 40.0
    assert result.phase_verdicts() == {"baseline": True, "fault": False, "audit": True}


@pytest.mark.parametrize("verdict,code", [("passed", 0), ("failed", 1), ("aborted", 1),
                                          ("not_run", 2), ("error", 2)])
def test_exit_codes(verdict: str, code: int) -> None:
    assert result_with(verdict=verdict).exit_code == code


def test_junit_has_one_case_per_hypothesis_and_names_the_failure(tmp_path: Path) -> None:
    result = result_with(("baseline", True, 1), ("fault", False, 1))
    path = tmp_path / "junit.xml"
    write_junit([junit_suite(result, "exp")], path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "exp"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("exp.baseline", "h0"), ("exp.fault", "h1")]
    failure = cases[1].find("failure")
    assert failure is not None and "measured 3, wanted at most 0" in failure.get("message", "")


def test_an_aborted_run_adds_a_failing_case_that_says_why(tmp_path: Path) -> None:
    result = result_with(("baseline", True, 1), verdict="aborted")
    result.reason = "stop condition met: errors"
    suite = junit_suite(result, "exp")
    run_case = next(c for c in suite.findall("testcase") if c.get("name") == "run completed")
    failure = run_case.find("failure")
    assert failure is not None and failure.get("message") == "stop condition met: errors"
    assert "ABORTED" in markdown(result, "exp")


def test_live_timeline_appends_only_finished_seconds_once(tmp_path: Path) -> None:
    timeline, live = Timeline(), tmp_path / "live.jsonl"
    for at, ms in ((100.1, 5), (100.5, 40), (101.2, 700), (102.9, 12)):
        timeline.record("ok", ms, now=at)
    assert timeline.flush_live(live, lag_seconds=1, now=102.5) == 1  # only second 100
    assert timeline.flush_live(live, lag_seconds=1, now=102.6) == 0
    assert timeline.flush_live(live, lag_seconds=1, now=104.0) == 2
    written = [json.loads(line) for line in live.read_text().splitlines()]
    assert [r["ts"] for r in written] == [100, 101, 102]
    assert written[0]["hist"] == {"5": 1, "50": 1} and written[1]["hist"] == {"750": 1}


def test_the_seconds_not_yet_final_are_written_fresh_beside_the_live_file(
        tmp_path: Path) -> None:
    timeline, live = Timeline(), tmp_path / "live.jsonl"
    for at in (100.1, 101.2, 102.3, 103.4):
        timeline.record("ok", 5, now=at)
    timeline.set_users(7, now=100.0)
    assert timeline.flush_live(live, lag_seconds=3, now=104.0, fresh_lag=1) == 1
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert [r["ts"] for r in fresh] == [101, 102]  # 103 is not over at 104.0 - 1
    assert all(r["users"] == 7 for r in fresh)  # carried from before the fresh seconds
    assert timeline.flush_live(live, lag_seconds=3, now=106.0, fresh_lag=1) == 2
    assert [r["ts"] for r in json.loads((tmp_path / "fresh.json").read_text())] == [103, 104]


def test_histogram_percentiles_are_bucket_edges() -> None:
    hist = {"50": 90, "500": 9, "5000": 1}
    assert histogram_percentile(hist, 0.5) == 50.0
    assert histogram_percentile(hist, 0.95) == 500.0
    assert histogram_percentile(hist, 0.999) == 5000.0


def test_a_reused_report_folder_does_not_hand_its_old_load_files_to_the_new_run(
    tmp_path: Path,
) -> None:
    """The last run's stop file would end the new load at once (found by a gate re-run)."""
    from chaos.run import Runner
    from chaos.stack import Ports, Stack, StackConfig

    out = tmp_path / "report"
    (out / "load").mkdir(parents=True)
    (out / "load" / "stop").write_text("")
    (out / "load" / "timeline.jsonl").write_text('{"ts": 1}\n')
    config = StackConfig(run_dir=tmp_path / "run", ports=Ports.free())  # nothing listens
    (tmp_path / "run").mkdir()
    result = Runner.on_stack(EXPERIMENT, "x.yaml", Stack(config), out).run()
    assert result.verdict == "error"  # no stack: the run cannot be made
    assert not (out / "load" / "stop").exists()
    assert not (out / "load" / "timeline.jsonl").exists()


def test_checkout_latency_is_judged_on_checkouts_alone() -> None:
    """A latency hypothesis with scope: checkout must not be diluted by fast page views."""
    from chaos.probes import WindowStats

    timeline = Timeline()
    for _ in range(50):
        timeline.record("ok", 4.0, now=100.0)  # pages
    for _ in range(5):
        timeline.record("degraded", 2800.0, checkout=True, now=100.0)
    stats = WindowStats.of(timeline.rows())
    assert stats.latency(50) == 5.0
    assert stats.latency(50, "checkout") == 3000.0
    assert stats.summary()["checkout_p99_ms"] == 3000.0
