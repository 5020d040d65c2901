"""Commands that run experiments: run, gate, compare, proof, mutants."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markdown import Markdown

from loadtests.run import WORKERS_WAIT

from ..errors import HarnessError
from ..vocabulary import TARGETS
from .common import (
    OBSERVE_HELP,
    SHOP_HELP,
    console,
    env_stack,
    friendly,
    main,
    master_port_option,
    report_dir,
    say,
    shop_option,
    stack_and_target,
    target_option,
    view_for,
)


@main.command()
@click.argument("experiment")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default reports/<name>-<time>).")
@click.option("--manage-stack", is_flag=True,
              help="Bring the stack up if it is down, and down again afterwards.")
@click.option("--shop", "shop_text", default=None, help=SHOP_HELP)
@click.option("--observe", is_flag=True, help=OBSERVE_HELP)
@click.option("--workers-expect", type=click.IntRange(min=0), default=0,
              help="Run the load's users on this many Locust workers started apart "
                   "(`make load-worker`); nothing is judged until they all report.")
@master_port_option
@click.option("--workers-wait", type=click.FloatRange(1, 3600), default=float(WORKERS_WAIT),
              show_default=True,
              help="Seconds to wait for the workers before refusing to run.")
@click.option("--users", type=click.IntRange(1, 5000), default=None,
              help="Shoppers at once, instead of the experiment's (its load.users): your "
                   "shop's own peak. Its hypotheses and stop conditions are unchanged.")
@target_option
@friendly
def run(experiment: str, out: Path | None, manage_stack: bool, shop_text: str | None,
        observe: bool, workers_expect: int, master_port: int, workers_wait: float,
        users: int | None, target_file: Path | None) -> None:
    """Run one experiment (a file or a catalog name) against the target. Exit 0 held (or
    skipped: the target lacks what it breaks), 1 failed, 2 not run."""
    from ..experiment import load_experiment
    from ..run.runner import check_target
    from ..session import managed_stack, run_experiment

    shop = shop_option(shop_text)
    path, _ = load_experiment(experiment)  # a bad file fails before the stack is touched
    stack, target = stack_and_target(target_file)
    out = report_dir(out, path.stem)
    with managed_stack(stack, manage_stack, say, target) as stack:
        check_target(target, ready_within=5)  # unreachable, no proxy: exit 2 at once
        if observe and target.stack is None:
            say(f"--observe: Prometheus watches the harness's own stack; target "
                f"{target.name} is yours, so the report draws the load's series only")
        elif observe:
            stack.observe()
        ran = run_experiment(str(path), stack, out, view_for, shop=shop,
                             workers_expect=workers_expect, master_port=master_port,
                             workers_wait=workers_wait, target=target, users=users)
    Console().print(Markdown(ran.paths["summary"].read_text()))
    console.print(f"report: {ran.paths['html']}\njunit:  {ran.paths['junit']}")
    if ran.result.exit_code == 2:
        console.print(f"[bold red]error:[/] {ran.result.reason}")
    sys.exit(ran.result.exit_code)


@main.command()
@click.option("--tag", "tags", multiple=True, help="Only experiments with this tag.")
@click.option("--name", "names", multiple=True, help="Only these experiments (catalog names).")
@click.option("--time-scale", type=click.FloatRange(0.05, 1.0), default=0.4, show_default=True,
              help="Scale every duration for a quick gate.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
@click.option("--manage-stack", is_flag=True)
@click.option("--shop", "shop_text", default=None, help=SHOP_HELP)
@click.option("--observe", is_flag=True, help=OBSERVE_HELP)
@click.option("--lanes", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Run the experiments over this many stacks in parallel, each on its own "
                   "free loopback ports (1: the stack of `make up`).")
@target_option
@friendly
def gate(tags: tuple[str, ...], names: tuple[str, ...], time_scale: float, out: Path | None,
         manage_stack: bool, shop_text: str | None, observe: bool, lanes: int,
         target_file: Path | None) -> None:
    """Run the catalog against the target as a CI gate: one JUnit file and one summary;
    exit 1 if any failed (an experiment whose dependency the target lacks is skipped)."""
    from ..experiment import catalog
    from ..run.runner import check_target
    from ..session import managed_stack, run_gate

    shop = shop_option(shop_text)
    stack, target = stack_and_target(target_file)  # a bad target fails before anything
    chosen = [(p, e) for p, e in catalog() if (not tags or set(tags) & set(e.tags))
              and (not names or p.stem in names)]
    if not chosen:
        raise HarnessError(f"no experiment matches tag {', '.join(tags) or '(any)'} and "
                           f"name {', '.join(names) or '(any)'}: see `checkout-chaos list`")
    out = report_dir(out, "gate")
    if lanes > 1 and len(chosen) > 1 and target.stack is not None:
        from ..lanes import run_lanes

        if observe:
            raise HarnessError("--observe watches one stack: use it with --lanes 1")
        code = run_lanes(chosen, out, lanes, time_scale, shop_text, say, target_file)
        console.print(f"gate: {out / 'summary.md'}  junit: {out / 'junit.xml'}")
        sys.exit(code)
    with managed_stack(stack, manage_stack, say, target) as stack:
        check_target(target, ready_within=5)  # unreachable, no proxy: exit 2 at once
        if observe:
            stack.observe()
        outcome = run_gate(chosen, stack, out, view_for, time_scale, shop, say, target)
    console.print(f"gate: {out / 'summary.md'}  junit: {out / 'junit.xml'}")
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("resilient", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("fragile", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for compare.md and compare.html (default: FRAGILE/../compare).")
@friendly
def compare(resilient: Path, fragile: Path, out: Path | None) -> None:
    """Two gate report folders side by side: what shoppers saw while each dependency was
    broken, against the resilient and the fragile shop."""
    from .. import compare as comparison

    rows = comparison.compare(resilient, fragile)
    paths = comparison.write(rows, out or fragile.parent / "compare")
    Console().print(Markdown(paths["markdown"].read_text()))
    console.print(f"compare: {paths['html']}")


@main.command()
@click.option("--name", "names", multiple=True, help="Only these safeguard experiments.")
@click.option("--time-scale", type=click.FloatRange(0.05, 1.0), default=1.0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None)
@click.option("--manage-stack", is_flag=True)
@friendly
def proof(names: tuple[str, ...], time_scale: float, out: Path | None,
          manage_stack: bool) -> None:
    """Show the gate pinpoints each missing safeguard: every experiment in
    chaos/experiments/safeguards runs against a shop without its safeguard (it must fail)
    and against the resilient shop (it must pass). Exit 1 if any does not."""
    from ..experiment import SAFEGUARDS_DIR, catalog
    from ..report import proof_markdown
    from ..session import managed_stack, run_proof

    chosen = [(p, e) for p, e in catalog(SAFEGUARDS_DIR) if not names or p.stem in names]
    if not chosen:
        raise HarnessError(f"no safeguard experiment named {', '.join(names)} "
                           f"(see {SAFEGUARDS_DIR})")
    out = report_dir(out, "proof")
    with managed_stack(env_stack(), manage_stack, say) as stack:
        proofs = run_proof(chosen, stack, out, view_for, time_scale)
    out.mkdir(parents=True, exist_ok=True)
    table = proof_markdown(proofs)
    (out / "summary.md").write_text(table)
    Console().print(Markdown(table))
    console.print(f"proof: {out / 'summary.md'}")
    sys.exit(0 if all(p.pinpointed for p in proofs) else 1)


@main.command()
@click.option("--quick", is_flag=True, help="Only the mutants marked quick (QUICK=1).")
@click.option("--name", "names", multiple=True, help="Only these mutants.")
@click.option("--time-scale", type=click.FloatRange(0.05, 1.0), default=0.4, show_default=True,
              help="Scale every experiment's durations, as the gate does.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for mutants.md/.json and every run's report "
                   "(default reports/mutants-<time>).")
@friendly
def mutants(quick: bool, names: tuple[str, ...], time_scale: float, out: Path | None) -> None:
    """The harness's mutation score: each realistic shop defect in chaos/mutants.yaml,
    patched into a throw-away copy of the shop, must fail its experiments; the unmutated
    shop must pass them in the same run. Exit 1 if a mutant survives or the shop fails."""
    import os

    from ..mutants import load_mutants, run_mutants

    chosen = [m for m in load_mutants() if (not quick or m.quick)
              and (not names or m.name in names)]
    if not chosen:
        raise HarnessError(f"no mutant named {', '.join(names)} (see chaos/mutants.yaml)")
    out = report_dir(out, "mutants")
    os.environ["CC_HISTORY_FILE"] = str(out / "history.jsonl")  # not the main history
    console.print(f"{len(chosen)} mutants, each on a stack of its own, then the table")
    result = run_mutants(chosen, out, time_scale, lambda line: console.print(f"  {line}"))
    paths = result.write(out)
    Console().print(Markdown(paths["markdown"].read_text()))
    console.print(f"mutants: {paths['markdown']}")
    sys.exit(0 if result.passed else 1)


@main.command()
@click.option("--seed", type=int, required=True,
              help="Draws the day's faults: the same seed replays the same day.")
@click.option("--minutes", type=click.FloatRange(2, 240), default=4.0, show_default=True,
              help="The sale day's length (load and faults; recovery and the audit come "
                   "after).")
@click.option("--users", type=click.IntRange(1, 5000), default=30, show_default=True,
              help="Peak users of the labor-day shape.")
@click.option("--plan-only", is_flag=True,
              help="Print the drawn schedule and stop (nothing runs).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default reports/gameday-<seed>-<time>).")
@click.option("--manage-stack", is_flag=True,
              help="Bring the stack up if it is down, and down again afterwards.")
@target_option
@friendly
def gameday(seed: int, minutes: float, users: int, plan_only: bool, out: Path | None,
            manage_stack: bool, target_file: Path | None) -> None:
    """A game day against the target: labor-day load, faults drawn at random from the
    catalog's fault classes (seeded: the same seed replays the same day), at random times
    and for random durations, some overlapping; each fault's window judged with its
    catalog hypotheses; a timeline of what broke, when the shop told shoppers, what they
    saw and the revenue at risk. Exit 0 all held, 1 some failed, 2 not run."""
    import json

    from .. import gameday as gd
    from ..report import write_reports
    from ..run.runner import Collaborators, check_target
    from ..session import managed_stack

    stack, target = stack_and_target(target_file)
    classes = gd.fault_classes(target)
    if not classes:
        raise HarnessError(f"target {target.name} can take none of the catalog's faults: "
                           f"map a dependency role ({', '.join(TARGETS)})")
    day = gd.draw(seed, minutes, classes)
    schedule = gd.schedule_json(seed, minutes, target, day)
    if plan_only:
        click.echo(json.dumps(schedule, indent=2))
        return
    out = report_dir(out, f"gameday-{seed}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "schedule.json").write_text(json.dumps(schedule, indent=2))
    say(f"game day, seed {seed}: {len(day)} faults drawn from {len(classes)} fault classes "
        f"of the catalog (the schedule: {out / 'schedule.json'})")
    experiment = gd.experiment(seed, minutes, day, users)
    with managed_stack(stack, manage_stack, say, target) as stack, view_for("gameday") as view:
        check_target(target, ready_within=5)
        from ..exporter import stack_observers
        from ..run import ViewObserver

        runner = gd.GameDayRunner(day, experiment, f"gameday-seed-{seed}", out,
                                  Collaborators.for_stack(
                                      stack, out, [ViewObserver(view),
                                                   *stack_observers(stack)], target=target))
        result = runner.run()
    paths = write_reports(result, "gameday")
    written = gd.write_gameday(out, result, runner.windows, schedule, runner.at_risk)
    for line in gd.timeline_lines(runner.windows, result.started):
        say(line)
    failed = [r for r in result.results if not r.held]
    say(f"game day: {result.verdict}, score {result.score:g}/100, "
        f"${runner.at_risk[0] / 100:,.2f} at risk ({runner.at_risk[1]} checkouts)"
        + (f"; failed: {'; '.join(r.name for r in failed)}" if failed else ""))
    console.print(f"timeline: {written['timeline']}\nreport:   {paths['html']}\n"
                  f"junit:    {paths['junit']}")
    if result.exit_code == 2:
        console.print(f"[bold red]error:[/] {result.reason}")
    sys.exit(result.exit_code)
