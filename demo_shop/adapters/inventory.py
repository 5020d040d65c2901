"""The shop's client of the inventory service: stock and reservations."""

from __future__ import annotations

from typing import Any

import httpx

from ..domain import CartLine
from ..errors import OutOfStock, ReservationClosed
from ..resilience import Deadline
from .http import DependencyClient

DEPENDENCY = "inventory"


class InventoryClient(DependencyClient):
    """reserve_stock / commit / release / stock levels, each one instrumented HTTP call."""

    dependency = DEPENDENCY

    def business_error(self, response: httpx.Response, body: dict[str, Any]) -> None:
        """409: sold out, or the reservation is no longer active."""
        if response.status_code == 409 and body.get("sku"):
            raise OutOfStock(str(body["sku"]))
        if response.status_code == 409 and isinstance(body.get("reservation"), dict):
            found = body["reservation"]
            raise ReservationClosed(str(found.get("reservation_id")), str(found.get("state")))
        if response.status_code == 404 and body.get("reservation_id"):
            # Never made (its checkout died before reserving): nothing is held.
            raise ReservationClosed(str(body["reservation_id"]), "missing")

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

    def extend(self, reservation_id: str, ttl_seconds: int, deadline: Deadline) -> None:
        """Hold an active reservation for ttl_seconds from now (ReservationClosed if not)."""
        self._call("extend", "POST", f"/v1/reservations/{reservation_id}/extend", deadline,
                   json={"ttl_seconds": ttl_seconds})

    def release(self, reservation_id: str, deadline: Deadline) -> None:
        """Give reserved stock back."""
        self._call("release", "POST", f"/v1/reservations/{reservation_id}/release", deadline)

    def stock_levels(self, deadline: Deadline) -> dict[str, int]:
        """Available units per sku."""
        body = self._call("stock", "GET", "/v1/stock", deadline)
        return {item["sku"]: int(item["available"]) for item in body["items"]}
