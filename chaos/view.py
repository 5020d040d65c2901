"""The live terminal view of a running experiment (rich), or plain lines when not a TTY."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live as RichLive
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .run.journal import Live, View


@contextmanager
def live_view(console: Console, title: str) -> Iterator[View]:
    """A view callback; a progress bar and a table on a terminal, a line every 5 s elsewhere."""
    if not console.is_terminal:
        last_at, last_phase = [0.0], [""]

        def plain(live: Live) -> None:
            now = time.time()
            if live.phase != last_phase[0] or now - last_at[0] >= 5:
                last_at[0], last_phase[0] = now, live.phase
                console.print(_line(live))

        yield plain
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                        console=console)
    task = progress.add_task(title, total=1.0)
    with RichLive(console=console, refresh_per_second=4, transient=False) as rich_live:

        def fancy(live: Live) -> None:
            elapsed = time.time() - live.started
            progress.update(task, completed=min(1.0, elapsed / max(live.planned, 1.0)),
                            description=f"{title} · {live.phase}")
            rich_live.update(Group(progress, _table(live)))

        yield fancy


def _table(live: Live) -> Table:
    row = live.last_row
    table = Table(show_header=True, header_style="bold", box=None)
    for column in ("phase", "req/s", "ok", "degraded", "graceful", "declined", "ungraceful",
                   "false decline", "p95 ms", "active faults"):
        table.add_column(column)
    table.add_row(live.phase, str(row.get("requests", "-")), str(live.totals.get("ok", 0)),
                  str(live.totals.get("degraded", 0)), str(live.totals.get("graceful_error", 0)),
                  str(live.totals.get("declined", 0)), _alarm(live.totals.get("ungraceful", 0)),
                  _alarm(live.totals.get("false_decline", 0)), str(row.get("p95_ms", "-")),
                  ", ".join(live.active_faults) or "none")
    return table


def _alarm(count: int) -> str:
    return f"[red]{count}[/]" if count else "0"


def _line(live: Live) -> str:
    row = live.last_row
    left = max(0.0, live.planned - (time.time() - live.started))
    return (f"\\[{live.phase}] ~{left:.0f}s left · {row.get('requests', 0)} req/s · "
            f"ok {live.totals.get('ok', 0)} graceful {live.totals.get('graceful_error', 0)} "
            f"ungraceful {live.totals.get('ungraceful', 0)} false decline "
            f"{live.totals.get('false_decline', 0)} · faults: "
            f"{', '.join(live.active_faults) or 'none'}")
