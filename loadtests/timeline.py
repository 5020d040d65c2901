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
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .classify import CLASSES

# Upper edges (ms) of the latency histogram kept per second, so any window's percentiles
# can be computed later from the rows alone.
BUCKETS_MS = (5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000,
              5000, 7500, 10000, 30000, 10**9)


# Beside the live file: the complete seconds not yet final, replaced as they come.
FRESH_FILE = "fresh.json"


def bucket_of(ms: float) -> int:
    """The histogram bucket (its upper edge in ms) that a latency falls in."""
    for edge in BUCKETS_MS:
        if ms <= edge:
            return edge
    return BUCKETS_MS[-1]


def histogram_percentile(hist: dict[str, int] | dict[int, int], q: float) -> float:
    """The q-quantile of a {upper edge ms: count} histogram (the bucket's upper edge)."""
    counts = sorted((int(edge), n) for edge, n in hist.items())
    total = sum(n for _, n in counts)
    if not total:
        return 0.0
    running = 0
    for edge, n in counts:
        running += n
        if running >= q * total:
            return float(edge)
    return float(counts[-1][0])


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


class TimelineReportInvalid(ValueError):
    """A worker's timeline report that no worker of ours would send."""


Second = Annotated[int, Field(ge=0, le=10_000_000_000)]  # epoch seconds
Count = Annotated[int, Field(ge=0, le=10_000_000)]
Millis = Annotated[float, Field(ge=0, le=3_600_000, allow_inf_nan=False)]
MOVES = frozenset(f"{a}>{b}" for a in CLASSES for b in CLASSES if a != b)


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    counts: dict[Second, dict[str, Count]] = {}
    latencies: dict[Second, list[Millis]] = {}
    checkouts: dict[Second, dict[str, Count]] = {}
    checkout_latencies: dict[Second, list[Millis]] = {}
    reclassed: dict[Second, dict[str, Count]] = {}
    reclassed_checkouts: dict[Second, dict[str, Count]] = {}

    @field_validator("counts", "checkouts")
    @classmethod
    def _known_classes(cls, value: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
        unknown = {c for counts in value.values() for c in counts} - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}")
        return value

    @field_validator("reclassed", "reclassed_checkouts")
    @classmethod
    def _known_moves(cls, value: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
        unknown = {m for moves in value.values() for m in moves} - MOVES
        if unknown:
            raise ValueError(f"unknown moves {sorted(unknown)}")
        return value


def _valid_report(data: Any) -> _Report:
    try:
        return _Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TimelineReportInvalid(f"{where}: {first['msg']}") from None


class Timeline:
    """Counts per class and latencies (ms) per wall-clock second."""

    def __init__(self) -> None:
        self.counts: dict[int, Counter[str]] = defaultdict(Counter)
        self.latencies: dict[int, list[float]] = defaultdict(list)
        self.users: dict[int, int] = {}
        self.checkouts: dict[int, Counter[str]] = defaultdict(Counter)
        self.checkout_latencies: dict[int, list[float]] = defaultdict(list)
        self._flushed_upto: int | None = None  # the live file holds seconds before this
        self.reclassed: dict[int, Counter[str]] = defaultdict(Counter)
        self.reclassed_checkouts: dict[int, Counter[str]] = defaultdict(Counter)

    def record(self, cls: str, latency_ms: float, checkout: bool = False,
               now: float | None = None) -> None:
        """One classified answer."""
        second = int(now if now is not None else time.time())
        self.counts[second][cls] += 1
        self.latencies[second].append(latency_ms)
        if checkout:
            self.checkouts[second][cls] += 1
            self.checkout_latencies[second].append(latency_ms)

    def reclass(self, second: int, old: str, new: str, checkout: bool = False) -> None:
        """An answer already recorded at `second` is judged again later (a page's banner,
        once the status around it is known): move it from one class to another. A worker
        sends the move itself (its record may be in an earlier report), so every count in
        a report is non-negative and the master, which has both, applies it."""
        self.reclassed[second][f"{old}>{new}"] += 1
        if checkout:
            self.reclassed_checkouts[second][f"{old}>{new}"] += 1

    def set_users(self, users: int, now: float | None = None) -> None:
        """The running user count at this second (sampled by the master)."""
        self.users[int(now if now is not None else time.time())] = users

    def drain(self) -> dict[str, Any]:
        """Everything recorded since the last drain, as plain data (for a stats report)."""
        data = {
            "counts": {str(s): dict(c) for s, c in self.counts.items()},
            "latencies": {str(s): v for s, v in self.latencies.items()},
            "checkouts": {str(s): dict(c) for s, c in self.checkouts.items()},
            "checkout_latencies": {str(s): v for s, v in self.checkout_latencies.items()},
            "reclassed": {str(s): dict(c) for s, c in self.reclassed.items()},
            "reclassed_checkouts": {str(s): dict(c)
                                    for s, c in self.reclassed_checkouts.items()},
        }
        self.reclassed.clear()
        self.reclassed_checkouts.clear()
        self.counts.clear()
        self.latencies.clear()
        self.checkouts.clear()
        self.checkout_latencies.clear()
        return data

    def merge(self, data: Any) -> None:
        """Add a worker's drained data, or refuse it whole (TimelineReportInvalid) when it
        is not a report a worker makes: wrong types, negative counts or latencies, unknown
        classes, seconds far from now. The verdict is made of these numbers."""
        report = _valid_report(data)
        for second, counts in report.counts.items():
            self.counts[second].update(counts)
        for second, values in report.latencies.items():
            self.latencies[second].extend(values)
        for second, counts in report.checkouts.items():
            self.checkouts[second].update(counts)
        for second, values in report.checkout_latencies.items():
            self.checkout_latencies[second].extend(values)
        for moves, into in ((report.reclassed, self.counts),
                            (report.reclassed_checkouts, self.checkouts)):
            for second, by_move in moves.items():
                for move, n in by_move.items():
                    old, new = move.split(">")
                    into[second][old] -= n
                    into[second][new] += n

    def apply_own_reclasses(self) -> None:
        """A local (single-process) run: its own moves, as a master applies a worker's."""
        self.merge({"reclassed": {str(s): dict(c) for s, c in self.reclassed.items()},
                    "reclassed_checkouts": {str(s): dict(c)
                                            for s, c in self.reclassed_checkouts.items()}})
        self.reclassed.clear()
        self.reclassed_checkouts.clear()

    def rows(self, until: int | None = None, since: int | None = None) -> list[dict[str, Any]]:
        """One row per second from the first (or `since`) up to `until` (exclusive) or the
        last. Only the seconds asked for are computed: the live file asks for a few each
        half second, not the whole run again."""
        if self.reclassed or self.reclassed_checkouts:
            self.apply_own_reclasses()
        seconds = set(self.counts) | set(self.users)
        if not seconds:
            return []
        first, last = min(seconds), max(seconds) if until is None else until - 1
        start = first if since is None else max(first, since)
        earlier = [s for s in self.users if s < start]
        users = self.users[max(earlier)] if earlier else 0
        rows = []
        for second in range(start, last + 1):
            users = self.users.get(second, users)
            rows.append(self._row(second, first, users))
        return rows

    def _row(self, second: int, first: int, users: int) -> dict[str, Any]:
        counts = self.counts.get(second, Counter())
        times = sorted(self.latencies.get(second, []))
        checkouts = self.checkouts.get(second, Counter())
        row: dict[str, Any] = {"t": second - first, "ts": second, "users": users,
                               "requests": sum(counts.values())}
        row.update({cls: counts.get(cls, 0) for cls in CLASSES})
        row["checkouts"] = sum(checkouts.values())
        row.update({f"checkout_{cls}": checkouts.get(cls, 0) for cls in CLASSES})
        row.update({"p50_ms": round(percentile(times, 0.50), 1),
                    "p95_ms": round(percentile(times, 0.95), 1),
                    "p99_ms": round(percentile(times, 0.99), 1)})
        for key, values in (("hist", times), ("checkout_hist",
                                              self.checkout_latencies.get(second, []))):
            hist: Counter[int] = Counter(bucket_of(ms) for ms in values)
            row[key] = {str(edge): n for edge, n in sorted(hist.items())}
        return row

    def flush_live(self, path: Path, lag_seconds: int, now: float | None = None,
                   fresh_lag: int | None = None) -> int:
        """Append the seconds that can no longer change (older than now - lag) to path.
        With `fresh_lag`, the newer seconds that are complete but may still be judged again
        (a page's banner) are written beside it (`fresh.json`, replaced each time): a run
        may plan on them, and judges only the final ones."""
        moment = int(now if now is not None else time.time())
        rows = self.rows(until=moment - lag_seconds, since=self._flushed_upto)
        if rows:
            with path.open("a") as out:
                for row in rows:
                    out.write(json.dumps(row) + "\n")
            self._flushed_upto = rows[-1]["ts"] + 1
        if fresh_lag is not None and self._flushed_upto is not None:
            fresh = self.rows(until=moment - fresh_lag, since=self._flushed_upto)
            spare = path.with_name(FRESH_FILE + ".tmp")
            spare.write_text(json.dumps(fresh))
            spare.replace(path.with_name(FRESH_FILE))
        return len(rows)

    def write(self, path: Path) -> None:
        """The timeline as JSON lines, one second per line."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for row in self.rows():
                out.write(json.dumps(row) + "\n")


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """A timeline file's rows."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
