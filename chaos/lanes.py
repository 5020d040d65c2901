"""The gate in parallel lanes: the catalog split over N stacks, each on its own free
loopback ports and run folder, each running its share one experiment after another.

A lane is a `checkout-chaos gate` child process with its own stack (brought up and down by
it), so every run keeps its own signal handling, run lock and rollback. The experiments
are dealt longest first onto the lane with the least planned time. The parent relays each
lane's per-experiment lines as they come, a progress line every few seconds, forwards
Ctrl-C and SIGTERM to the lanes (each rolls its faults back), then merges the reports:
every experiment's folder under the gate's, one JUnit file, one summary, in catalog order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import psutil
from rich.markup import escape

from .experiment import Experiment
from .report import gate_markdown, write_junit
from .run.safety import record_process, recorded_process
from .session import Progress, gate_line, gate_total
from .stack import PROJECT_ROOT, Ports, Stack, StackConfig

# A lane's per-experiment line, as `gate_line` prints it.
_GATE_LINE = re.compile(r"^\s*\d+/\d+ \S+\s+(passed|failed|aborted|error)\b")
_PROGRESS_LINE = re.compile(r"^\[(?P<phase>[a-z-]+)\] ~(?P<left>\d+)s left")
PROGRESS_EVERY = 10.0
# Each lane's run folder (its stack, lock and pid file), whichever gate made it.
LANES_ROOT = PROJECT_ROOT / ".run" / "lanes"


@dataclass(slots=True)
class Lane:
    """One child gate: its experiments, report folder, log and process."""

    index: int
    chosen: list[tuple[Path, Experiment]] = field(default_factory=list)
    out: Path = Path(".")
    log: Path = Path(".")
    proc: subprocess.Popen[bytes] | None = None
    offset: int = 0
    current: str = ""
    last_progress: str = ""


def deal(chosen: Sequence[tuple[Path, Experiment]], lanes: int,
         time_scale: float) -> list[Lane]:
    """Longest first, each onto the lane with the least planned time so far; empty lanes
    dropped. Within a lane, experiments keep the catalog's order."""
    order = {path: i for i, (path, _) in enumerate(chosen)}
    dealt = [Lane(i) for i in range(max(1, lanes))]
    for path, experiment in sorted(chosen, key=lambda pe: -pe[1].scaled(time_scale)
                                   .planned_seconds()):
        lane = min(dealt, key=lambda lane: sum(e.scaled(time_scale).planned_seconds()
                                               for _, e in lane.chosen))
        lane.chosen.append((path, experiment))
    for lane in dealt:
        lane.chosen.sort(key=lambda pe: order[pe[0]])
    return [lane for lane in dealt if lane.chosen]


def clear_leftover_lanes(progress: Progress, root: Path = LANES_ROOT) -> list[str]:
    """What a killed gate's lanes left: a lane still running (only the process recorded,
    with its start time) is stopped — it rolls its faults back and takes its stack down —
    then any stack a lane's folder still records is taken down. Called as a gate starts,
    and by `checkout-chaos down`."""
    cleared = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()):
        process = recorded_process(folder / "lane.pid")
        if process is not None:
            progress(f"stopping lane {folder.name} of an earlier gate (pid {process.pid})")
            process.terminate()
            try:
                process.wait(60)
            except psutil.TimeoutExpired:
                process.kill()
            cleared.append(f"lane {folder.name} (pid {process.pid})")
        (folder / "lane.pid").unlink(missing_ok=True)
        state = folder / "stack.json"
        if state.exists():
            try:
                ports = Ports(**json.loads(state.read_text())["ports"])
            except (OSError, ValueError, TypeError, KeyError):
                continue
            stopped = Stack(StackConfig(run_dir=folder, ports=ports)).down()
            if stopped:
                cleared.append(f"lane {folder.name}'s stack ({len(stopped)} processes)")
    return cleared


def lane_env(index: int) -> dict[str, str]:
    """The environment of a lane: its own run folder and free loopback ports."""
    env = dict(os.environ)
    env["CC_RUN_DIR"] = str(LANES_ROOT / str(index))
    for name, port in asdict(Ports.free()).items():
        env[f"CC_{name.upper()}_PORT"] = str(port)
    return env


def lane_command(lane: Lane, time_scale: float, shop: str | None,
                 target: Path | None = None) -> list[str]:
    """The child gate of a lane (it manages its own stack, for the target's shop)."""
    cmd = [sys.executable, "-m", "chaos.cli", "gate", "--manage-stack", "--lanes", "1",
           "--time-scale", str(time_scale), "--out", str(lane.out)]
    for path, _ in lane.chosen:
        cmd += ["--name", path.stem]
    if shop:
        cmd += ["--shop", shop]
    if target is not None:
        cmd += ["--target", str(target.resolve())]
    return cmd


