"""A shop with the dog-page defect, run from a patched copy on a stack of its own, fails the
experiment that breaks its dependency — for the harm it does."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from chaos.mutants import load_mutants, run_mutants

pytestmark = pytest.mark.e2e


def test_a_shop_that_answers_with_a_raw_500_and_a_traceback_fails(tmp_path: Path) -> None:
    dog_page = next(m for m in load_mutants() if m.name == "dog-page")
    # One of its experiments is enough here (make mutants runs them all).
    mutant = dog_page.model_copy(update={"experiments": ["inventory-hard-down"]})
    run = run_mutants([mutant], tmp_path / "out", time_scale=0.3, progress=lambda _: None,
                      work=tmp_path / "work", clean=False)
    [outcome] = run.of(mutant.name)
    assert outcome.verdict == "failed", outcome
    assert run.killed_by(mutant) == ["no ungraceful answers"]
    load = tmp_path / "out" / "dog-page" / "inventory-hard-down" / "load"
    with (load / "locust_failures.csv").open() as failures:
        reasons = {row["Error"] for row in csv.DictReader(failures)}
    assert any("internals_in_body" in reason for reason in reasons), reasons
