"""Resilient vs fragile comparison from two gate folders (journals written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.compare import compare, markdown, write
from chaos.errors import HarnessError


def journal(folder: Path, name: str, verdict: str, success: float, p99: float,
            told: float | None, judged_ungraceful: float = 1.0) -> None:
    """A journal whose fault window had 100 answers, one of them ungraceful; a judged count
    above one means requests made in the window hung until the shopper gave up."""
    (folder / name).mkdir(parents=True)
    (folder / name / "journal.json").write_text(json.dumps({
        "verdict": verdict, "recovery_time": 1.5,
        "hypotheses": [{"phase": "fault", "probe": "ungraceful", "value": judged_ungraceful}],
        "phase_stats": {"fault": {"checkout_success_ratio": success, "checkouts": 12,
                                  "classes": {"ok": 90, "graceful_error": 9, "ungraceful": 1},
                                  "success_ratio": 0.9, "ungraceful": 1,
                                  "checkout_graceful_ratio": 1.0, "graceful_ratio": 0.99,
                                  "p99_ms": p99}},
        "communication": {"payments": {"time_to_communicate": told, "time_to_clear": 4.0}}}))


def test_experiments_in_both_folders_are_set_side_by_side(tmp_path: Path) -> None:
    journal(tmp_path / "res", "payments-hard-down", "passed", 0.97, 250, 0.4)
    journal(tmp_path / "fra", "payments-hard-down", "failed", 0.0, 100, None, 3.0)
    journal(tmp_path / "res", "only-here", "passed", 1.0, 10, 1.0)
    rows = compare(tmp_path / "res", tmp_path / "fra")
    assert [name for name, _, _ in rows] == ["payments-hard-down"]
    table = markdown(rows)
    assert ("| payments-hard-down | resilient | passed | 12 | 97.0 % | 90.0 % | 99.0 % | 1 "
            "| 250 ms |") in table
    # Two requests hung: they count against graceful (99 of 102) and floor the p99.
    assert ("| payments-hard-down | fragile | failed | 12 | 0.0 % | 90.0 % | 97.1 % | 3 "
            "| ≥ 10 s (2 hung) |") in table
    assert "| never |" in table  # the fragile shop's status page never said so
    paths = write(rows, tmp_path / "out")
    assert "data:image/png;base64," in paths["html"].read_text()


def test_folders_without_common_experiments_are_refused(tmp_path: Path) -> None:
    journal(tmp_path / "res", "a", "passed", 1.0, 10, 1.0)
    (tmp_path / "fra").mkdir()
    with pytest.raises(HarnessError, match="no experiment ran in both"):
        compare(tmp_path / "res", tmp_path / "fra")
