"""The shop seen from outside, as the harness, the matrix, the benchmarks and the tests
see it: readiness, its status page, its metrics and breakers, and the safeguards it runs
with (restarting it with others, and back)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .errors import HarnessError, StackError
from .probes import scrape
from .waiting import poll


class ShopClient:
    """Plain reads of one running shop (each a fresh short request)."""

    def __init__(self, base_url: str, ready_route: str = "/readyz",
                 metrics_route: str | None = "/metrics") -> None:
        self.base_url = base_url
        self.ready_route = ready_route
        self.metrics_route = metrics_route

    def ready(self) -> bool:
        """The ready route (/readyz) answers 2xx."""
        try:
            return httpx.get(f"{self.base_url}{self.ready_route}", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float) -> float | None:
        """Seconds until the shop is ready (None: not within the timeout)."""
        started = time.monotonic()
        if poll(self.ready, timeout, every=0.2) is None:
            return None
        return round(time.monotonic() - started, 2)

    def status(self) -> dict[str, Any]:
        """/api/status, as JSON."""
        body: dict[str, Any] = httpx.get(f"{self.base_url}/api/status", timeout=3).json()
        return body

    def state(self, dependency: str) -> str:
        """One dependency's state on the status page ("operational" when not listed)."""
        found = self.status()["dependencies"].get(dependency, {})
        return str(found.get("state", "operational"))

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample on /metrics ({} when it cannot be read, or the shop has none)."""
        if self.metrics_route is None:
            return {}
        return scrape(f"{self.base_url}{self.metrics_route}")

    def breaker_state(self, dependency: str) -> float | None:
        """The highest breaker state across workers (0 closed, 1 half-open, 2 open)."""
        values = [v for (name, labels), v in self.metrics().items()
                  if name == "shop_breaker_state" and ("dependency", dependency) in labels]
        return max(values) if values else None

    def safeguards_off(self) -> frozenset[str] | None:
        """The safeguards the running shop has off (None when it does not answer)."""
        try:
            return frozenset(httpx.get(f"{self.base_url}/healthz", timeout=5).json()
                             .get("safeguards_off", []))
        except (httpx.HTTPError, ValueError):
            return None


def profile_env(off: frozenset[str]) -> dict[str, str]:
    """The shop's environment for a set of safeguards turned off."""
    return {"SHOP_RESILIENCE": "on", "SHOP_SAFEGUARDS_OFF": ",".join(sorted(off))}


# Where a safeguard switch writes what it found before it changes the shop.
SAFEGUARD_JOURNAL = "safeguards-found.json"


class SafeguardSwitch:
    """Run the shop with a set of safeguards off, and put back what was found.

    What was found is journaled to disk (`journal`) before the shop is changed and
    removed once it is back: a harness killed in between (SIGKILL, a lost terminal) leaves
    the journal, and the next switch restores the shop from it first, never taking the
    killed run's 'safeguards off' for the shop's own state. `make down` removes it
    with the shop."""

    def __init__(self, shop: ShopClient, restart: Callable[[dict[str, str]], None],
                 journal: Path | None = None) -> None:
        self._shop = shop
        self._restart = restart  # e.g. Stack.restart_shop
        self._journal = journal
        self.found: frozenset[str] | None = None  # what to put back, when changed

    def ensure(self, wanted: frozenset[str]) -> dict[str, Any]:
        """Restart the shop if it does not run with these safeguards off; what it did
        (and what it restored first, when a killed run left its journal)."""
        done: dict[str, Any] = {}
        left = self.left_by_killed_run()
        if left is not None:
            self._restart_with(left)
            self._forget()
            done["restored_after_killed_run"] = sorted(left)
        found = self._shop.safeguards_off()
        if found is None:
            return {**done, "checked": False}  # the preflight says what is wrong
        if found == wanted:
            return {**done, "safeguards_off": sorted(wanted), "restarted": False}
        self._remember(found)
        self._restart_with(wanted)
        self.found = found
        return {**done, "safeguards_off": sorted(wanted), "restarted": True,
                "was": sorted(found)}

    def restore(self) -> bool:
        """Put back the safeguards found (True when a restart was needed)."""
        if self.found is None:
            return False
        found, self.found = self.found, None
        self._restart_with(found)
        self._forget()
        return True

    def left_by_killed_run(self) -> frozenset[str] | None:
        """The safeguards off before a run that was killed changed them, if one was."""
        if self._journal is None:
            return None
        try:
            data = json.loads(self._journal.read_text())
            return frozenset(str(name) for name in data["found_off"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError):
            return frozenset()  # unreadable: every safeguard on, the shop's default

    def _remember(self, found: frozenset[str]) -> None:
        if self._journal is None:
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        fresh = self._journal.with_suffix(".new")
        fresh.write_text(json.dumps({"found_off": sorted(found), "pid": os.getpid(),
                                     "at": time.time()}))
        os.replace(fresh, self._journal)  # on disk before the shop is restarted

    def _forget(self) -> None:
        if self._journal is not None:
            self._journal.unlink(missing_ok=True)

    def _restart_with(self, off: frozenset[str]) -> None:
        try:
            self._restart(profile_env(off))
        except StackError as exc:
            raise HarnessError(f"could not restart the shop with the safeguards asked "
                               f"for: {exc}") from exc


@contextmanager
def shop_profile(shop: ShopClient, restart: Callable[[dict[str, str]], None],
                 wanted: frozenset[str], restore: bool = True,
                 journal: Path | None = None) -> Iterator[dict[str, Any]]:
    """The shop runs with `wanted` safeguards off for the block, and as found after it
    (unless `restore` is False: a stack about to be taken down)."""
    profile = SafeguardSwitch(shop, restart, journal)
    done = profile.ensure(wanted)
    try:
        yield done
    finally:
        if restore:
            profile.restore()
