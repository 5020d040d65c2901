"""Reports of a run: JSON journal, JUnit XML, Markdown summary, HTML with charts, history."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run.journal import RunResult
from .stack import PROJECT_ROOT


def history_file() -> Path:
    """Where scores are kept across runs (CC_HISTORY_FILE, default reports/history.jsonl)."""
    return Path(os.environ.get("CC_HISTORY_FILE", PROJECT_ROOT / "reports" / "history.jsonl"))


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def journal(result: RunResult) -> dict[str, Any]:
    """The whole run as data."""
    return {
        "experiment": result.experiment.model_dump(by_alias=True),
        "source": result.source,
        "verdict": result.verdict,
        "reason": result.reason,
        "score": result.score,
        "started": result.started,
        "ended": result.ended,
        "phase_verdicts": result.phase_verdicts(),
        "journal": [e.as_json() for e in result.journal],
        "hypotheses": [r.as_json() for r in result.results],
        "windows": {k: w.as_json() for k, w in result.windows.items()},
        "faults": result.fault_log,
        "phase_stats": result.phase_stats,
        "recovery_time": result.recovery_time,
        "abort": result.abort,
        "communication": result.communication,
        "surfaces": result.surfaces,
        "paging": result.paging,
        "notes": result.notes,
        "not_judged": result.not_judged,
        "prometheus": result.prometheus,
        "audit": result.audit.as_json() if result.audit else None,
    }


def junit_suite(result: RunResult, name: str) -> ET.Element:
    """One testsuite; one testcase per hypothesis, so CI shows which one failed."""
    suite = ET.Element("testsuite", name=name)
    figures = {f"{probe}.{dep}": value
               for dep, c in result.communication.items() for probe, value in c.items()}
    figures |= {f"{probe}.{dep}.{surface.replace(' ', '_')}": value
                for surface, deps in result.surfaces.items()
                for dep, c in deps.items() for probe, value in c.items()}
    figures |= {f"{probe}.{dep}": value
                for dep, c in result.paging.get("dependencies", {}).items()
                for probe, value in c.items()}
    if figures:  # CI shows the seconds each surface and each page took, judged or not
        properties = ET.SubElement(suite, "properties")
        for key, value in sorted(figures.items()):
            ET.SubElement(properties, "property", name=key,
                          value="never" if value is None else f"{value:g}")
    cases = 0
    failures = errors = skipped = 0
    for r in result.results:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{r.phase}", name=r.name,
                             time="0")
        cases += 1
        if not r.held:
            failures += 1
            failure = ET.SubElement(case, "failure", type=r.probe,
                                    message=f"{r.name}: measured {_fmt(r.value)}, "
                                            f"wanted {r.tolerance}"
                                            + (f" ({r.note})" if r.note else ""))
            failure.text = f"phase {r.phase}, probe {r.probe}"
    for what in result.not_judged:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.audit", name=what, time="0")
        cases += 1
        skipped += 1
        ET.SubElement(case, "skipped", message="not judged: the run had no source for it")
    if result.verdict == "skipped":
        case = ET.SubElement(suite, "testcase", classname=f"{name}.run", name="run", time="0")
        cases += 1
        skipped += 1
        ET.SubElement(case, "skipped", message=result.reason)
    if result.verdict in ("aborted", "error", "not_run"):
        case = ET.SubElement(suite, "testcase", classname=f"{name}.run", name="run completed",
                             time="0")
        cases += 1
        element = "failure" if result.verdict in ("aborted", "not_run") else "error"
        if element == "failure":
            failures += 1
        else:
            errors += 1
        ET.SubElement(case, element, type=result.verdict, message=result.reason)
    duration = (result.ended or time.time()) - result.started
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{duration:.1f}")
    return suite


def write_junit(suites: list[ET.Element], path: Path) -> None:
    """A JUnit XML file with one or more testsuites."""
    root = ET.Element("testsuites")
    for attr in ("tests", "failures", "errors"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))
    root.extend(suites)
    ET.indent(root)
    path.write_text(ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")


def markdown(result: RunResult, name: str) -> str:
    """A summary fit for a CI job summary."""
    icon = {"passed": "PASS", "failed": "FAIL", "aborted": "ABORTED", "not_run": "NOT RUN",
            "error": "ERROR", "skipped": "SKIPPED"}[result.verdict]
    lines = [f"## {result.experiment.title} — {icon} (score {result.score:g}/100)", "",
             f"`{name}` · {result.reason}", ""]
    if result.phase_stats:
        lines += ["| phase | requests/s | success | checkout success | p95 ms | ungraceful |",
                  "|---|---:|---:|---:|---:|---:|"]
        for phase, s in result.phase_stats.items():
            lines.append(f"| {phase} | {s['requests_per_s']} | {_pct(s['success_ratio'])} | "
                         f"{_pct(s['checkout_success_ratio'])} | {_fmt(s['p95_ms'])} | "
                         f"{s['ungraceful']} |")
        lines.append("")
    if result.results:
        lines += ["| phase | hypothesis | measured | wanted | |", "|---|---|---:|---|---|"]
        for r in result.results:
            verdict = "held" if r.held else "**failed**" + (f" ({r.note})" if r.note else "")
            lines.append(f"| {r.phase} | {r.name} | {_fmt(r.value)} | {r.tolerance} | "
                         f"{verdict} |")
        lines.append("")
    if result.communication:
        told = "; ".join(f"{dep}: told after {_fmt(c['time_to_communicate'])} s, cleared "
                         f"{_fmt(c['time_to_clear'])} s after recovery"
                         for dep, c in result.communication.items())
        lines += [f"Status page: {told} (- means never).", ""]
    for surface, deps in result.surfaces.items():
        told = "; ".join(f"{dep}: named after {_fmt(c['time_to_communicate'])} s, cleared "
                         f"{_fmt(c['time_to_clear'])} s after recovery"
                         for dep, c in deps.items())
        lines += [f"The {surface}: {told} (- means never).", ""]
    if result.paging:
        paged = "; ".join(f"{dep}: paged after {_fmt(c['time_to_page'])} s, resolved "
                          f"{_fmt(c['time_to_resolve'])} s after recovery"
                          for dep, c in result.paging["dependencies"].items())
        unrelated = ", ".join(result.paging["unrelated"]) or "none"
        lines += [f"Paging (Alertmanager): {paged} (- means never); unrelated alerts: "
                  f"{unrelated}.", ""]
    if result.not_judged:
        lines += ["Not judged (the run had no source for them): "
                  + "; ".join(result.not_judged) + ".", ""]
    if result.abort:
        lines.append(f"Stop condition **{result.abort['condition']}** met; every fault was "
                     f"rolled back {result.abort.get('latency', 0):.3f} s later.")
    if result.audit and result.audit.violations:
        lines.append(f"Ledger audit: {len(result.audit.violations)} violation(s):")
        lines += [f"- {v.rule}: {v.detail} {v.ids}" for v in result.audit.violations[:20]]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart of the report: a PNG (base64), what it shows and where its data came from."""

    title: str
    png: str
    source: str  # "load" (the load's timeline) or "prometheus" (the stack's Prometheus)
    fault_windows: int


