"""The shop's client of the inventory service: stock and reservations."""

from __future__ import annotations

from typing import Any

from ..domain import CartLine
from ..errors import OutOfStock, ReservationClosed
from ..observe import CallObserver
from ..resilience import Deadline, Timeouts, retrying
from .http import JsonHttp, http_translator, raise_for_server_error

DEPENDENCY = "inventory"


class InventoryClient:
    """reserve_stock / commit / release / stock levels, each one instrumented HTTP call."""

    def __init__(self, base_url: str, timeouts: Timeouts, observer: CallObserver) -> None:
        self._http = JsonHttp(base_url, timeouts)
        self._timeouts = timeouts
        self._observer = observer
        self._translate = http_translator(DEPENDENCY)

    def _call(
        self, operation: str, method: str, path: str, deadline: Deadline,
        retry: bool = True, **kwargs: Any,
    ) -> dict[str, Any]:
        """One call; every call here is idempotent (by key or id), so it may be retried."""
        guard = self._observer.guard(DEPENDENCY) if retry else None
        for attempt in retrying(guard, deadline):
            with attempt:
                return self._call_once(operation, method, path, deadline, **kwargs)
        raise AssertionError("unreachable: retrying re-raises the last error")

    def _call_once(
        self, operation: str, method: str, path: str, deadline: Deadline, **kwargs: Any
    ) -> dict[str, Any]:
        with self._observer.call(DEPENDENCY, operation, self._translate):
            response = self._http.request(method, path, deadline, **kwargs)
            raise_for_server_error(DEPENDENCY, response)
            body: dict[str, Any] = response.json()
            if response.status_code == 409 and body.get("sku"):
                raise OutOfStock(str(body["sku"]))
            if response.status_code == 409 and isinstance(body.get("reservation"), dict):
                found = body["reservation"]
                raise ReservationClosed(str(found.get("reservation_id")), str(found.get("state")))
            if response.status_code >= 400:
                raise ValueError(f"inventory rejected the request: {response.status_code}")
            return body

    def reserve_stock(
        self, reservation_id: str, lines: list[CartLine], ttl_seconds: int, deadline: Deadline
    ) -> None:
        """Hold stock for lines; the same reservation id never reserves twice."""
        self._call(
            "reserve", "POST", "/v1/reservations", deadline,
            json={"reservation_id": reservation_id, "ttl_seconds": ttl_seconds,
                  "items": [{"sku": line.sku, "qty": line.qty} for line in lines]},
        )

    def commit(self, reservation_id: str, deadline: Deadline) -> None:
        """Turn a reservation into a sale (stock leaves the shelf)."""
        self._call("commit", "POST", f"/v1/reservations/{reservation_id}/commit", deadline)

    def release(self, reservation_id: str, deadline: Deadline) -> None:
        """Give reserved stock back."""
        self._call("release", "POST", f"/v1/reservations/{reservation_id}/release", deadline)

    def stock_levels(self, deadline: Deadline) -> dict[str, int]:
        """Available units per sku."""
        body = self._call("stock", "GET", "/v1/stock", deadline)
        return {item["sku"]: int(item["available"]) for item in body["items"]}

    def probe(self) -> None:
        """A cheap health call for the prober."""
        # With the read timeout real calls get: a slow dependency shows as slow, not down.
        self._call("health", "GET", "/healthz", Deadline(self._timeouts.read), retry=False)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()
