"""The per-second timeline of a load run: users, requests, each response class, latency.

Each Locust process records into its own Timeline; workers send theirs to the master
with every stats report, and the master (or the single local process) writes the file.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .classify import CLASSES


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


class Timeline:
    """Counts per class and latencies (ms) per wall-clock second."""

    def __init__(self) -> None:
        self.counts: dict[int, Counter[str]] = defaultdict(Counter)
        self.latencies: dict[int, list[float]] = defaultdict(list)
        self.users: dict[int, int] = {}
        self.checkouts: dict[int, Counter[str]] = defaultdict(Counter)

    def record(self, cls: str, latency_ms: float, checkout: bool = False,
               now: float | None = None) -> None:
        """One classified answer."""
        second = int(now if now is not None else time.time())
        self.counts[second][cls] += 1
        self.latencies[second].append(latency_ms)
        if checkout:
            self.checkouts[second][cls] += 1

    def set_users(self, users: int, now: float | None = None) -> None:
        """The running user count at this second (sampled by the master)."""
        self.users[int(now if now is not None else time.time())] = users

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as plain data (for a stats report)."""
        data = {
            "counts": {str(s): dict(c) for s, c in self.counts.items()},
            "latencies": {str(s): v for s, v in self.latencies.items()},
            "checkouts": {str(s): dict(c) for s, c in self.checkouts.items()},
        }
        self.counts.clear()
        self.latencies.clear()
        self.checkouts.clear()
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Add a worker's drained data."""
        for second, counts in data.get("counts", {}).items():
            self.counts[int(second)].update(counts)
        for second, values in data.get("latencies", {}).items():
            self.latencies[int(second)].extend(values)
        for second, counts in data.get("checkouts", {}).items():
            self.checkouts[int(second)].update(counts)

    def rows(self) -> list[dict[str, Any]]:
        """One row per second from the first to the last, gaps included."""
        seconds = set(self.counts) | set(self.users)
        if not seconds:
            return []
        first, last = min(seconds), max(seconds)
        rows, users = [], 0
        for second in range(first, last + 1):
            users = self.users.get(second, users)
            counts = self.counts.get(second, Counter())
            times = sorted(self.latencies.get(second, []))
            row: dict[str, Any] = {"t": second - first, "ts": second, "users": users,
                                   "requests": sum(counts.values())}
            row.update({cls: counts.get(cls, 0) for cls in CLASSES})
            row["checkouts"] = sum(self.checkouts.get(second, Counter()).values())
            row.update({"p50_ms": round(percentile(times, 0.50), 1),
                        "p95_ms": round(percentile(times, 0.95), 1),
                        "p99_ms": round(percentile(times, 0.99), 1)})
            rows.append(row)
        return rows

    def write(self, path: Path) -> None:
        """The timeline as JSON lines, one second per line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for row in self.rows():
                out.write(json.dumps(row) + "\n")


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """A timeline file's rows."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