COLOURS = {"ok": "#2e7d32", "degraded": "#9ccc65", "graceful_error": "#ffb300",
           "declined": "#90a4ae", "ungraceful": "#c62828"}
LINE_COLOURS = ("#1e88e5", "#fb8c00", "#c62828", "#2e7d32", "#8e24aa", "#6d4c41", "#00897b")


def charts(result: RunResult) -> list[Chart]:
    """The report's charts, each with the fault windows shaded red and the steady-state
    windows blue: what the load's shoppers saw (request rate and checkouts by class, latency
    percentiles) and, when Prometheus ran, the shop's own key panels from query_range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows
    if not rows:
        return []
    t0 = rows[0]["ts"]
    xs = [r["ts"] - t0 for r in rows]
    windows = _fault_spans(result)

    def decorate(ax: Any) -> None:
        for start, end, label in windows:
            ax.axvspan(start - t0, end - t0, color="#e53935", alpha=0.15, label=label)
        for name in ("baseline", "after"):
            w = result.windows.get(name)
            if w:
                ax.axvspan(w.start - t0, w.end - t0, color="#1e88e5", alpha=0.06)
        ax.set_xlabel("seconds since the load started")
        ax.set_xlim(0, max(xs[-1], 1))
        ax.grid(alpha=0.3)

    out: list[Chart] = []

    def keep(fig: Any, ax: Any, title: str, source: str) -> None:
        decorate(ax)
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=7, ncol=3)
        out.append(Chart(title, _png(fig), source, len(windows)))

    fig, ax = plt.subplots(figsize=(10, 3.2))
    bottom = [0] * len(rows)
    for cls, colour in COLOURS.items():
        values = [r.get(cls, 0) for r in rows]
        ax.bar(xs, values, bottom=bottom, width=1.0, color=colour, label=cls, linewidth=0)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("answers / s")
    keep(fig, ax, "Requests per second by class, as shoppers saw them", "load")

    fig, ax = plt.subplots(figsize=(10, 3.2))
    for key, colour in (("p50_ms", "#1e88e5"), ("p95_ms", "#fb8c00"), ("p99_ms", "#c62828")):
        ax.plot(xs, [r[key] for r in rows], color=colour, label=key.replace("_ms", ""))
    ax.set_ylabel("ms")
    keep(fig, ax, "Latency percentiles per second, as shoppers saw them", "load")

    fig, ax = plt.subplots(figsize=(10, 3.2))
    for cls, colour in COLOURS.items():
        ax.plot(xs, [r.get(f"checkout_{cls}", 0) for r in rows], color=colour, label=cls)
    ax.set_ylabel("checkouts / s")
    keep(fig, ax, "Checkout answers per second by class, as shoppers saw them", "load")

    for chart in result.prometheus.values():
        fig, ax = plt.subplots(figsize=(10, 3.2))
        for (label, points), colour in zip(sorted(chart["lines"].items()),
                                           LINE_COLOURS * 4, strict=False):
            ax.plot([t - t0 for t, _ in points], [v for _, v in points], color=colour,
                    label=label, drawstyle="steps-post" if "state" in chart["unit"] else None)
        ax.set_ylabel(chart["unit"])
        keep(fig, ax, f"{chart['title']} — Prometheus", "prometheus")
    plt.close("all")
    return out


def _fault_spans(result: RunResult) -> list[tuple[float, float, str]]:
    spans, opened = [], {}
    for event in result.fault_log:
        if event["event"] == "injected":
            opened[event["fault"]] = event["at"]
        elif event["fault"] in opened:
            spans.append((opened.pop(event["fault"]), event["at"], event["fault"]))
    end = result.ended or time.time()
    spans += [(start, end, name) for name, start in opened.items()]
    return spans


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def _told_and_paged(result: RunResult) -> list[str]:
    """The seconds each surface took to name each dependency and to clear it, and each
    page's time to page and to resolve (- never)."""
    told = {"status API": result.communication, **result.surfaces}
    rows = [f"<tr><td>{html.escape(surface)}</td><td>{html.escape(dep)}</td>"
            f"<td>{_fmt(c.get('time_to_communicate'))}</td>"
            f"<td>{_fmt(c.get('time_to_clear'))}</td></tr>"
            for surface, deps in told.items() for dep, c in deps.items()]
    rows += [f"<tr><td>page (Alertmanager)</td><td>{html.escape(dep)}</td>"
             f"<td>{_fmt(c.get('time_to_page'))}</td><td>{_fmt(c.get('time_to_resolve'))}"
             "</td></tr>" for dep, c in result.paging.get("dependencies", {}).items()]
    if not rows:
        return []
    out = ["<h2>What shoppers were told, and who was paged</h2><table id='told'><tr>"
           "<th>surface</th><th>dependency</th><th>named after (s)</th>"
           "<th>cleared after recovery (s)</th></tr>", *rows, "</table>"]
    if result.paging:
        unrelated = ", ".join(result.paging.get("unrelated", [])) or "none"
        out.append(f"<p>Alerts naming a dependency that worked: {html.escape(unrelated)}</p>")
    return out


