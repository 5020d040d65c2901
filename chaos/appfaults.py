"""Application-level faults in the payments and inventory services, through their loopback
admin endpoint: the harness's counterpart of the Toxiproxy adapter in faults.py."""

from __future__ import annotations

from typing import Any

import httpx

from .errors import FaultError
from .vocabulary import APP_TOXICS


def settings_for(toxic: str, attributes: dict[str, int]) -> dict[str, float]:
    """An experiment's attributes (whole numbers: percent, milliseconds, status) as the
    service's fault settings."""
    if toxic == "app_latency":
        return {"ms": float(attributes["latency"]), "jitter": float(attributes.get("jitter", 0))}
    settings = {"rate": attributes["percent"] / 100.0}
    if toxic == "app_errors":
        settings["status"] = float(attributes.get("status", 503))
    return settings


class AppFaultClient:
    """set / clear / sweep application faults on the services, addressed directly."""

    def __init__(self, urls: dict[str, str], tokens: dict[str, str] | None = None) -> None:
        self._urls = urls  # target -> service base URL (loopback, not through Toxiproxy)
        self._tokens = tokens or {}  # target -> the admin's Bearer token

    def _call(self, target: str, method: str, path: str, json: Any = None) -> dict[str, Any]:
        url = f"{self._urls[target]}{path}"
        token = self._tokens.get(target)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = httpx.request(method, url, json=json, timeout=5, headers=headers)
        except httpx.HTTPError as exc:
            raise FaultError(f"the {target} service did not answer its fault endpoint "
                             f"({url}): {exc}") from exc
        if response.status_code == 404:
            raise FaultError(f"the {target} service has no fault endpoint: start it with "
                             "SERVICE_ADMIN=1 (`make up` does)")
        if response.status_code >= 400:
            raise FaultError(f"the {target} service refused the fault: "
                             f"{response.json().get('title', response.text)}")
        body: dict[str, Any] = response.json()
        return body

    def inject(self, target: str, toxic: str, attributes: dict[str, int]) -> str:
        """Turn a fault on; returns the kind to clear on roll back."""
        kind, targets = APP_TOXICS[toxic].kind, APP_TOXICS[toxic].targets
        if target not in targets:
            raise FaultError(f"{toxic} applies to {', '.join(targets)}, not {target}")
        self._call(target, "POST", "/_admin/faults", {kind: settings_for(toxic, attributes)})
        return kind

    def roll_back(self, target: str, kind: str) -> None:
        """Turn one fault kind off."""
        self._call(target, "DELETE", f"/_admin/faults/{kind}")

    def active(self, target: str) -> dict[str, Any]:
        """What is on in one service."""
        active: dict[str, Any] = self._call(target, "GET", "/_admin/faults")["active"]
        return active

    def sweep(self) -> list[str]:
        """Turn every application fault off in every service; returns what it did."""
        done = []
        for target in self._urls:
            on = self.active(target)
            if on:
                self._call(target, "DELETE", "/_admin/faults")
                done.append(f"cleared {', '.join(sorted(on))} in {target}")
        return done
