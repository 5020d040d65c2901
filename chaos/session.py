"""What the commands share, below the CLI: a stack brought up for a command (and down
after, if it brought it up), one experiment run with its reports, the gate and the
safeguard proof over many."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.run import MASTER_PORT, WORKERS_WAIT

from .errors import HarnessError
from .experiment import Experiment, ShopProfile, load_experiment
from .exporter import stack_observers
from .report import Proof, gate_markdown, junit_suite, write_junit, write_reports
from .run import Runner, RunObserver, RunResult, ViewObserver
from .run.journal import View
from .stack import Stack
from .target import Target, reference_target
from .waiting import poll

Progress = Callable[[str], None]
# A view for one run, by its name (the CLI's live terminal view).
ViewFor = Callable[[str], AbstractContextManager[View]]


@contextmanager
def managed_stack(stack: Stack, manage: bool, progress: Progress,
                  target: Target | None = None) -> Iterator[Stack]:
    """The stack, healthy for the block: brought up when it is down and `manage` allows
    it, and then taken down again after; an error that says what to do when it is down and
    `manage` does not. A target the harness does not run (no `stack:`) is left alone: the
    run's preflight says whether it answers."""
    if target is not None and target.stack is None:
        yield stack
        return
    started_here = ensure_stack(stack, manage, progress)
    try:
        yield stack
    finally:
        if started_here:
            progress("taking the stack down")
            stack.down()


def ensure_stack(stack: Stack, manage: bool, progress: Progress) -> bool:
    """The stack healthy, brought up if `manage` allows; True when it had to."""
    def settled() -> str | None:
        """"healthy" or "down" (a process not even running); None: not yet."""
        found = stack.status()
        if all(s.healthy for s in found):
            return "healthy"
        return None if all(s.running for s in found) else "down"

    stack.refuse_other_shop()
    # A shop still recovering from a fault gets a grace.
    if poll(settled, 15, every=0.5) == "healthy":
        return False
    if not manage:
        raise HarnessError("the stack is not up and healthy: run `make up` (see `make status`)")
    progress("bringing the stack up")
    stack.up()
    return True


@dataclass(slots=True)
class Ran:
    """One run and the reports written from it."""

    result: RunResult
    paths: dict[str, Path]


def run_experiment(name: str, stack: Stack, out: Path, view_for: ViewFor,
                   time_scale: float = 1.0, shop: ShopProfile | None = None,
                   workers_expect: int = 0, master_port: int = MASTER_PORT,
                   workers_wait: float = WORKERS_WAIT, target: Target | None = None,
                   users: int | None = None) -> Ran:
    """Run one experiment (a catalog name or a file) against the target (the reference
    shop on the stack by default), with the live view and the harness's metrics, and
    write its reports; `users` shoppers at once instead of the experiment's. An experiment
    the target cannot take is skipped, with the reason."""
    path, experiment = load_experiment(name)
    experiment = experiment.scaled(time_scale)
    if users is not None:
        experiment = experiment.model_copy(
            update={"load": experiment.load.model_copy(update={"users": users})})
    if shop is not None:
        experiment = experiment.model_copy(update={"shop": shop})
    target = target or reference_target(stack.config)
    skip = target.skip_reason(experiment)
    if skip is not None:
        result = RunResult(experiment, str(path), out, verdict="skipped", reason=skip)
        result.ended = result.started
        return Ran(result, write_reports(result, path.stem))
    with view_for(path.stem) as view:
        observers: list[RunObserver] = [ViewObserver(view), *stack_observers(stack)]
        result = Runner.on_stack(experiment, str(path), stack, out, observers=observers,
                                 workers_expect=workers_expect, master_port=master_port,
                                 workers_wait=workers_wait, target=target).run()
    return Ran(result, write_reports(result, path.stem))


@dataclass(slots=True)
class GateOutcome:
    """The gate over the chosen experiments: each run, in order."""

    runs: list[tuple[str, Ran]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each run's wall time

    @property
    def exit_code(self) -> int:
        """The worst run's: 0 all held, 1 some failed, 2 some could not run."""
        return max((ran.result.exit_code for _, ran in self.runs), default=0)


def gate_line(index: int, total: int, name: str, verdict: str, score: float,
              seconds: float) -> str:
    """One experiment of the gate as it ends: verdict, score and wall time, one line."""
    return (f"{index:>3}/{total} {name:<42} {verdict:<8} {score:>5.0f} "
            f"{seconds // 60:>3.0f}:{seconds % 60:04.1f}")


def gate_total(verdicts: Sequence[str], seconds: float, where: str = "") -> str:
    """The gate's last line: how many held, how many the target could not take, and how
    long it all took (`where`: e.g. " over 3 lanes")."""
    skipped = verdicts.count("skipped")
    others = len(verdicts) - verdicts.count("passed") - skipped
    return (f"gate: {verdicts.count('passed')} of {len(verdicts)} passed"
            f"{f' ({others} failed, aborted, errored or not run)' if others else ''}"
            f"{f', {skipped} skipped (not in the target)' if skipped else ''}, "
            f"{seconds // 60:.0f} min {seconds % 60:.0f} s{where}")


def run_gate(chosen: Sequence[tuple[Path, Experiment]], stack: Stack, out: Path,
             view_for: ViewFor, time_scale: float, shop: ShopProfile | None,
             progress: Progress, target: Target | None = None) -> GateOutcome:
    """Every chosen experiment in turn; one JUnit file and one summary in `out`."""
    outcome = GateOutcome()
    for index, (path, _) in enumerate(chosen, 1):
        progress(f"[bold]{index}/{len(chosen)}[/] {path.stem}")
        started = time.monotonic()
        ran = run_experiment(str(path), stack, out / path.stem, view_for, time_scale, shop,
                             target=target)
        outcome.runs.append((path.stem, ran))
        outcome.seconds.append(time.monotonic() - started)
        progress(gate_line(index, len(chosen), path.stem, ran.result.verdict,
                           ran.result.score, outcome.seconds[-1]))
    progress(gate_total([ran.result.verdict for _, ran in outcome.runs], sum(outcome.seconds)))
    out.mkdir(parents=True, exist_ok=True)
    write_junit([junit_suite(ran.result, name) for name, ran in outcome.runs],
                out / "junit.xml")
    (out / "summary.md").write_text(gate_markdown(
        [ran.paths["summary"].read_text() for _, ran in outcome.runs],
        [ran.result.out_dir for _, ran in outcome.runs]))
    return outcome


def run_proof(chosen: Sequence[tuple[Path, Experiment]], stack: Stack, out: Path,
              view_for: ViewFor, time_scale: float) -> list[Proof]:
    """Each safeguard experiment without its safeguard (as it declares) and with every
    safeguard on."""
    proofs = []
    for path, experiment in chosen:
        without = run_experiment(str(path), stack, out / f"{path.stem}-without", view_for,
                                 time_scale)
        with_it = run_experiment(str(path), stack, out / f"{path.stem}-with", view_for,
                                 time_scale, ShopProfile())
        proofs.append(Proof(path.stem, ", ".join(sorted(experiment.shop.off)),
                            without.result, with_it.result))
    return proofs
