"""The gate's running table (one line per experiment as it ends, and the total), its
smoke set, and how its lanes are dealt."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from chaos.experiment import catalog
from chaos.lanes import Lane, _merge, _relay, deal
from chaos.report import write_junit
from chaos.session import gate_line, gate_total
from chaos.vocabulary import REFERENCE_TARGETS, TARGETS


def test_a_line_says_verdict_score_and_wall_time() -> None:
    line = gate_line(3, 41, "inventory-hard-down", "failed", 62.5, 75.25)
    assert line.split() == ["3/41", "inventory-hard-down", "failed", "62", "1:15.2"]


def test_the_total_counts_what_did_not_pass_and_the_time() -> None:
    assert gate_total(["passed", "failed", "passed"], 180.0) == \
        "gate: 2 of 3 passed (1 failed, aborted, errored or not run), 3 min 0 s"
    assert gate_total(["passed"], 42.0) == "gate: 1 of 1 passed, 0 min 42 s"


def test_the_total_says_skipped_apart_and_never_as_passed() -> None:
    line = gate_total(["passed", "skipped", "failed", "skipped"], 61.0, " over 3 lanes")
    assert line == ("gate: 1 of 4 passed (1 failed, aborted, errored or not run), "
                    "2 skipped (not in the target), 1 min 1 s over 3 lanes")


def test_the_smoke_set_covers_every_dependency_and_every_fault_class_once() -> None:
    experiments = catalog()
    # A fault class is what the per-dependency experiments are named after (the matrix of
    # `<target>-<class>` files), and the shop-side faults.
    classes = {tag for path, e in experiments for tag in e.tags
               if path.stem.split("-")[0] in TARGETS and path.stem.endswith(tag)}
    classes.add("app-fault")
    smoke = [e for _, e in experiments if "smoke" in e.tags]
    # The smoke set is the reference shop's: each of its dependencies once.
    assert {t for e in smoke for t in e.targets()} == set(REFERENCE_TARGETS)
    covered = Counter(tag for e in smoke for tag in e.tags if tag in classes)
    assert set(covered) == classes and set(covered.values()) == {1}, covered


def test_lanes_get_the_longest_first_and_keep_catalog_order() -> None:
    experiments = catalog()[:9]
    lanes = deal(experiments, 3, 0.4)
    dealt = [path for lane in lanes for path, _ in lane.chosen]
    assert sorted(dealt) == sorted(p for p, _ in experiments)  # each exactly once
    for lane in lanes:
        names = [p.stem for p, _ in lane.chosen]
        assert names == sorted(names)  # the catalog's order
    planned = [sum(e.scaled(0.4).planned_seconds() for _, e in lane.chosen) for lane in lanes]
    longest = max(e.scaled(0.4).planned_seconds() for _, e in experiments)
    assert max(planned) - min(planned) <= longest
    assert len(deal(experiments[:2], 3, 0.4)) == 2  # no empty lane


def test_lanes_reports_merge_in_catalog_order_and_a_missing_run_is_not_passed(
        tmp_path: Path) -> None:
    experiments = catalog()[:3]
    lanes = deal(experiments, 2, 0.4)
    for lane in lanes:
        lane.out = tmp_path / "lanes" / str(lane.index)
        lane.proc = SimpleNamespace(returncode=0)  # type: ignore[assignment]
    ran = [p.stem for p, _ in experiments][:2]  # the third never ran (its lane was killed)
    for lane in lanes:
        for path, _ in lane.chosen:
            if path.stem not in ran:
                continue
            folder = lane.out / path.stem
            folder.mkdir(parents=True)
            (folder / "journal.json").write_text(json.dumps(
                {"verdict": "passed", "score": 100, "started": 0.0, "ended": 30.0}))
            (folder / "summary.md").write_text(f"## {path.stem}\n")
            write_junit([ET.Element("testsuite", name=path.stem, tests="1")],
                        folder / "junit.xml")
    said: list[str] = []
    code = _merge(experiments, lanes, tmp_path, 90.0, said.append)
    assert code == 2  # an experiment without a result is not a pass
    assert [line.split()[1] for line in said[:3]] == [p.stem for p, _ in experiments]
    assert "not run" in said[2] and said[-1].startswith("gate: 2 of 3 passed")
    suites = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ran
    summary = (tmp_path / "summary.md").read_text()
    assert summary.index(ran[0]) < summary.index(ran[1])
    third = experiments[2][0].stem
    assert f"| {ran[0]} | passed | no contract failure | not run |" in summary
    assert f"| {third} | not run | | |" in summary  # in the table, never as passed
    assert (tmp_path / ran[0] / "journal.json").exists()  # moved under the gate's folder


def test_a_lanes_progress_is_relayed_without_its_markup_eaten(tmp_path: Path) -> None:
    lane = Lane(0, log=tmp_path / "0.log")
    lane.log.write_text("1/2 inventory-flaky\n[method] ~12s left · 9 req/s\n"
                        "  1/2 inventory-flaky                          passed   100   0:30.0\n"
                        "half a line")
    said: list[str] = []
    _relay(lane, said.append)
    assert lane.current == "inventory-flaky" and lane.last_progress == "[method] ~12s left"
    assert said == ["lane 0 1/2 inventory-flaky                          passed   100   0:30.0"]
    assert lane.offset < len(lane.log.read_bytes())  # the half line waits for its end


def test_users_replace_the_experiments_shoppers_and_nothing_else(tmp_path, monkeypatch) -> None:
    from chaos.session import run_experiment
    from chaos.stack import Ports, Stack, StackConfig
    from chaos.target import TARGETS_DIR, load_target

    monkeypatch.setenv("CC_HISTORY_FILE", str(tmp_path / "history.jsonl"))
    config = StackConfig(run_dir=tmp_path / "run", ports=Ports.free())
    oscar = load_target(TARGETS_DIR / "oscar.yaml", config)  # no inventory: skipped
    ran = run_experiment("inventory-hard-down", Stack(config), tmp_path / "out",
                         view_for=None, target=oscar, users=77)  # type: ignore[arg-type]
    load = json.loads((tmp_path / "out" / "journal.json").read_text())["experiment"]["load"]
    assert (ran.result.verdict, load["users"], load["spawn_rate"]) == ("skipped", 77, 10)


def test_a_gate_line_per_experiment_says_verdict_what_shoppers_saw_and_the_ledger(
        tmp_path: Path) -> None:
    from chaos.report import gate_markdown

    def ran(name: str, journal: dict, failures: str = "") -> Path:
        folder = tmp_path / name
        (folder / "load").mkdir(parents=True)
        (folder / "journal.json").write_text(json.dumps(journal))
        if failures:
            (folder / "load" / "locust_failures.csv").write_text(
                "Method,Name,Error,Occurrences,First Seen,Last Seen\n" + failures)
        return folder

    hurt = ran("mail-hard-down", {
        "verdict": "failed", "reason": "",
        "hypotheses": [{"name": "no ungraceful answers", "held": False},
                       {"name": "checkouts succeed", "held": True},
                       {"name": "no ungraceful answers", "held": False}],
        "phase_verdicts": {"baseline": True, "fault": False},
        "phase_stats": {"fault": {"checkouts": 16, "checkout_success_ratio": 0.0667}},
        "audit": {"orders": 58, "charges": 78, "violations": [
            {"rule": "orphan charge"}, {"rule": "orphan charge"}]}},
        "POST,/api/checkout/,CatchResponseError('no_request_id'),10,a,b\n"
        "GET,/p,CatchResponseError('past_deadline'),2,a,b\n"
        "GET,/q,CatchResponseError('no_request_id'),4,a,b\n")
    broken = ran("postgres-hard-down", {
        "verdict": "aborted", "reason": "stop condition met", "hypotheses": [],
        "phase_verdicts": {"baseline": False}, "audit": None})
    declined_only = ran("postgres-latency-brownout", {
        "verdict": "passed", "hypotheses": [], "phase_verdicts": {"baseline": True},
        "phase_stats": {"fault": {"checkouts": 1, "checkout_success_ratio": None}},
        "audit": {"orders": 0, "charges": 0, "violations": []}})
    skipped = ran("inventory-hard-down", {"verdict": "skipped",
                                          "reason": "target oscar has no inventory"})
    rows = gate_markdown(["## each\n"], [hurt, broken, declined_only, skipped]).splitlines()
    assert rows[4] == (
        "| mail-hard-down | failed: no ungraceful answers | checkout success 7 % in the "
        "fault; no_request_id: 14, past_deadline: 2 | **orphan charge**: 2 (58 orders, 78 "
        "charges) |")
    assert rows[5] == ("| postgres-hard-down | aborted: stop condition met (before the "
                       "fault) | no contract failure | not run |")
    assert rows[6] == ("| postgres-latency-brownout | passed | no contract failure | clean "
                       "(0 orders, 0 charges) |")  # its one checkout was a decline
    assert rows[7] == "| inventory-hard-down | skipped | target oscar has no inventory | |"
    assert rows[-1] == "## each"
