"""Resilient vs fragile, side by side: two gate report folders (the same experiments run
against two shops) become one table and one chart of what shoppers saw while each
dependency was broken: checkout success, graceful answers, p99 latency, and how soon the
status page said so and the shop recovered."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.classify import GIVE_UP_SECONDS

from .errors import HarnessError


@dataclass(frozen=True, slots=True)
class Side:
    """One experiment's fault-phase figures in one gate folder."""

    verdict: str
    checkouts: int
    success: float | None
    ungraceful: int
    checkout_success: float | None
    checkout_graceful: float | None
    graceful: float | None
    p99_ms: float | None
    told_after: float | None
    cleared_after: float | None
    recovery: float | None
    hung: int = 0  # requests made in the fault that the shopper gave up on (no answer)
    answered: int = 0  # answers the load got in the fault window

    @classmethod
    def read(cls, folder: Path) -> Side:
        """From the experiment's journal.json."""
        try:
            journal = json.loads((folder / "journal.json").read_text())
        except (OSError, ValueError) as exc:
            raise HarnessError(f"cannot read {folder / 'journal.json'}: {exc}") from exc
        fault = journal.get("phase_stats", {}).get("fault", {})
        comms = list((journal.get("communication") or {}).values())
        first = comms[0] if comms else {}
        # The fault phase's ungraceful count as judged: it includes requests made during
        # the fault that hung until the shopper gave up.
        judged = [h["value"] for h in journal.get("hypotheses", [])
                  if h.get("phase") == "fault" and h.get("probe") == "ungraceful"
                  and h.get("value") is not None]
        ungraceful = int(max(judged)) if judged else int(fault.get("ungraceful", 0))
        hung = max(0, ungraceful - int(fault.get("ungraceful", 0)))
        answered = sum(fault.get("classes", {}).values())
        graceful = fault.get("graceful_ratio")
        if hung and answered:
            # The hung requests never reached the window's answers: count them in.
            graceful = (answered - int(fault.get("ungraceful", 0))) / (answered + hung)
        return cls(journal["verdict"], int(fault.get("checkouts", 0)),
                   fault.get("success_ratio"), ungraceful, fault.get("checkout_success_ratio"),
                   fault.get("checkout_graceful_ratio"), graceful,
                   fault.get("p99_ms"), first.get("time_to_communicate"),
                   first.get("time_to_clear"), journal.get("recovery_time"), hung, answered)

    def p99(self) -> str:
        """The fault phase's p99; at least the give-up time when more than 1 % hung."""
        if self.hung and self.hung / (self.hung + self.answered) > 0.01:
            return f"≥ {GIVE_UP_SECONDS:g} s ({self.hung} hung)"
        return _num(self.p99_ms, " ms")


def compare(resilient: Path, fragile: Path) -> list[tuple[str, Side, Side]]:
    """(experiment, resilient side, fragile side) for every experiment in both folders."""
    names = sorted(p.name for p in resilient.iterdir() if (p / "journal.json").is_file()
                   and (fragile / p.name / "journal.json").is_file())
    if not names:
        raise HarnessError(f"no experiment ran in both {resilient} and {fragile}")
    return [(n, Side.read(resilient / n), Side.read(fragile / n)) for n in names]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, unit: str = "") -> str:
    return "never" if value is None else f"{value:g}{unit}"


def markdown(rows: list[tuple[str, Side, Side]]) -> str:
    """The comparison table."""
    lines = ["# Resilient vs fragile shop, while each dependency is broken", "",
             "| experiment | shop | verdict | checkouts answered | checkout success | "
             "all answers ok | graceful | ungraceful | p99 | status page told | "
             "cleared after recovery | recovered |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, res, fra in rows:
        for label, side in (("resilient", res), ("fragile", fra)):
            lines.append(
                f"| {name} | {label} | {side.verdict} | {side.checkouts} | "
                f"{_pct(side.checkout_success)} | {_pct(side.success)} | "
                f"{_pct(side.graceful)} | {side.ungraceful} | "
                f"{side.p99()} | {_num(side.told_after, ' s')} | "
                f"{_num(side.cleared_after, ' s')} | {_num(side.recovery, ' s')} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[tuple[str, Side, Side]]) -> str:
    """Grouped bars (checkout success and p99, resilient vs fragile) as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _, _ in rows]
    x = range(len(names))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 1.6 * len(names)), 6.5))
    sides = {"resilient": [r for _, r, _ in rows], "fragile": [f for _, _, f in rows]}
    for offset, label, colour in ((-0.2, "resilient", "#2b8a3e"), (0.2, "fragile", "#c92a2a")):
        top.bar([i + offset for i in x], [100 * (s.checkout_success or 0) for s in sides[label]],
                0.4, label=label, color=colour)
        bottom.bar([i + offset for i in x], [s.p99_ms or 0 for s in sides[label]], 0.4,
                   label=label, color=colour)
    top.set_ylabel("checkout success, %")
    bottom.set_ylabel("p99 latency, ms")
    for ax in (top, bottom):
        ax.set_xticks(list(x), names, rotation=15, fontsize=8)
        ax.legend(fontsize=8)
    top.set_title("While the dependency is broken")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write(rows: list[tuple[str, Side, Side]], out: Path) -> dict[str, Path]:
    """compare.md and compare.html (with the chart) in out."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    paths = {"markdown": out / "compare.md", "html": out / "compare.html"}
    paths["markdown"].write_text(text)
    table_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell.strip())}</td>"
                         for cell in line.strip("|").split("|")) + "</tr>"
        for line in text.splitlines()[4:])
    paths["html"].write_text(
        "<!doctype html><meta charset='utf-8'><title>Resilient vs fragile</title>"
        "<style>body{font-family:sans-serif}td{padding:4px 8px;border:1px solid #ccc}"
        "table{border-collapse:collapse}</style><h1>Resilient vs fragile shop</h1>"
        f"<img src='{chart(rows)}' alt='checkout success and p99, resilient vs fragile'>"
        f"<table>{table_rows}</table>")
    return paths


def as_json(rows: list[tuple[str, Side, Side]]) -> list[dict[str, Any]]:
    """For scripts."""
    from dataclasses import asdict

    return [{"experiment": n, "resilient": asdict(r), "fragile": asdict(f)} for n, r, f in rows]
