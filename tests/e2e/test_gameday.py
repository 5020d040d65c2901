"""A short game day on the real stack: the schedule is the seed's, every drawn fault is
injected and rolled back, each window is judged with its catalog hypotheses, and the
timeline says what broke, when shoppers were told and what it put at risk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.faults import HARNESS_PREFIX
from chaos.stack import Stack

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "chaos.cli"]


def test_a_seeded_game_day_runs_its_schedule_and_tells_the_day(
        stack: Stack, tmp_path: Path, cli_env: dict[str, str]) -> None:
    plan = subprocess.run([*CLI, "gameday", "--seed", "11", "--minutes", "2", "--plan-only"],
                          env=cli_env, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    schedule = json.loads(plan.stdout)
    result = subprocess.run([*CLI, "gameday", "--seed", "11", "--minutes", "2", "--users",
                             "15", "--out", str(tmp_path)], env=cli_env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert json.loads((tmp_path / "schedule.json").read_text()) == schedule  # the seed's day
    day = json.loads((tmp_path / "gameday.json").read_text())
    windows = day["windows"]
    assert [w["index"] for w in windows] == [f["index"] for f in schedule["faults"]]
    journal = json.loads((tmp_path / "journal.json").read_text())
    injected = [e["fault"] for e in journal["faults"] if e["event"] == "injected"]
    rolled_back = [e["fault"] for e in journal["faults"] if e["event"] == "rolled back"]
    assert sorted(injected) == sorted(rolled_back) and len(injected) == len(windows)
    for window, planned in zip(windows, schedule["faults"], strict=True):
        assert window["label"] == planned["fault"]
        assert 0.7 * planned["duration"] <= window["end"] - window["start"] \
            <= planned["duration"] + 3
        assert window["results"], window  # judged with its catalog hypotheses
        assert all(r["name"].startswith(f"#{window['index']} ") for r in window["results"])
        assert window["revenue_at_risk_cents"] >= 0 and sum(window["seen"].values()) > 0
    each = [w["revenue_at_risk_cents"] for w in windows]
    assert max(each) <= day["revenue_at_risk_cents"] <= sum(each)  # overlaps counted once
    timeline = (tmp_path / "gameday.md").read_text()
    assert "Revenue at risk over the day" in timeline
    assert all(f"| {w['index']} | {w['label']}" in timeline for w in windows)
    assert (tmp_path / "report.html").exists() and (tmp_path / "junit.xml").exists()
    toxics = [t.name for t in stack.faults.toxics() if t.name.startswith(HARNESS_PREFIX)]
    assert toxics == [] and all(stack.faults.proxy_names().values())
