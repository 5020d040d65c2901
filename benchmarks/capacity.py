"""Shopping capacity of this machine: load steps until p95 passes 500 ms.

Runs `checkout-chaos load` (steady profile) against the running stack at each user count,
and reports requests/s, checkout journeys/s, whole-run p95, ungraceful answers, and the
share of the machine's CPU that Locust itself used (its whole process tree, from /proc).
Usage: python benchmarks/capacity.py --users 50,100,200 --duration 30s --processes 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadtests.timeline import read_timeline

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle


def tree_ticks(root: int, seen: dict[int, int]) -> None:
    """Update seen[pid] with utime+stime of root and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(parts[1]), []).append(int(stat.parent.name))
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[pid] = max(seen.get(pid, 0), int(parts[11]) + int(parts[12]))
        except OSError:
            pass
        stack.extend(children.get(pid, []))


def whole_run_p95(run_dir: Path) -> float:
    """p95 over every request of the run, from Locust's final response-time histogram."""
    merged: dict[int, int] = {}
    for entry in json.loads((run_dir / "locust.json").read_text()):
        for ms, count in entry["response_times"].items():
            merged[int(float(ms))] = merged.get(int(float(ms)), 0) + count
    total, running = sum(merged.values()), 0
    for ms in sorted(merged):
        running += merged[ms]
        if running >= 0.95 * total:
            return float(ms)
    return 0.0


def step(users: int, duration: str, processes: int) -> dict[str, float]:
    """One load step; its figures."""
    out = Path(tempfile.mkdtemp(prefix=f"cc-capacity-{users}-"))
    cmd = [sys.executable, "-m", "chaos.cli", "load", "--users", str(users), "--duration",
           duration, "--processes", str(processes), "--spawn-rate", str(max(10, users // 2)),
           "--out", str(out)]
    busy_before, started = machine_busy_ticks(), time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ticks: dict[int, int] = {}
    while proc.poll() is None:
        tree_ticks(proc.pid, ticks)
        time.sleep(0.5)
    wall = time.monotonic() - started
    busy = machine_busy_ticks() - busy_before
    rows = [r for r in read_timeline(out / "timeline.jsonl") if r["requests"]]
    seconds = max(len(rows) - 2, 1)  # leave out the partial first and last seconds
    core = rows[1:-1] or rows
    return {
        "users": users, "processes": processes,
        "requests_per_s": round(sum(r["requests"] for r in core) / seconds, 1),
        "checkouts_per_s": round(sum(r["checkouts"] for r in core) / seconds, 2),
        "p95_ms": whole_run_p95(out),
        "ungraceful": sum(r["ungraceful"] for r in rows),
        "locust_cpu_share_of_machine": round(
            sum(ticks.values()) / TICKS / (wall * (os.cpu_count() or 1)), 3),
        "locust_cpu_share_of_busy": round(sum(ticks.values()) / busy, 3) if busy else 0.0,
        "machine_busy": round(busy / TICKS / (wall * (os.cpu_count() or 1)), 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="50,100,200")
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    for users in (int(u) for u in args.users.split(",")):
        print(json.dumps(step(users, args.duration, args.processes)), flush=True)
