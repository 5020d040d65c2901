"""checkout-chaos: the command line. Errors say what to fix; --debug shows tracebacks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from .errors import HarnessError
from .stack import PROJECT_ROOT, Stack, StackConfig
from .vocabulary import STATUS_NAME

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn HarnessError (and anything unexpected) into a message and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except HarnessError as exc:
            if debug:
                raise
            console.print(f"[bold red]error:[/] {exc}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            sys.exit(130)
        except Exception as exc:
            if debug:
                raise
            console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc}\n"
                          "Run again with --debug for the traceback.")
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _report_dir(out: Path | None, name: str) -> Path:
    """The folder asked for, or reports/<name>-<time>."""
    return out or PROJECT_ROOT / "reports" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _stack() -> Stack:
    return Stack(StackConfig.from_env(), progress=lambda m: console.print(f"  {m}"))


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def main(debug: bool) -> None:
    """Chaos experiments for e-commerce checkout."""


@main.command()
@click.option("--observe", is_flag=True, help="Start Prometheus too (as `observe`).")
@friendly
def up(observe: bool) -> None:
    """Start the stack: PostgreSQL, Redis, Toxiproxy, payments, inventory, the shop."""
    stack = _stack()
    started = time.monotonic()
    stack.up()
    if observe:
        stack.observe()
    c = stack.config
    console.print(f"[green]stack up[/] in {time.monotonic() - started:.1f}s")
    console.print(f"  shop        {c.shop_url}")
    console.print(f"  status page {c.shop_url}/status")
    console.print(f"  metrics     {c.shop_url}/metrics")
    console.print(f"  toxiproxy   {c.toxiproxy_url} "
                  "(proxies: payments, inventory, postgres, redis)")
    if stack.prometheus_url():
        console.print(f"  prometheus  {c.prometheus_url}")
    console.print(f"  logs        {c.run_dir / 'logs'}")


@main.command()
@click.option("--scrape-interval", default="2s", show_default=True,
              help="How often Prometheus scrapes (a Prometheus duration).")
@friendly
def observe(scrape_interval: str) -> None:
    """Prometheus beside the stack (brought up if it is down): it scrapes the shop, payments,
    inventory, Toxiproxy and the harness; `down` stops it."""
    from .session import ensure_stack

    stack = _stack()
    ensure_stack(stack, True, _say)  # and left up: Prometheus watches it
    stack.observe(scrape_interval)
    c = stack.config
    console.print(f"[green]observing[/]: Prometheus {c.prometheus_url} "
                  f"(targets: {c.prometheus_url}/targets, alerts: {c.prometheus_url}/alerts)")
    console.print("  Grafana: `make grafana` (Docker), or point a Grafana at "
                  f"{PROJECT_ROOT / 'grafana' / 'provisioning'} (see README, Dashboards)")


@main.command()
@click.option("--keep-data", is_flag=True, help="Keep the databases for the next `up`.")
@friendly
def down(keep_data: bool) -> None:
    """Stop every process the stack started (and only those); sweep harness toxics."""
    stopped = _stack().down(keep_data=keep_data)
    console.print(f"[green]stack down[/] ({len(stopped)} processes stopped)")


@main.command()
@friendly
def status() -> None:
    """Each process, its port and health. Exit 1 when something is not healthy."""
    rows = _stack().status()
    table = Table("component", "pid", "port", "state", "health")
    for row in rows:
        state = "[green]running[/]" if row.running else "[red]stopped[/]"
        health = f"[green]{row.detail}[/]" if row.healthy else f"[red]{row.detail}[/]"
        table.add_row(row.name, str(row.pid or "-"), str(row.port), state, health)
    Console().print(table)
    sys.exit(0 if all(r.healthy for r in rows) else 1)


@main.command()
@friendly
def sweep() -> None:
    """Remove every harness-made toxic, re-enable disabled proxies, clear service faults."""
    stack = _stack()
    done = stack.faults.sweep() + stack.app_faults.sweep()
    for line in done:
        console.print(f"  {line}")
    console.print(f"[green]swept[/] ({len(done)} changes)")


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
    from .outage import run_outage
    from .session import managed_stack

    out = _report_dir(out, "outage")
    with managed_stack(_stack(), manage_stack, _say) as stack:
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
@friendly
def load(profile: str, users: str, duration: str, processes: str, spawn_rate: str,
         day_minutes: str, host: str | None, ui: bool, out: Path | None) -> None:
    """Labor Day-scale shopping load with Locust; exit 1 if any answer was ungraceful."""
    from loadtests import run as load_run

    out = _report_dir(out, "load")
    try:
        plan = load_run.plan(host or StackConfig.from_env().shop_url, profile, users, duration,
                             processes, out, spawn_rate, ui, day_minutes)
        load_run.check_host(plan.host)
    except load_run.LoadInputError as exc:
        raise HarnessError(str(exc)) from exc
    console.print(f"load: {plan.profile}, {plan.users} users, {plan.duration}s, "
                  f"{plan.processes} process(es) -> {out}")
    code = load_run.run(plan)
    if not (out / "timeline.jsonl").exists():
        raise HarnessError(f"locust wrote no timeline (exit code {code}); see its output above")
    summary = load_run.summarise(out)
    Console().print(Markdown(summary.table()))
    console.print(f"timeline: {out / 'timeline.jsonl'}  locust report: {out / 'locust.html'}")
    sys.exit(1 if summary.ungraceful or code not in (0,) else 0)


@main.command()
@click.option("--evidence", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A load run folder with evidence-*.jsonl (what shoppers were told).")
@click.option("--since-minutes", type=click.FloatRange(min=0), default=0.0,
              help="Only orders and charges of the last N minutes (0: everything).")
@friendly
def audit(evidence: Path | None, since_minutes: float) -> None:
    """The ledger audit on the running stack: exit 0 clean, 1 with violations listed."""
    from .audit import read_evidence, run_audit

    config = StackConfig.from_env()
    since = time.time() - since_minutes * 60 if since_minutes else 0.0
    result = run_audit(read_evidence(evidence) if evidence else [],
                       config.direct_database_url, config.payments_url, config.inventory_url,
                       since=since)
    console.print(f"audited {result.orders} orders, {result.charges} charges, "
                  f"{result.told_confirmed} confirmations shoppers were told of")
    for v in result.violations:
        console.print(f"[red]{v.rule}[/]: {v.detail} {v.ids}")
    console.print("[green]clean: nothing lost[/]" if result.clean
                  else f"[red]{len(result.violations)} violation(s)[/]")
    sys.exit(0 if result.clean else 1)


@main.command("list")
@friendly
def list_experiments() -> None:
    """The experiment catalog."""
    from .experiment import catalog

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
    from .experiment import ExperimentError, load_experiment

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


OBSERVE_HELP = ("Start Prometheus beside the stack, so the report draws the shop's own "
                "series too.")
SHOP_HELP = ("The shop to run against: resilient, fragile (every safeguard off) or "
             "without:<safeguard>[,...]. Default: what each experiment declares.")


def _shop_profile(text: str | None) -> Any:
    from .experiment import ShopProfile

    if text is None:
        return None
    try:
        return ShopProfile.parse(text)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise click.BadParameter(str(exc).splitlines()[-1] if "\n" in str(exc) else str(exc),
                                 param_hint="--shop") from None


def _view_for(name: str) -> Any:
    from .view import live_view

    return live_view(console, name)


def _say(line: str) -> None:
    console.print(line)


@main.command()
@click.argument("experiment")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Report folder (default reports/<name>-<time>).")
@click.option("--manage-stack", is_flag=True,
              help="Bring the stack up if it is down, and down again afterwards.")
@click.option("--shop", "shop_text", default=None, help=SHOP_HELP)
@click.option("--observe", is_flag=True, help=OBSERVE_HELP)
@friendly
def run(experiment: str, out: Path | None, manage_stack: bool, shop_text: str | None,
        observe: bool) -> None:
    """Run one experiment (a file or a catalog name). Exit 0 held, 1 failed, 2 not run."""
    from .experiment import load_experiment
    from .session import managed_stack, run_experiment

    shop = _shop_profile(shop_text)
    path, _ = load_experiment(experiment)  # a bad file fails before the stack is touched
    out = _report_dir(out, path.stem)
    with managed_stack(_stack(), manage_stack, _say) as stack:
        if observe:
            stack.observe()
        ran = run_experiment(str(path), stack, out, _view_for, shop=shop)
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
@friendly
def gate(tags: tuple[str, ...], names: tuple[str, ...], time_scale: float, out: Path | None,
         manage_stack: bool, shop_text: str | None, observe: bool) -> None:
    """Run the catalog as a CI gate: one JUnit file and one summary; exit 1 if any failed."""
    from .experiment import catalog
    from .session import managed_stack, run_gate

    shop = _shop_profile(shop_text)
    chosen = [(p, e) for p, e in catalog() if (not tags or set(tags) & set(e.tags))
              and (not names or p.stem in names)]
    if not chosen:
        raise HarnessError(f"no experiment matches tag {', '.join(tags) or '(any)'} and "
                           f"name {', '.join(names) or '(any)'}: see `checkout-chaos list`")
    out = _report_dir(out, "gate")
    with managed_stack(_stack(), manage_stack, _say) as stack:
        if observe:
            stack.observe()
        outcome = run_gate(chosen, stack, out, _view_for, time_scale, shop, _say)
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
    from . import compare as comparison

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
    from .experiment import SAFEGUARDS_DIR, catalog
    from .report import proof_markdown
    from .session import managed_stack, run_proof

    chosen = [(p, e) for p, e in catalog(SAFEGUARDS_DIR) if not names or p.stem in names]
    if not chosen:
        raise HarnessError(f"no safeguard experiment named {', '.join(names)} "
                           f"(see {SAFEGUARDS_DIR})")
    out = _report_dir(out, "proof")
    with managed_stack(_stack(), manage_stack, _say) as stack:
        proofs = run_proof(chosen, stack, out, _view_for, time_scale)
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

    from .mutants import load_mutants, run_mutants

    chosen = [m for m in load_mutants() if (not quick or m.quick)
              and (not names or m.name in names)]
    if not chosen:
        raise HarnessError(f"no mutant named {', '.join(names)} (see chaos/mutants.yaml)")
    out = _report_dir(out, "mutants")
    os.environ["CC_HISTORY_FILE"] = str(out / "history.jsonl")  # not the main history
    console.print(f"{len(chosen)} mutants, each on a stack of its own, then the table")
    result = run_mutants(chosen, out, time_scale, lambda line: console.print(f"  {line}"))
    paths = result.write(out)
    Console().print(Markdown(paths["markdown"].read_text()))
    console.print(f"mutants: {paths['markdown']}")
    sys.exit(0 if result.passed else 1)


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
    from .matrix import load_expected
    from .matrix.run import EXPECTED_FILE, run, write
    from .session import managed_stack
    from .shop import ShopClient, shop_profile

    profile = _shop_profile(shop_text)
    wanted = load_expected(expected or EXPECTED_FILE)  # a bad file fails before anything runs
    out = _report_dir(out, "matrix")
    with managed_stack(_stack(), manage_stack, _say) as stack:
        console.print(f"the shop: {profile.describe()}")
        with shop_profile(ShopClient(stack.config.shop_url), stack.restart_shop, profile.off):
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


if __name__ == "__main__":
    main()