def run_lanes(chosen: Sequence[tuple[Path, Experiment]], out: Path, lanes: int,
              time_scale: float, shop: str | None, progress: Progress,
              target: Path | None = None) -> int:
    """Every chosen experiment over `lanes` parallel stacks; the merged reports in `out`;
    the gate's exit code (the worst run's, 2 when an experiment has no result)."""
    for line in clear_leftover_lanes(progress):
        progress(f"cleared from an earlier gate: {line}")
    dealt = deal(chosen, lanes, time_scale)
    work = out / "lanes"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    progress(f"{len(chosen)} experiments over {len(dealt)} lanes, each its own stack")
    for lane in dealt:
        lane.out, lane.log = work / str(lane.index), work / f"{lane.index}.log"
        with lane.log.open("wb") as log:
            lane.proc = subprocess.Popen(
                lane_command(lane, time_scale, shop, target), stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=lane_env(lane.index), cwd=PROJECT_ROOT,
                start_new_session=True)  # a signal reaches a lane once: from here
        record_process(LANES_ROOT / str(lane.index) / "lane.pid", lane.proc.pid)

    def forward(signum: int, frame: FrameType | None) -> None:
        for lane in dealt:
            if lane.proc is not None and lane.proc.poll() is None:
                lane.proc.send_signal(signal.SIGTERM)
        progress("stopping every lane (each rolls its faults back)")

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _follow(dealt, progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for lane in dealt:
            (LANES_ROOT / str(lane.index) / "lane.pid").unlink(missing_ok=True)
    return _merge(chosen, dealt, out, time.monotonic() - started, progress)


def _follow(dealt: list[Lane], progress: Progress) -> None:
    """Relay each lane's lines until every lane has ended."""
    said = time.monotonic()
    while True:
        running = [lane for lane in dealt if lane.proc and lane.proc.poll() is None]
        for lane in dealt:
            _relay(lane, progress)
        if not running:
            return
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            progress("  " + " | ".join(f"lane {lane.index}: {lane.current or '-'} "
                                      f"{escape(lane.last_progress)}" for lane in running))
        time.sleep(0.5)


def _relay(lane: Lane, progress: Progress) -> None:
    try:
        with lane.log.open("rb") as log:
            log.seek(lane.offset)
            chunk = log.read()
    except FileNotFoundError:
        return
    complete = chunk[: chunk.rfind(b"\n") + 1]
    lane.offset += len(complete)
    for line in complete.decode(errors="replace").splitlines():
        text = line.strip()
        progress_line = _PROGRESS_LINE.match(text)
        if progress_line:
            lane.last_progress = (f"[{progress_line['phase']}] "
                                  f"~{progress_line['left']}s left")
        elif re.match(r"^\d+/\d+ \S+$", text):
            lane.current = text.split()[1]
        elif _GATE_LINE.match(text) or text.startswith(("error:", "unexpected error:")):
            progress(f"lane {lane.index} {escape(text)}")


def _merge(chosen: Sequence[tuple[Path, Experiment]], dealt: list[Lane], out: Path,
           seconds: float, progress: Progress) -> int:
    """Each experiment's folder under `out`, one JUnit file and one summary in catalog
    order, a line per experiment and the total."""
    lane_of = {path.stem: lane for lane in dealt for path, _ in lane.chosen}
    suites: list[ET.Element] = []
    summaries: list[str] = []
    folders: list[Path] = []
    verdicts: list[str] = []
    exit_code = max((lane.proc.returncode or 0 for lane in dealt if lane.proc), default=0)
    for index, (path, _) in enumerate(chosen, 1):
        source = lane_of[path.stem].out / path.stem
        target = out / path.stem
        journal = source / "journal.json"
        folders.append(target)
        if not journal.exists():
            progress(gate_line(index, len(chosen), path.stem, "not run", 0, 0))
            verdicts.append("not run")
            exit_code = max(exit_code, 2)
            continue
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(source), str(target))
        ran = json.loads((target / "journal.json").read_text())
        verdicts.append(ran["verdict"])
        progress(gate_line(index, len(chosen), path.stem, ran["verdict"], ran["score"],
                           ran["ended"] - ran["started"]))
        if (target / "junit.xml").exists():
            suites.extend(ET.parse(target / "junit.xml").getroot().iter("testsuite"))
        if (target / "summary.md").exists():
            summaries.append((target / "summary.md").read_text())
    write_junit(suites, out / "junit.xml")
    (out / "summary.md").write_text(gate_markdown(summaries, folders))
    progress(gate_total(verdicts, seconds, f" over {len(dealt)} lanes"))
    return exit_code