def html_report(result: RunResult, name: str, history: list[dict[str, Any]]) -> str:
    """A self-contained HTML page: verdict, phases, hypotheses, charts, score trend."""
    body = [f"<h1>{html.escape(result.experiment.title)}</h1>",
            f"<p class='verdict {result.verdict}'>{result.verdict.upper()} — score "
            f"{result.score:g}/100</p><p>{html.escape(result.reason)}</p>",
            f"<p>{html.escape(result.experiment.description)}</p>"]
    drawn = charts(result)
    spans = _fault_spans(result)
    t0 = result.rows[0]["ts"] if result.rows else result.started
    legend = "; ".join(f"{html.escape(label)} {start - t0:.0f} to {end - t0:.0f} s"
                       for start, end, label in spans) or "none"
    if drawn and not result.prometheus:
        body.append("<p class='note'>Prometheus did not run with this experiment (`make "
                    "observe`, or `run --observe`): the charts come from the load's "
                    "timeline only.</p>")
    for chart in drawn:
        body.append(f"<figure class='chart' data-source='{chart.source}' "
                    f"data-fault-windows='{chart.fault_windows}'>"
                    f"<img src='data:image/png;base64,{chart.png}' "
                    f"alt='{html.escape(chart.title)}'><figcaption>"
                    f"{html.escape(chart.title)} · fault windows (red): {legend}"
                    "</figcaption></figure>")
    for note in result.notes:
        body.append(f"<p class='note'>{html.escape(note)}</p>")
    for what in result.not_judged:
        body.append(f"<p class='note'>not judged (the run had no source for it): "
                    f"{html.escape(what)}</p>")
    body += _told_and_paged(result)
    body.append("<h2>Hypotheses</h2><table><tr><th>phase</th><th>hypothesis</th>"
                "<th>measured</th><th>wanted</th><th></th></tr>")
    for r in result.results:
        body.append(f"<tr class='{'held' if r.held else 'failed'}'><td>{r.phase}</td>"
                    f"<td>{html.escape(r.name)}</td><td>{_fmt(r.value)}</td>"
                    f"<td>{html.escape(r.tolerance)}</td>"
                    f"<td>{'held' if r.held else 'FAILED'}</td></tr>")
    body.append("</table>")
    if result.phase_stats:
        body.append("<h2>Phases, side by side</h2><table><tr><th>phase</th><th>requests/s"
                    "</th><th>success</th><th>checkout success</th><th>p95 ms</th>"
                    "<th>ungraceful</th></tr>")
        for phase, s in result.phase_stats.items():
            body.append(f"<tr><td>{phase}</td><td>{s['requests_per_s']}</td>"
                        f"<td>{_pct(s['success_ratio'])}</td>"
                        f"<td>{_pct(s['checkout_success_ratio'])}</td><td>{_fmt(s['p95_ms'])}"
                        f"</td><td>{s['ungraceful']}</td></tr>")
        body.append("</table>")
    if history:
        body.append("<h2>Score across runs</h2><table><tr><th>when</th><th>commit</th>"
                    "<th>verdict</th><th>score</th></tr>")
        for h in history[-15:]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(h["time"]))
            bar = "█" * int(h["score"] / 5)
            body.append(f"<tr><td>{when}</td><td>{h.get('commit', '')}</td>"
                        f"<td>{h['verdict']}</td><td>{h['score']:g} {bar}</td></tr>")
        body.append("</table>")
    body.append("<h2>Journal</h2><table><tr><th>phase</th><th>step</th><th>status</th>"
                "<th>seconds</th><th>error</th></tr>")
    for e in result.journal:
        j = e.as_json()
        body.append(f"<tr><td>{j['phase']}</td><td>{html.escape(j['step'])}</td>"
                    f"<td>{j['status']}</td><td>{_fmt(j['duration'])}</td>"
                    f"<td>{html.escape(j['error'] or '')}</td></tr>")
    body.append("</table>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2rem auto;"
             "color:#1d2430}table{border-collapse:collapse;width:100%;margin:1rem 0}"
             "td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}"
             ".failed td{background:#fdecea}.verdict{font-size:1.4rem;font-weight:700}"
             ".passed{color:#2e7d32}.failed,.aborted,.error,.not_run{color:#c62828}"
             ".chart{margin:.5rem 0}.chart img{width:100%}figcaption{font-size:.8rem;"
             "color:#555}.note{color:#6d4c41}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(name)} — checkout-chaos</title><style>{style}</style></head>"
            f"<body>{''.join(body)}</body></html>")


