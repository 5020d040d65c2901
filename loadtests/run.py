"""`make load`: validate, check the host answers, run Locust bounded in time, summarise.

Bad input (unknown profile, users below 1, a duration that is not one, a host that does
not answer) is refused with exit code 2 before any load starts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from .classify import CLASSES, CONTRACT_FAILURES
from .shapes import PROFILES
from .timeline import percentile, read_timeline

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
# Distributed load: the port the master takes its workers on, and how long it waits for
# them before it gives up (the harness waits as long, then refuses to judge).
MASTER_PORT = 5557
WORKERS_WAIT = 120
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


class LoadInputError(ValueError):
    """Input that must be fixed before any load starts."""


def parse_duration(text: str) -> int:
    """'90', '90s', '5m', '1h30m' -> seconds; LoadInputError otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise LoadInputError(f"DURATION {text!r} is not a duration: use e.g. 60s, 5m or 1h")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total < 1:
        raise LoadInputError("DURATION must be at least 1 second")
    return total


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """A validated load run."""

    host: str
    profile: str
    users: int
    spawn_rate: float
    duration: int
    processes: int
    run_dir: Path
    ui: bool = False
    day_minutes: float = 0.0
    storefront_share: float | None = None  # None: the locustfile's default
    retry_given_up: bool = False  # shoppers press again after a checkout never answered
    # The shape's length when the run may go on after it (an experiment's recovery), and
    # whether the last users stay until the run time is up.
    shape_seconds: int | None = None
    hold: bool = False
    # Distributed: this process is only the master; the users run in `workers_expect`
    # workers started elsewhere (`worker_command`), and nothing starts before they report.
    workers_expect: int = 0
    master_port: int = MASTER_PORT
    workers_wait: int = WORKERS_WAIT
    # The shop's shape (loadtests.shape, from a target file): None is the reference shop.
    target_shape: Path | None = None

    def command(self, python: str = sys.executable) -> list[str]:
        """The locust command line."""
        cmd = [python, "-m", "locust", "-f", str(LOCUSTFILE), "--host", self.host,
               "-u", str(self.users), "-r", str(self.spawn_rate), "-t", f"{self.duration}s",
               "--load-profile", self.profile, "--run-dir", str(self.run_dir),
               "--csv", str(self.run_dir / "locust"), "--html", str(self.run_dir / "locust.html"),
               "--json-file", str(self.run_dir / "locust"),
               "--stop-timeout", "10"]
        if self.day_minutes:
            cmd += ["--day-minutes", str(self.day_minutes)]
        if self.storefront_share is not None:
            cmd += ["--storefront-share", str(self.storefront_share)]
        if self.retry_given_up:
            cmd += ["--retry-given-up"]
        if self.shape_seconds is not None:
            cmd += ["--shape-seconds", str(self.shape_seconds)]
        if self.hold:
            cmd += ["--hold"]
        if self.target_shape is not None:
            cmd += ["--target-shape", str(self.target_shape)]
        if self.workers_expect:
            cmd += ["--master", "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", str(self.master_port),
                    "--expect-workers", str(self.workers_expect),
                    "--expect-workers-max-wait", str(self.workers_wait)]
        elif self.processes > 1:
            # The master takes its workers' reports on loopback only: a peer on the network
            # must not be able to join as a worker and forge the verdict's timeline.
            cmd += ["--processes", str(self.processes), "--master-bind-host", "127.0.0.1"]
        if self.ui:
            cmd += ["--web-host", "127.0.0.1", "--autostart", "--autoquit", "10"]
        else:
            cmd += ["--headless", "--only-summary"]
        return cmd


def worker_command(master_host: str, master_port: int, run_dir: Path,
                   python: str = sys.executable, target_shape: Path | None = None
                   ) -> list[str]:
    """One load worker (on this host or another): it runs users and sends its timeline and
    evidence to the master; `run_dir` only holds its own log."""
    return [python, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
            "--master-host", master_host, "--master-port", str(master_port),
            "--run-dir", str(run_dir),
            *(["--target-shape", str(target_shape)] if target_shape else [])]


