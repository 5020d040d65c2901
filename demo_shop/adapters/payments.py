"""The shop's client of the payments service (a simulated card processor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PaymentDeclined
from ..observe import CallObserver
from ..resilience import Deadline, Timeouts, retrying
from .http import JsonHttp, http_translator, raise_for_server_error

DEPENDENCY = "payments"


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge as the processor reports it."""

    charge_id: str
    status: str  # authorized, captured, voided, refunded, declined, processing
    amount_cents: int
    idempotency_key: str
    order_id: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Charge:
        """Build from the processor's JSON."""
        return cls(
            charge_id=str(body["charge_id"]),
            status=str(body["status"]),
            amount_cents=int(body["amount_cents"]),
            idempotency_key=str(body["idempotency_key"]),
            order_id=str(body["order_id"]),
        )


class PaymentsClient:
    """authorize / capture / void / refund / find, each one instrumented HTTP call."""

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
            if response.status_code == 402:
                raise PaymentDeclined(str(body.get("decline_code", "card_declined")))
            if response.status_code >= 400:
                raise ValueError(f"payments rejected the request: {response.status_code}")
            return body

    def authorize(
        self,
        idempotency_key: str,
        order_id: str,
        amount_cents: int,
        card: dict[str, Any],
        deadline: Deadline,
    ) -> Charge:
        """Place a hold for amount on card; the same key never authorizes twice."""
        body = self._call(
            "authorize", "POST", "/v1/charges", deadline,
            json={"order_id": order_id, "amount_cents": amount_cents, "currency": "usd",
                  "card": card, "capture": False},
            headers={"Idempotency-Key": idempotency_key},
        )
        return Charge.from_json(body)

    def capture(self, charge_id: str, deadline: Deadline) -> Charge:
        """Move the held money; capturing a captured charge is a no-op."""
        return Charge.from_json(
            self._call("capture", "POST", f"/v1/charges/{charge_id}/capture", deadline)
        )

    def void(self, charge_id: str, deadline: Deadline) -> Charge:
        """Release a hold that was never captured."""
        return Charge.from_json(
            self._call("void", "POST", f"/v1/charges/{charge_id}/void", deadline)
        )

    def refund(self, charge_id: str, deadline: Deadline) -> Charge:
        """Give back captured money."""
        return Charge.from_json(
            self._call("refund", "POST", f"/v1/charges/{charge_id}/refund", deadline)
        )

    def find(self, idempotency_key: str, deadline: Deadline) -> Charge | None:
        """The charge made with this key, if any (for reconciling a lost answer)."""
        body = self._call(
            "find", "GET", "/v1/charges", deadline, params={"idempotency_key": idempotency_key}
        )
        charges = body.get("charges", [])
        return Charge.from_json(charges[0]) if charges else None

    def probe(self) -> None:
        """A cheap health call for the prober."""
        # With the read timeout real calls get: a slow dependency shows as slow, not down.
        self._call("health", "GET", "/healthz", Deadline(self._timeouts.read), retry=False)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()
