"""The mutants file: every patch still applies to the shop as it is, and the score's rules."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest
import yaml

from chaos.errors import HarnessError
from chaos.mutants import (
    CLEAN,
    RULES_DIR,
    SHOP_DIR,
    Edit,
    Mutant,
    MutationRun,
    Outcome,
    apply,
    copy_shop,
    load_mutants,
)

MUTANTS = load_mutants()


def test_there_are_at_least_fifteen_mutants_each_naming_its_harm() -> None:
    assert len(MUTANTS) >= 15
    assert all(len(m.harm) > 40 for m in MUTANTS)
    assert any(m.quick for m in MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_patch_applies_to_a_copy_and_compiles(mutant: Mutant, tmp_path: Path) -> None:
    root = copy_shop(tmp_path, mutant)
    for edit in mutant.patch:
        if edit.under == "rules":  # the rules stay rules Prometheus loads
            patched, original = root / "rules" / edit.file, RULES_DIR / edit.file
            assert yaml.safe_load(patched.read_text())["groups"]
        else:
            patched, original = root / "demo_shop" / edit.file, SHOP_DIR / edit.file
            if patched.suffix == ".py":
                py_compile.compile(str(patched), doraise=True)
        assert patched.read_text() != original.read_text()


def test_the_shop_itself_is_never_touched(tmp_path: Path) -> None:
    before = {p: p.read_text() for p in SHOP_DIR.rglob("*.py")}
    for mutant in MUTANTS:
        copy_shop(tmp_path / mutant.name, mutant)
    assert {p: p.read_text() for p in SHOP_DIR.rglob("*.py")} == before


def test_an_edit_that_no_longer_applies_says_so(tmp_path: Path) -> None:
    stale = Mutant(name="stale", harm="x" * 50, experiments=["inventory-hard-down"],
                   killed_by=["no ungraceful answers"],
                   patch=[Edit.model_validate({"file": "app.py", "replace": "not in the shop",
                                               "with": "x"})])
    copy_shop(tmp_path, None)
    with pytest.raises(HarnessError, match="occurs 0 times"):
        apply(stale, tmp_path / "demo_shop")


def outcome(shop: str, verdict: str, *failed: str) -> Outcome:
    return Outcome(shop, "inventory-hard-down", verdict, list(failed), "report.html")


def test_a_mutant_is_killed_only_by_a_failure_that_names_its_harm() -> None:
    mutant = next(m for m in MUTANTS if m.name == "dog-page")
    run = MutationRun([mutant], [outcome(CLEAN, "passed")])
    assert run.survivors == [mutant] and not run.passed  # not run at all: survived
    run.outcomes.append(outcome("dog-page", "failed", "checkouts succeed"))
    assert run.survivors == [mutant]  # failed, but not for the harm it does
    run.outcomes[-1] = outcome("dog-page", "passed", "no ungraceful answers")
    assert run.survivors == [mutant]  # named, but the experiment did not fail
    run.outcomes[-1] = outcome("dog-page", "failed", "no ungraceful answers")
    assert run.killed_by(mutant) == ["no ungraceful answers"] and run.passed
    run.outcomes[0] = outcome(CLEAN, "failed", "ledger audit: nothing lost")
    assert not run.passed  # the unmutated shop must pass the same experiments
    assert "**did not pass**" in run.markdown()