def plan(host: str, profile: str, users: str, duration: str, processes: str, run_dir: Path,
         spawn_rate: str = "", ui: bool = False, day_minutes: str = "",
         workers_expect: int = 0, master_port: int = MASTER_PORT) -> LoadPlan:
    """Validate every input; LoadInputError says what to fix."""
    if workers_expect < 0 or (workers_expect and processes.strip() not in ("", "1")):
        raise LoadInputError("WORKERS_EXPECT runs the users in workers started apart: use it "
                             "with PROCESSES=1 (and a whole number of at least 1)")
    if not 0 < master_port < 65536:
        raise LoadInputError(f"MASTER_PORT must be a port number, got {master_port}")
    if profile not in PROFILES:
        raise LoadInputError(f"PROFILE {profile!r} is unknown: use one of {', '.join(PROFILES)}")
    if not users.strip().isdigit() or int(users) < 1:
        raise LoadInputError(f"USERS must be a whole number of at least 1, got {users!r}")
    if not processes.strip().isdigit() or int(processes) < 1:
        raise LoadInputError(f"PROCESSES must be a whole number of at least 1, got {processes!r}")
    seconds = parse_duration(duration)
    try:
        rate = float(spawn_rate) if spawn_rate else max(1.0, int(users) / 5)
        day = float(day_minutes) if day_minutes else 0.0
    except ValueError as exc:
        raise LoadInputError(f"SPAWN_RATE and DAY_MINUTES must be numbers: {exc}") from exc
    if rate <= 0 or day < 0:
        raise LoadInputError("SPAWN_RATE must be positive and DAY_MINUTES not negative")
    if not re.match(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/?$", host):
        raise LoadInputError(f"HOST {host!r} must be a loopback URL such as http://127.0.0.1:8000")
    return LoadPlan(host.rstrip("/"), profile, int(users), rate, seconds, int(processes),
                    run_dir, ui, day, workers_expect=workers_expect, master_port=master_port)


def check_host(host: str, ready: str = "/healthz") -> None:
    """The shop must answer (its ready route) before load starts."""
    try:
        response = httpx.get(f"{host}{ready}", timeout=3)
    except httpx.HTTPError as exc:
        raise LoadInputError(
            f"the shop at {host} does not answer ({type(exc).__name__}): start it with `make up`"
        ) from exc
    if not response.is_success:
        raise LoadInputError(f"the shop at {host} answered {ready} with {response.status_code}")


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """Totals of a finished run, from its timeline."""

    counts: Counter[str]
    seconds: int
    requests: int
    checkouts: int
    p95_ms: float

    @property
    def ungraceful(self) -> int:
        """Answers that broke the graceful-failure contract."""
        return sum(self.counts[cls] for cls in CONTRACT_FAILURES)

    def table(self) -> str:
        """A Markdown table of the classes and the rates."""
        lines = ["| class | answers | share |", "|---|---:|---:|"]
        for cls in CLASSES:
            share = self.counts[cls] / self.requests if self.requests else 0.0
            lines.append(f"| {cls} | {self.counts[cls]} | {share:.1%} |")
        lines += ["", f"{self.requests} answers in {self.seconds} s: "
                  f"{self.requests / max(self.seconds, 1):.1f} requests/s, "
                  f"{self.checkouts / max(self.seconds, 1):.2f} checkouts/s, "
                  f"p95 of per-second p95 {self.p95_ms:.0f} ms"]
        return "\n".join(lines)


def summarise(run_dir: Path) -> LoadSummary:
    """Read a run's timeline into totals."""
    rows = read_timeline(run_dir / "timeline.jsonl")
    active = [r for r in rows if r["requests"]]
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update({cls: row.get(cls, 0) for cls in CLASSES})
    return LoadSummary(
        counts=counts, seconds=len(active), requests=sum(r["requests"] for r in rows),
        checkouts=sum(r["checkouts"] for r in rows),
        p95_ms=percentile(sorted(r["p95_ms"] for r in active), 0.95),
    )


def run(load: LoadPlan) -> int:
    """Run locust as a child process (bounded by -t and a hard timeout); its exit code."""
    load.run_dir.mkdir(parents=True, exist_ok=True)
    hard_limit = load.duration + 60 + (load.workers_wait if load.workers_expect else 0)
    try:
        return subprocess.run(load.command(), timeout=hard_limit).returncode
    except subprocess.TimeoutExpired:
        return 1
