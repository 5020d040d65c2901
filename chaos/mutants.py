"""A mutation score for the harness itself: realistic shop defects must fail their experiments.

Each mutant (chaos/mutants.yaml) is a small named patch applied to a throw-away copy of
demo_shop/; a stack of its own (free loopback ports, own run folder) imports the shop and its
services from that copy. The mutant's experiments must FAIL with one of the hypotheses or
audit rules that name its harm ("killed"); the unmutated shop, on a stack built the same
way in the same run, must PASS the same experiments. A mutant that passes has survived:
the harness would have let that defect through.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import HarnessError
from .experiment import load_experiment
from .report import load_failures, write_reports
from .run import Runner, RunResult
from .stack import PROJECT_ROOT, Ports, Stack, StackConfig

MUTANTS_FILE = Path(__file__).resolve().parent / "mutants.yaml"
SHOP_DIR = PROJECT_ROOT / "demo_shop"
RULES_DIR = PROJECT_ROOT / "grafana" / "prometheus" / "rules"
CLEAN = "unmutated"


class Edit(BaseModel):
    """Replace one exact piece of a file under demo_shop/ (`under: shop`) or of the shop's
    alert and recording rules, grafana/prometheus/rules/ (`under: rules`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    file: str = Field(min_length=1)
    replace: str = Field(min_length=1)
    with_: str = Field(alias="with")
    under: Literal["shop", "rules"] = "shop"


class Mutant(BaseModel):
    """A named shop defect, the harm it does, and what must catch it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$")
    harm: str = Field(min_length=1)
    experiments: list[str] = Field(min_length=1)
    killed_by: list[str] = Field(min_length=1)
    quick: bool = False
    # Its experiments run with Prometheus and Alertmanager beside the stack (the paging
    # hypotheses need them); so do the unmutated shop's, when any mutant of the run does.
    observe: bool = False
    patch: list[Edit] = Field(min_length=1)


def load_mutants(path: Path = MUTANTS_FILE) -> list[Mutant]:
    """Every mutant in the file, validated (HarnessError names what is wrong)."""
    try:
        data = yaml.safe_load(path.read_text())
        mutants = [Mutant.model_validate(item) for item in data]
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as exc:
        raise HarnessError(f"{path} is not a valid mutants file: {exc}") from exc
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise HarnessError(f"{path}: mutant names must be unique")
    for mutant in mutants:
        for experiment in mutant.experiments:
            load_experiment(experiment)  # a catalog name that does not exist fails here
    return mutants


def apply(mutant: Mutant, shop_dir: Path, rules_dir: Path | None = None) -> None:
    """Patch a copy of the shop (and of its rules) in place; HarnessError when an edit no
    longer applies."""
    for edit in mutant.patch:
        path = (rules_dir or shop_dir.parent / "rules") / edit.file if edit.under == "rules" \
            else shop_dir / edit.file
        old, new = edit.replace.rstrip("\n"), edit.with_.rstrip("\n")
        text = path.read_text()
        found = text.count(old)
        if found != 1:
            raise HarnessError(f"mutant {mutant.name}: the text to replace in {edit.file} "
                               f"occurs {found} times (must be once); update "
                               f"{MUTANTS_FILE.name} to the shop's code")
        path.write_text(text.replace(old, new))


def copy_shop(into: Path, mutant: Mutant | None) -> Path:
    """A throw-away copy of demo_shop/ and of the rules under `into` (into/rules), patched
    by the mutant; the folder to put on PYTHONPATH."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(SHOP_DIR, into / "demo_shop",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(RULES_DIR, into / "rules")
    if mutant is not None:
        apply(mutant, into / "demo_shop", into / "rules")
    return into


@dataclass(slots=True)
class Outcome:
    """One experiment against one shop (a mutant's or the unmutated one)."""

    shop: str
    experiment: str
    verdict: str
    failed: list[str]  # failed hypotheses as reports name them, and audit rules
    report: str
    seen: dict[str, int] = field(default_factory=dict)  # the load's failures by reason

    def as_json(self) -> dict[str, Any]:
        """For mutants.json."""
        return {"shop": self.shop, "experiment": self.experiment, "verdict": self.verdict,
                "failed": self.failed, "report": self.report, "seen": self.seen}


@dataclass(slots=True)
class MutationRun:
    """Every outcome, and the verdict on each mutant."""

    mutants: list[Mutant]
    outcomes: list[Outcome] = field(default_factory=list)

    def of(self, shop: str) -> list[Outcome]:
        """The outcomes of one shop."""
        return [o for o in self.outcomes if o.shop == shop]

    def killed_by(self, mutant: Mutant) -> list[str]:
        """The named checks that failed, if every experiment of the mutant failed with one
        of them; [] when the mutant survived."""
        outcomes = self.of(mutant.name)
        caught = []
        for outcome in outcomes:
            hits = [name for name in mutant.killed_by if name in outcome.failed]
            if outcome.verdict != "failed" or not hits:
                return []
            caught += [h for h in hits if h not in caught]
        return caught if outcomes else []

    @property
    def clean_passed(self) -> bool:
        """The unmutated shop passed every experiment it ran."""
        clean = self.of(CLEAN)
        return bool(clean) and all(o.verdict == "passed" for o in clean)

    @property
    def survivors(self) -> list[Mutant]:
        """Mutants the harness let through."""
        return [m for m in self.mutants if not self.killed_by(m)]

    @property
    def passed(self) -> bool:
        """Every mutant killed, and the unmutated shop passing."""
        return self.clean_passed and not self.survivors

    def markdown(self) -> str:
        """The mutation table."""
        killed = len(self.mutants) - len(self.survivors)
        lines = [f"# Mutation score: {killed}/{len(self.mutants)} mutants killed; unmutated "
                 f"shop {'passed' if self.clean_passed else '**did not pass**'}", "",
                 "| mutant | harm to a shopper | killed by | what shoppers got | experiment "
                 "| verdict |", "|---|---|---|---|---|---|"]
        for mutant in self.mutants:
            caught = self.killed_by(mutant)
            outcomes = self.of(mutant.name)
            verdicts = ", ".join(o.verdict for o in outcomes) or "not run"
            counts: dict[str, int] = {}
            for o in outcomes:
                for reason, n in o.seen.items():
                    counts[reason] = counts.get(reason, 0) + n
            seen = [f"{reason} ({n})" for reason, n in
                    sorted(counts.items(), key=lambda kv: -kv[1])[:3]]
            lines.append(f"| {mutant.name} | {mutant.harm} | "
                         f"{'; '.join(caught) if caught else '**survived**'} | "
                         f"{', '.join(seen) or '-'} | {', '.join(mutant.experiments)} | "
                         f"{verdicts} |")
        lines += ["", "| unmutated shop | verdict | failed |", "|---|---|---|"]
        lines += [f"| {o.experiment} | {o.verdict} | {'; '.join(o.failed) or '-'} |"
                  for o in self.of(CLEAN)]
        return "\n".join(lines) + "\n"

    def write(self, out: Path) -> dict[str, Path]:
        """mutants.md and mutants.json into out."""
        out.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": out / "mutants.md", "json": out / "mutants.json"}
        paths["markdown"].write_text(self.markdown())
        paths["json"].write_text(json.dumps({
            "passed": self.passed, "clean_passed": self.clean_passed,
            "mutants": [{"name": m.name, "harm": m.harm, "experiments": m.experiments,
                         "killed_by": self.killed_by(m)} for m in self.mutants],
            "outcomes": [o.as_json() for o in self.outcomes]}, indent=2))
        return paths


def failures(result: RunResult) -> list[str]:
    """What failed in a run: hypotheses as reports name them, and audit rules."""
    failed = [r.name for r in result.results if not r.held]
    if result.audit is not None:
        failed += sorted({v.rule for v in result.audit.violations})
    return failed


@contextmanager
def shop_stack(work: Path, name: str, mutant: Mutant | None,
               progress: Callable[[str], None], observe: bool = False) -> Iterator[Stack]:
    """A whole stack whose shop and services run from a (patched) copy, with Prometheus
    and Alertmanager on the copy's rules when `observe`; always stopped."""
    code_root = copy_shop(work / name / "code", mutant)
    stack = Stack(StackConfig(run_dir=work / name / "stack", ports=Ports.free(),
                              code_root=code_root))
    try:
        progress(f"{name}: starting a stack from its copy of the shop")
        stack.up()
        if observe:
            stack.observe(rules_dir=code_root / "rules")
        yield stack
    finally:
        stack.down()
        # The copy and the stack's folder served this shop only; its reports are in `out`.
        shutil.rmtree(work / name, ignore_errors=True)


def run_mutants(mutants: list[Mutant], out: Path, time_scale: float,
                progress: Callable[[str], None], work: Path | None = None,
                clean: bool = True) -> MutationRun:
    """The unmutated shop (unless clean is False), then every mutant, each on a fresh
    stack of its own."""
    work = work or PROJECT_ROOT / ".run" / "mutants"
    run = MutationRun(mutants)
    experiments = sorted({e for m in mutants for e in m.experiments})
    shops: list[tuple[str, Mutant | None, list[str]]] = [(CLEAN, None, experiments)] \
        if clean else []
    shops += [(m.name, m, m.experiments) for m in mutants]
    observed = any(m.observe for m in mutants)
    for name, mutant, names in shops:
        observe = mutant.observe if mutant is not None else observed
        with shop_stack(work, name, mutant, progress, observe) as stack:
            for experiment in names:
                path, loaded = load_experiment(experiment)
                folder = out / name / path.stem
                result = Runner.on_stack(
                    loaded.scaled(time_scale), str(path), stack, folder).run()
                write_reports(result, path.stem)
                if result.verdict == "error" and result.reason.startswith("stopped by"):
                    raise HarnessError(f"mutants: {result.reason}")
                outcome = Outcome(name, path.stem, result.verdict, failures(result),
                                  str(folder / "report.html"), load_failures(folder))
                run.outcomes.append(outcome)
                progress(f"{name}: {path.stem} {result.verdict}"
                         + (f" ({'; '.join(outcome.failed)})" if outcome.failed else ""))
    return run
