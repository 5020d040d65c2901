"""Commands around the experiments: the scripted outage, load, the ledger audit, the
resiliency matrix, the catalog."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from ..errors import HarnessError
from ..stack import PROJECT_ROOT
from ..vocabulary import STATUS_NAME
from .common import (
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
)


@main.command()
@click.option("--dependency", type=click.Choice(["payments", "inventory", "postgres", "redis"]),
              default="payments", show_default=True)
@click.option("--checkouts", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Checkouts per phase.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default reports/outage-<time>).")
@click.option("--manage-stack", is_flag=True,
              help="Bring the stack up if it is down, and down again afterwards.")
@friendly
def outage(dependency: str, checkouts: int, out: Path | None, manage_stack: bool) -> None:
    """A scripted outage: take one dependency down mid-checkout and report what shoppers saw."""
    from ..outage import run_outage
    from ..run import run_lock
    from ..session import managed_stack

    out = report_dir(out, "outage")
    with managed_stack(env_stack(), manage_stack, say) as stack, \
            run_lock(stack.run_dir, "outage"):
        report = run_outage(
            stack.config.shop_url, stack.faults, out, proxy=dependency,
            status_name=STATUS_NAME[dependency], checkouts_per_phase=checkouts,
            progress=lambda m: console.print(f"  {m}"),
        )
    Console().print(Markdown(report.markdown()))
    console.print(f"report: {out / 'outage.md'}")
    sys.exit(0 if report.passed else 1)


@main.command()
@click.option("--profile", default="steady", show_default=True, help="steady, ramp or labor-day")
@click.option("--users", default="20", show_default=True, help="Users (the peak, for shapes).")
@click.option("--duration", default="60s", show_default=True, help="e.g. 60s, 5m, 1h.")
@click.option("--processes", default="1", show_default=True,
              help="Locust processes (its own distributed mode).")
@click.option("--spawn-rate", default="", help="Users started per second (default users/5).")
@click.option("--day-minutes", default="", help="labor-day: the sale day's length in minutes.")
@click.option("--host", default=None, help="The shop (default: the stack's shop URL).")
@click.option("--ui", is_flag=True, help="Locust's web UI instead of headless.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (default reports/load-<time>).")
@click.option("--workers-expect", type=click.IntRange(min=0), default=0,
              help="Be only the master: wait for this many workers (`make load-worker`, "
                   "on this host or others) and run the users on them.")
@master_port_option
@target_option
@friendly
def load(profile: str, users: str, duration: str, processes: str, spawn_rate: str,
         day_minutes: str, host: str | None, ui: bool, out: Path | None,
         workers_expect: int, master_port: int, target_file: Path | None) -> None:
    """Labor Day-scale shopping load with Locust against the target; exit 1 if any answer
    was ungraceful."""
    from dataclasses import replace

    from loadtests import run as load_run

    out = report_dir(out, "load")
    _, target = stack_and_target(target_file)
    shape = target.shape()
    try:
        plan = load_run.plan(host or target.shop.base_url, profile, users, duration,
                             processes, out, spawn_rate, ui, day_minutes,
                             workers_expect=workers_expect, master_port=master_port)
        load_run.check_host(plan.host, shape.ready)
    except load_run.LoadInputError as exc:
        raise HarnessError(str(exc)) from exc
    plan = replace(plan, target_shape=shape.to_file(out / "target-shape.json"))
    console.print(f"load: {plan.profile}, {plan.users} users, {plan.duration}s, "
                  f"{plan.processes} process(es), target {target.name} -> {out}")
    if workers_expect:
        console.print(f"waiting up to {plan.workers_wait} s for {workers_expect} worker(s); "
                      "start each with:\n  " + " ".join(load_run.worker_command(
                          "127.0.0.1", master_port, Path("reports/load-worker"))))
    code = load_run.run(plan)
    if workers_expect and not (out / "timeline.jsonl").exists():
        raise HarnessError(f"not all {workers_expect} workers connected within "
                           f"{plan.workers_wait} s, so no load ran and nothing was judged")
    if not (out / "timeline.jsonl").exists():
        raise HarnessError(f"locust wrote no timeline (exit code {code}); see its output above")
    summary = load_run.summarise(out)
    Console().print(Markdown(summary.table()))
    console.print(f"timeline: {out / 'timeline.jsonl'}  locust report: {out / 'locust.html'}")
    sys.exit(1 if summary.ungraceful or code not in (0,) else 0)


@main.command("load-worker")
@click.option("--master-host", default="127.0.0.1", show_default=True,
              help="The master's address (loopback here; another load host's elsewhere).")
@master_port_option
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for this worker's own log (default reports/load-worker).")
@target_option
@friendly
def load_worker(master_host: str, master_port: int, out: Path | None,
                target_file: Path | None) -> None:
    """One Locust worker for `load --workers-expect N` or `run --workers-expect N`: it runs
    users and sends its timeline and evidence to the master; it quits when the master does."""
    from loadtests import run as load_run

    out = out or PROJECT_ROOT / "reports" / "load-worker"
    out.mkdir(parents=True, exist_ok=True)
    _, target = stack_and_target(target_file)
    shape = target.shape().to_file(out / "target-shape.json")
    console.print(f"worker for the master at {master_host}:{master_port}, target "
                  f"{target.name} (Ctrl-C to stop)")
    code = subprocess.run(load_run.worker_command(master_host, master_port, out,
                                                  target_shape=shape)).returncode
    sys.exit(code)


@main.command()
@click.option("--evidence", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A load run folder with evidence-*.jsonl (what shoppers were told).")
@click.option("--since-minutes", type=click.FloatRange(min=0), default=0.0,
              help="Only orders and charges of the last N minutes (0: everything).")
@target_option
@friendly
def audit(evidence: Path | None, since_minutes: float, target_file: Path | None) -> None:
    """The ledger audit of the target (the running stack's shop by default): exit 0 clean,
    1 with violations listed."""
    from ..audit import read_evidence, run_audit

    _, target = stack_and_target(target_file)
    since = time.time() - since_minutes * 60 if since_minutes else 0.0
    result = run_audit(read_evidence(evidence) if evidence else [], target.ledgers,
                       since=since)
    console.print(f"audited {result.orders} orders, {result.charges} charges, "
                  f"{result.told_confirmed} confirmations shoppers were told of")
    for what in result.not_judged:
        console.print(f"[yellow]not judged[/]: {what}")
    for v in result.violations:
        console.print(f"[red]{v.rule}[/]: {v.detail} {v.ids}")
    console.print("[green]clean: nothing lost[/]" if result.clean
                  else f"[red]{len(result.violations)} violation(s)[/]")
    sys.exit(0 if result.clean else 1)



@main.command("list")
@friendly
def list_experiments() -> None:
    """The experiment catalog."""
    from ..experiment import catalog

    table = Table("name", "title", "targets", "tags", "seconds")
    for path, experiment in catalog():
        table.add_row(path.stem, experiment.title, ", ".join(experiment.targets()),
                      ", ".join(experiment.tags), f"{experiment.planned_seconds():.0f}")
    Console().print(table)


@main.command()
@click.argument("files", nargs=-1, required=True)
@friendly
def validate(files: tuple[str, ...]) -> None:
    """Check experiment files (or catalog names) without running them; exit 2 if invalid."""
    from ..experiment import ExperimentError, load_experiment

    bad = 0
    for name in files:
        try:
            path, experiment = load_experiment(name)
        except ExperimentError as exc:
            bad += 1
            console.print(f"[red]{exc}[/]")
            continue
        console.print(f"[green]valid[/] {path}: {experiment.title} "
                      f"({len(experiment.faults)} faults, ~{experiment.planned_seconds():.0f}s)")
    sys.exit(2 if bad else 0)



@main.command()
@click.option("--shop", "shop_text", default="resilient", show_default=True, help=SHOP_HELP)
@click.option("--expected", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The expectations file (default chaos/matrix/expected.yaml).")
@click.option("--tries", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Times each feature is tried per cell (the cell is the worst).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for matrix.md/.html/.json (default reports/matrix-<time>).")
@click.option("--manage-stack", is_flag=True)
@friendly
def matrix(shop_text: str, expected: Path | None, tries: int, out: Path | None,
           manage_stack: bool) -> None:
    """Fill the resiliency matrix (dependency x degraded/down x feature); exit 1 where a cell
    is worse than expected."""
    from ..matrix import load_expected
    from ..run import run_lock
    from ..session import managed_stack
    from ..shop import SAFEGUARD_JOURNAL, ShopClient, shop_profile
    from .matrix.run import EXPECTED_FILE, run, write

    profile = shop_option(shop_text)
    wanted = load_expected(expected or EXPECTED_FILE)  # a bad file fails before anything runs
    out = report_dir(out, "matrix")
    with managed_stack(env_stack(), manage_stack, say) as stack, \
            run_lock(stack.run_dir, "matrix"):
        console.print(f"the shop: {profile.describe()}")
        with shop_profile(ShopClient(stack.config.shop_url), stack.restart_shop, profile.off,
                          journal=stack.run_dir / SAFEGUARD_JOURNAL):
            stack.faults.sweep()
            try:
                result = run(stack.config.shop_url, stack.faults, wanted, profile.describe(),
                             tries, progress=lambda line: console.print(f"  {line}"))
            finally:
                stack.faults.sweep()
    paths = write(result, out)
    Console().print(Markdown(paths["markdown"].read_text()))
    console.print(f"matrix: {paths['html']}")
    sys.exit(1 if result.failures else 0)


@main.command()
@click.option("--examples", type=click.IntRange(1, 10_000), default=25, show_default=True,
              help="Examples per operation (the long mode: 300).")
@click.option("--seconds", type=click.FloatRange(10, 7200), default=300, show_default=True,
              help="The whole run's limit.")
@click.option("--seed", type=int, default=None, help="Replay a run (its log names the seed).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the log and JUnit (default reports/fuzz-<time>).")
@click.option("--manage-stack", is_flag=True,
              help="Bring the stack up if it is down, and down again afterwards.")
@friendly
def fuzz(examples: int, seconds: float, seed: int | None, out: Path | None,
         manage_stack: bool) -> None:
    """Schemathesis against the live shop's OpenAPI document, through Toxiproxy: no 5xx,
    every answer as documented, every error problem+json. Exit 1 on any failure."""
    from ..fuzz import run_fuzz
    from ..run import run_lock
    from ..session import managed_stack

    out = report_dir(out, "fuzz")
    with managed_stack(env_stack(), manage_stack, say) as stack, \
            run_lock(stack.run_dir, "fuzz"):
        say(f"fuzzing {stack.config.shop_url}/api/openapi.json ({examples} examples per "
            f"operation, at most {seconds:.0f} s)")
        result = run_fuzz(stack.faults, stack.config.ports.shop, out, examples, seconds, seed)
    console.print(("[green]" if result.passed else "[red]") + result.summary() + "[/]")
    if not result.passed:
        console.print(result.log.read_text()[-6000:])
    sys.exit(0 if result.passed else 1)