def write_reports(result: RunResult, name: str) -> dict[str, Path]:
    """Every report of a run into its folder, and a line in the history file."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {"journal": out / "journal.json", "junit": out / "junit.xml",
             "summary": out / "summary.md", "html": out / "report.html"}
    paths["journal"].write_text(json.dumps(journal(result), indent=2, default=str))
    write_junit([junit_suite(result, name)], paths["junit"])
    paths["summary"].write_text(markdown(result, name))
    hist_path = history_file()
    hist_path.parent.mkdir(parents=True, exist_ok=True)
    with hist_path.open("a") as f:
        f.write(json.dumps({"time": time.time(), "experiment": name, "verdict": result.verdict,
                            "completed": result.completed, "score": result.score,
                            "commit": _commit()}) + "\n")
    history = [h for h in (json.loads(line) for line in hist_path.read_text().splitlines()
                           if line.strip()) if h["experiment"] == name]
    paths["html"].write_text(html_report(result, name, history))
    return paths


@dataclass(frozen=True, slots=True)
class Proof:
    """One safeguard experiment, run against a shop without its safeguard and with it."""

    name: str
    safeguards_off: str
    without: RunResult
    with_it: RunResult

    @property
    def pinpointed(self) -> bool:
        """It failed without the safeguard and passed with it."""
        return self.without.verdict == "failed" and self.with_it.verdict == "passed"


def proof_markdown(proofs: list[Proof]) -> str:
    """The safeguard proof's table."""
    rows = [f"| {p.safeguards_off} | {p.name} | {p.without.verdict}: "
            f"{'; '.join(r.name for r in p.without.results if not r.held) or '-'} | "
            f"{p.with_it.verdict} | {'yes' if p.pinpointed else '**no**'} |" for p in proofs]
    return ("# Safeguard proof\n\n| safeguard off | experiment | without it: verdict, "
            "hypotheses that failed | with it | pinpointed |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def load_failures(folder: Path) -> dict[str, int]:
    """The load's failures by reason (from Locust's locust_failures.csv in the run folder)."""
    counts: dict[str, int] = {}
    try:
        with (folder / "load" / "locust_failures.csv").open() as table:
            for row in csv.DictReader(table):
                reason = re.sub(r"^\w+\('(.*)'\)$", r"\1", row["Error"])
                counts[reason] = counts.get(reason, 0) + int(row["Occurrences"])
    except (OSError, KeyError, ValueError):
        return {}
    return counts


def glance_row(folder: Path) -> str:
    """One experiment of a gate in a line: its verdict and the hypotheses that failed,
    what shoppers saw (checkout success under the fault, Locust's failures by reason), and
    what the ledger audit found."""
    name = folder.name
    try:
        ran = json.loads((folder / "journal.json").read_text())
    except (OSError, ValueError):
        return f"| {name} | not run | | |"
    if ran["verdict"] == "skipped":
        return f"| {name} | skipped | {ran.get('reason', '')} | |"
    failed = list(dict.fromkeys(h["name"] for h in ran.get("hypotheses", [])
                                if h.get("held") is False))
    verdict = {"failed": "failed: " + "; ".join(failed),
               "aborted": f"aborted: {ran.get('reason', '')}"}.get(ran["verdict"],
                                                                  ran["verdict"])
    if (ran.get("phase_verdicts") or {}).get("baseline") is False:
        verdict += " (before the fault)"
    fault = (ran.get("phase_stats") or {}).get("fault") or {}
    ratio = fault.get("checkout_success_ratio")  # None: no checkout that could succeed
    saw = [f"checkout success {100 * ratio:.0f} % in the fault"] if ratio is not None else []
    reasons = sorted(load_failures(folder).items(), key=lambda kv: -kv[1])
    saw.append(", ".join(f"{reason}: {n}" for reason, n in reasons) or "no contract failure")
    audit = ran.get("audit")
    if audit is None:
        ledger = "not run"
    else:
        rules: dict[str, int] = {}
        for violation in audit["violations"]:
            rules[violation["rule"]] = rules.get(violation["rule"], 0) + 1
        ledger = (", ".join(f"**{rule}**: {n}" for rule, n in rules.items()) or "clean") + (
            f" ({audit['orders']} orders, {audit['charges']} charges)")
    return f"| {name} | {verdict} | {'; '.join(saw)} | {ledger} |"


def gate_markdown(summaries: list[str], folders: list[Path] | None = None) -> str:
    """The gate's summary: a line per experiment (from the run folders' journals), then
    each experiment's own summary, in the order they ran."""
    glance = ""
    rows = [glance_row(f) for f in folders or []]
    if rows:
        glance = ("| experiment | verdict | what shoppers saw | ledger audit |\n"
                  "|---|---|---|---|\n" + "\n".join(rows) + "\n\n")
    return "# Resilience gate\n\n" + glance + "\n".join(summaries)
