"""Commands for the stack itself: up, observe, down, status, sweep."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import HarnessError
from ..stack import PROJECT_ROOT
from .common import (
    console,
    env_stack,
    friendly,
    main,
    say,
    stack_and_target,
    target_option,
)


@main.command()
@click.option("--observe", is_flag=True, help="Start Prometheus too (as `observe`).")
@target_option
@friendly
def up(observe: bool, target_file: Path | None) -> None:
    """Start the stack: PostgreSQL, Redis, Toxiproxy, payments, inventory, and the shop
    the target names (the reference shop by default)."""
    stack, target = stack_and_target(target_file)
    if target.stack is None:
        raise HarnessError(f"target {target.name} is a shop you run yourself (no `stack:` in "
                           "its file): the harness starts nothing for it; run experiments "
                           "against it with TARGET=")
    stack.refuse_other_shop()
    started = time.monotonic()
    stack.up()
    if observe:
        stack.observe()
    c = stack.config
    console.print(f"[green]stack up[/] in {time.monotonic() - started:.1f}s")
    console.print(f"  shop        {target.shop.base_url} ({target.name})")
    console.print(f"  status page {target.shop.base_url}{target.status.route}" if target.status
                  else "  status page none (the target has no status page)")
    if target.shop.metrics:
        console.print(f"  metrics     {target.shop.base_url}{target.shop.metrics}")
    console.print(f"  toxiproxy   {c.toxiproxy_url} (proxies: "
                  f"{', '.join(s.name for s in c.proxy_specs())})")
    if stack.prometheus_url():
        console.print(f"  prometheus  {c.prometheus_url}")
    console.print(f"  logs        {c.run_dir / 'logs'}")


@main.command()
@click.option("--scrape-interval", default="2s", show_default=True,
              help="How often Prometheus scrapes (a Prometheus duration).")
@friendly
def observe(scrape_interval: str) -> None:
    """Prometheus and Alertmanager beside the stack (brought up if it is down): Prometheus
    scrapes the shop, payments, inventory, Toxiproxy and the harness, and its alerts go
    through Alertmanager to the harness's receiver during runs; `down` stops both."""
    from ..session import ensure_stack

    stack = env_stack()
    ensure_stack(stack, True, say)  # and left up: Prometheus watches it
    stack.observe(scrape_interval)
    c = stack.config
    console.print(f"[green]observing[/]: Prometheus {c.prometheus_url} "
                  f"(targets: {c.prometheus_url}/targets, alerts: {c.prometheus_url}/alerts), "
                  f"Alertmanager {c.alertmanager_url} (pages to 127.0.0.1:{c.ports.pager} "
                  "while a run runs)")
    console.print("  Grafana: `make grafana` (Docker), or point a Grafana at "
                  f"{PROJECT_ROOT / 'grafana' / 'provisioning'} (see docs/dashboards.md)")


@main.command()
@click.option("--keep-data", is_flag=True, help="Keep the databases for the next `up`.")
@friendly
def down(keep_data: bool) -> None:
    """Stop every process the stack started (and only those), whichever shop it runs;
    sweep harness toxics."""
    from ..lanes import clear_leftover_lanes
    from ..run.safety import kill_leftover_load
    from ..shop import SAFEGUARD_JOURNAL

    stack = env_stack()
    for line in kill_leftover_load(stack.run_dir):  # a killed runner's Locust
        console.print(f"  cleared a killed run's leftover: {line}")
    stopped = stack.down(keep_data=keep_data)
    journal = stack.run_dir / SAFEGUARD_JOURNAL
    if journal.exists():  # the shop it was about is stopped: the next start has them all
        journal.unlink()
        console.print("  cleared a killed run's safeguard journal (the shop starts with "
                      "every safeguard on)")
    console.print(f"[green]stack down[/] ({len(stopped)} processes stopped)")
    for line in clear_leftover_lanes(lambda message: console.print(f"  {message}")):
        console.print(f"  cleared a gate's leftover: {line}")


@main.command()
@target_option
@friendly
def status(target_file: Path | None) -> None:
    """Each process, its port and health. Exit 1 when something is not healthy."""
    stack = env_stack(target_file)
    running = stack.running_shop()
    if running is not None and running != stack.config.shop_app:
        stack = env_stack(PROJECT_ROOT / "targets" / f"{running}.yaml")
    rows = stack.status()
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
    from ..run import run_lock

    stack = env_stack()
    with run_lock(stack.run_dir, "sweep"):  # never under a running experiment's feet
        done = stack.faults.sweep() + stack.app_faults.sweep()
    for line in done:
        console.print(f"  {line}")
    console.print(f"[green]swept[/] ({len(done)} changes)")
