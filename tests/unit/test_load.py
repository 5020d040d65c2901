"""Load shapes over a whole compressed day, the timeline, and `make load` input checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.run import LoadInputError, parse_duration, plan
from loadtests.shapes import Ticker, build, users_at
from loadtests.timeline import Timeline, TimelineReportInvalid, percentile


def day_curve(peak: int = 200, day: float = 60.0) -> list[tuple[float, int, str]]:
    ticker = Ticker("labor-day", peak, day, spawn_rate=50)
    curve, t = [], 0.0
    while (wanted := ticker.tick(t)) is not None:
        curve.append((t, wanted[0], ticker.label))
        t += 0.1
    return curve


def test_labor_day_runs_the_whole_day_and_stops_by_itself() -> None:
    curve = day_curve(day=60.0)
    assert curve[-1][0] == pytest.approx(59.9, abs=0.11)
    assert Ticker("labor-day", 200, 60.0, 50).tick(60.0) is None


def test_labor_day_has_baseline_ramp_spike_peak_and_decline() -> None:
    curve = day_curve(peak=200, day=60.0)
    by_label: dict[str, list[int]] = {}
    for _, users, label in curve:
        by_label.setdefault(label, []).append(users)
    assert set(by_label["quiet baseline"]) == {30}
    morning = by_label["morning ramp"]
    assert morning == sorted(morning) and morning[-1] == 90
    assert set(by_label["sustained peak"]) == {200}
    evening = by_label["evening decline"]
    assert evening == sorted(evening, reverse=True) and evening[-1] <= 45
    assert max(u for _, u, _ in curve) == 200


def test_flash_sale_spike_reaches_several_times_baseline_within_a_compressed_minute() -> None:
    day = 3600.0  # an hour-long rehearsal: one compressed minute is 60 s
    ticker = Ticker("labor-day", 300, day, spawn_rate=50)
    spike = next(s for s in ticker.stages if s.label == "flash-sale spike")
    before = next(s for s in ticker.stages if s.label == "before the hour")
    baseline = next(s for s in ticker.stages if s.label == "quiet baseline")
    assert spike.until - before.until <= 0.02 * day + 1e-9 * day  # 72 s of 3600
    assert spike.users >= 5 * baseline.users


def test_same_shape_scales_from_ci_minute_to_rehearsal_hour() -> None:
    short = [users_at(build("labor-day", 100, 60), t * 60 / 100) for t in range(100)]
    long = [users_at(build("labor-day", 100, 3600), t * 3600 / 100) for t in range(100)]
    assert [label for _, label in short] == [label for _, label in long]
    assert all(abs(a - b) <= 1 for (a, _), (b, _) in zip(short, long, strict=True))  # rounding


def test_steady_and_ramp() -> None:
    assert {users_at(build("steady", 25, 10), t)[0] for t in (0, 5, 9.9)} == {25}
    ramp = [users_at(build("ramp", 100, 10), t)[0] for t in (0.0, 4.0, 7.9, 9.0)]
    assert ramp[0] <= 2 and ramp[1] == 50 and ramp[2] >= 98 and ramp[3] == 100
    assert users_at(build("steady", 25, 10), 10) is None


@pytest.mark.parametrize("profile,users,duration", [("weekend", 10, 60), ("steady", 0, 60),
                                                    ("ramp", 10, 0)])
def test_bad_shape_parameters_are_refused(profile: str, users: int, duration: float) -> None:
    with pytest.raises(ValueError):
        build(profile, users, duration)


def test_timeline_merges_workers_and_fills_gaps() -> None:
    master, worker = Timeline(), Timeline()
    worker.record("ok", 10.0, now=1000.2)
    worker.record("graceful_error", 30.0, checkout=True, now=1000.7)
    worker.record("ok", 20.0, now=1002.1)
    master.merge(worker.drain())
    master.set_users(5, now=1000.0)
    rows = master.rows()
    assert [r["t"] for r in rows] == [0, 1, 2]
    assert rows[0]["requests"] == 2 and rows[0]["graceful_error"] == 1 and rows[0]["checkouts"] == 1
    assert rows[1]["requests"] == 0 and rows[1]["users"] == 5
    assert rows[0]["checkout_hist"] == {"50": 1}  # the checkout's own latency, merged
    assert worker.drain() == {"counts": {}, "latencies": {}, "checkouts": {},
                              "checkout_latencies": {}, "reclassed": {},
                              "reclassed_checkouts": {}}


def test_a_page_judged_again_in_a_later_report_moves_between_classes() -> None:
    master, worker = Timeline(), Timeline()
    worker.record("ok", 10.0, checkout=True, now=1000.2)
    master.merge(worker.drain())
    worker.reclass(1000, "ok", "ungraceful", checkout=True)  # the banner was wrong
    report = worker.drain()
    assert all(n >= 0 for by_class in report["counts"].values() for n in by_class.values())
    master.merge(report)
    row = master.rows()[0]
    assert (row["ok"], row["ungraceful"], row["checkout_ungraceful"]) == (0, 1, 1)
    local = Timeline()  # one process: its own moves apply when it writes rows
    local.record("ok", 10.0, now=1000.2)
    local.reclass(1000, "ok", "ungraceful")
    assert local.rows()[0]["ungraceful"] == 1


@pytest.mark.parametrize("forged", [
    {"counts": {"1000": {"ok": -500}}},  # a negative count would hide failures
    {"counts": {"1000": {"totally_fine": 9}}},
    {"latencies": {"1000": [-1.0]}},
    {"latencies": {"1000": ["fast"]}},
    {"reclassed": {"1000": {"ungraceful>ok": 50}}} | {"counts": {"1000": {"nope": 1}}},
    {"reclassed": {"1000": {"ungraceful>great": 1}}},
    {"surprise": {}},
    ["not", "a", "report"],
])
def test_a_forged_worker_report_is_refused_whole(forged: object) -> None:
    master = Timeline()
    master.record("ungraceful", 10.0, now=1000.2)
    with pytest.raises(TimelineReportInvalid):
        master.merge(forged)
    assert master.rows()[0]["ungraceful"] == 1 and master.rows()[0]["requests"] == 1


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (
        50.0, 95.0, 99.0)
    assert percentile([], 0.5) == 0.0


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("kwargs,message", [
    ({"profile": "black-friday"}, "PROFILE"),
    ({"users": "-5"}, "USERS"),
    ({"users": "many"}, "USERS"),
    ({"duration": "soon"}, "DURATION"),
    ({"processes": "0"}, "PROCESSES"),
    ({"host": "http://10.0.0.5:8000"}, "loopback"),
])
def test_bad_load_input_names_what_to_fix(kwargs: dict, message: str) -> None:
    args = {"host": "http://127.0.0.1:8000", "profile": "steady", "users": "10",
            "duration": "60s", "processes": "1", "run_dir": Path("/tmp/x"), **kwargs}
    with pytest.raises(LoadInputError, match=message):
        plan(**args)


def test_processes_use_locusts_own_distributed_mode() -> None:
    cmd = plan("http://127.0.0.1:8000", "labor-day", "50", "2m", "2", Path("/tmp/x")).command()
    assert cmd[cmd.index("--processes") + 1] == "2" and "-t" in cmd and "--headless" in cmd
    assert cmd[cmd.index("--master-bind-host") + 1] == "127.0.0.1"  # never all interfaces


def test_a_held_shape_keeps_its_last_users_until_the_harness_stops_the_load() -> None:
    held = Ticker("labor-day", 200, 60.0, 50, hold=True)
    last = held.stages[-1].users
    assert held.tick(60.0) == (last, 50) and held.tick(600.0) == (last, 50)
    assert Ticker("steady", 20, 30.0, 10).tick(31.0) is None  # `make load` ends with its shape


def test_the_load_outlasts_the_longest_recovery_an_experiment_may_wait_for() -> None:
    """A run that never recovers waits deadline + window + 3 s after the last rollback,
    then judges an after window: its load must still be running (found by a run that
    ended "the load generator stopped early" instead of a verdict)."""
    from chaos.experiment import load_experiment

    _, exp = load_experiment("postgres-hard-down")
    scaled = exp.scaled(0.2)
    for e in (exp, scaled):
        after_rollback = e.load.warmup + e.steady_state.duration + e.method_span
        worst = max(e.recovery.deadline + e.recovery.window + 3, e.recovery.clear_within)
        assert e.load_seconds() >= after_rollback + worst + 1 + e.steady_state.duration + 5
        assert e.planned_seconds() < e.load_seconds()  # the shape itself is unchanged


def test_a_master_for_workers_started_apart_waits_for_them_on_loopback() -> None:
    cmd = plan("http://127.0.0.1:8000", "steady", "50", "2m", "1", Path("/tmp/x"),
               workers_expect=2, master_port=6123).command()
    assert "--master" in cmd and "--processes" not in cmd
    assert cmd[cmd.index("--expect-workers") + 1] == "2"
    assert cmd[cmd.index("--master-bind-host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--master-bind-port") + 1] == "6123"
    with pytest.raises(LoadInputError, match="WORKERS_EXPECT"):
        plan("http://127.0.0.1:8000", "steady", "50", "2m", "2", Path("/tmp/x"),
             workers_expect=2)


def test_evidence_is_written_in_batches_and_a_workers_travels_whole(tmp_path: Path) -> None:
    from loadtests.evidence import Evidence

    local = Evidence(tmp_path)
    for n in range(3):
        local.write(idempotency_key=f"k{n}", status=201)
    assert not list(tmp_path.glob("evidence-*.jsonl"))  # nothing written per checkout
    assert local.flush() == 3 and local.flush() == 0
    worker = Evidence(tmp_path / "worker")
    worker.write(idempotency_key="w1", status=503)
    sent = worker.drain()  # what the worker's report carries
    assert worker.drain() == [] and not (tmp_path / "worker").exists()
    assert local.flush("host-a_1f", sent) == 1
    written = sorted(p.name for p in tmp_path.glob("evidence-*.jsonl"))
    assert len(written) == 2 and "evidence-host-a_1f.jsonl" in written


@pytest.mark.parametrize("forged", [
    {"idempotency_key": "k"},  # not a list
    [{"status": 201}],  # no key
    [{"idempotency_key": 7}],
    [{"idempotency_key": "k", "order_id": {"nested": 1}}],
    ["a line"],
])
def test_a_forged_workers_evidence_is_refused_whole(forged: object) -> None:
    from loadtests.evidence import EvidenceInvalid, valid_evidence

    with pytest.raises(EvidenceInvalid):
        valid_evidence(forged)
    assert valid_evidence([{"idempotency_key": "k", "status": 201, "charged": None}])
