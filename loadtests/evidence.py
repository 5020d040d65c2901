"""What shoppers were told, as the load gathers it for the ledger audit: one JSON line per
checkout attempt, buffered and written in batches; a worker's lines travel to the master
with its stats report and are checked there before they are written.

Import-light on purpose (no Locust): unit tests and the harness import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Evidence:
    """What shoppers were told, one JSON line per checkout attempt, kept in memory and
    written in batches (each second and at the end) rather than one write per checkout.
    A worker writes nothing itself: its lines travel to the master with its stats report,
    so the evidence of load hosts anywhere ends up in the master's run folder."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir
        self._pending: list[dict[str, Any]] = []

    def write(self, **fields: Any) -> None:
        """One checkout attempt's answer (buffered)."""
        self._pending.append(fields)

    def drain(self) -> list[dict[str, Any]]:
        """Everything not yet written or sent."""
        pending, self._pending = self._pending, []
        return pending

    def flush(self, source: str | None = None, entries: list[dict[str, Any]] | None = None
              ) -> int:
        """Append this process's buffered lines (or a worker's) to its evidence file."""
        lines = self.drain() if entries is None else entries
        if lines:
            name = source or str(os.getpid())
            self._run_dir.mkdir(parents=True, exist_ok=True)
            with (self._run_dir / f"evidence-{name}.jsonl").open("a") as out:
                out.write("".join(json.dumps(entry) + "\n" for entry in lines))
        return len(lines)


def valid_evidence(entries: Any) -> list[dict[str, Any]]:
    """A worker's evidence as a worker sends it (a list of flat JSON objects with an
    idempotency key), or EvidenceInvalid: the audit's promises are made of these."""
    if not isinstance(entries, list) or len(entries) > 100_000:
        raise EvidenceInvalid("not a list of checkout answers")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("idempotency_key"), str) \
                or any(isinstance(v, dict | list) for v in entry.values()):
            raise EvidenceInvalid(f"not a checkout answer: {str(entry)[:80]}")
    return entries


class EvidenceInvalid(ValueError):
    """A worker report's evidence is not what our workers send."""
