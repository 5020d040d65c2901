"""Experiment files: one invalid fixture per rule, the catalog, tolerances."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chaos.experiment import (
    ExperimentError,
    Tolerance,
    catalog,
    load_experiment,
    parse_experiment,
)
from chaos.validation import to_seconds

HERE = Path(__file__).parent / "experiments"
INVALID = sorted((HERE / "invalid").glob("*.yaml"))


def expectation(path: Path) -> tuple[str, int | None]:
    """The '# expect:' message and the '# line:' (in the body, after the header)."""
    lines = path.read_text().splitlines()
    header = [line for line in lines if line.startswith("# ")]
    expect = next(line[len("# expect: "):] for line in header if line.startswith("# expect:"))
    body_line = next((int(line[len("# line: "):]) for line in header
                      if line.startswith("# line:")), None)
    return expect, None if body_line is None else body_line + len(header)


def test_the_minimal_experiment_is_valid() -> None:
    _, experiment = load_experiment(str(HERE / "valid-minimal.yaml"))
    assert experiment.faults[0].target == ["payments"]
    assert experiment.faults[0].duration == 10.0


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_is_refused_with_path_and_line(path: Path) -> None:
    expect, line = expectation(path)
    with pytest.raises(ExperimentError) as info:
        parse_experiment(path.read_text(), str(path))
    message = str(info.value)
    assert expect in message
    if line is not None:
        problem = next(p for p in info.value.problems if expect.split(":")[0] in p)
        assert problem.endswith(f"(line {line})"), problem


def test_every_problem_is_reported_at_once() -> None:
    text = (HERE / "valid-minimal.yaml").read_text()
    text = text.replace("latency: 100", "latency: -5").replace("target: payments",
                                                                 "target: paymnets")
    with pytest.raises(ExperimentError) as info:
        parse_experiment(text + "colour: red\n")
    assert len(info.value.problems) == 3


def test_the_whole_catalog_is_valid_and_covers_every_dependency_and_fault_kind() -> None:
    experiments = catalog()
    assert len(experiments) >= 36
    kinds = {(t, f.toxic) for _, e in experiments for f in e.faults for t in f.target}
    for target in ("payments", "inventory", "postgres", "redis"):
        for toxic in ("latency", "down", "timeout", "reset_peer", "bandwidth", "slicer",
                      "limit_data", "slow_close"):
            assert (target, toxic) in kinds, (target, toxic)
    for _, experiment in experiments:
        assert "shopper" in experiment.description.lower()


def test_a_name_that_is_not_in_the_catalog_lists_what_is() -> None:
    from chaos.errors import HarnessError

    with pytest.raises(HarnessError, match="labor-day-payments-brownout"):
        load_experiment("no-such-experiment")


@pytest.mark.parametrize("text,seconds", [("30s", 30.0), ("2m", 120.0), ("250ms", 0.25),
                                          (5, 5.0), ("1.5m", 90.0)])
def test_durations(text: object, seconds: float) -> None:
    assert to_seconds(text) == seconds


@pytest.mark.parametrize("tolerance,value,holds", [
    ({"max": 0}, 0, True), ({"max": 0}, 1, False),
    ({"min": 0.95}, 0.95, True), ({"min": 0.95}, 0.9499, False),
    ({"exact": 3}, 3, True), ({"exact": 3}, 3.1, False),
    ({"range": [1, 2]}, 1.5, True), ({"range": [1, 2]}, 2.01, False),
    ({"max": 10}, None, False),  # nothing measured never holds
])
def test_tolerances(tolerance: dict, value: float | None, holds: bool) -> None:
    assert Tolerance.model_validate(tolerance).holds(value) is holds


def test_tolerance_descriptions_read_as_words() -> None:
    assert Tolerance(max=0).describe() == "at most 0"
    assert re.match(r"between 1 and 2", Tolerance(range=(1, 2)).describe())
