"""The ledger audit: nothing lost (DESIGN.md).

From the load's evidence files, the orders table, the payments ledger and inventory, all
read directly (not through Toxiproxy), for what happened since the run started:
- every order confirmed to a shopper exists once, confirmed, with the amount told; every
  order accepted as payment_pending exists;
- every captured charge belongs to exactly one confirmed order (no orphan, no double charge);
- no idempotency key captured twice;
- every failed or declined checkout released its reservation (also one that failed
  before its order was written); every confirmed order committed its stock;
- no order is left pending or with its payment unknown; every payment_pending order was
  captured or cancelled (while the settling time lasts it may still be, since the shop
  takes the payment once payments answers) and none outlived its limit;
- stock never went below zero.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from .errors import HarnessError

ORDER_COLUMNS = ("order_id, idempotency_key, status, total_cents, attempt, reservation_id, "
                 "charge_id, stock_committed, extract(epoch FROM updated_at) AS updated, "
                 "extract(epoch FROM created_at) AS created")
# Rules the shop may still be settling (its reconciliation pass): the audit may wait.
EVENTUAL_RULES = frozenset({"stock not committed", "order left unresolved",
                            "payment pending not settled",
                            "reservation not released"})  # the last: until it expires


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing lost or wrong, with the ids to look up."""

    rule: str
    detail: str
    ids: dict[str, str]


@dataclass(slots=True)
class AuditResult:
    """What the audit looked at and what it found."""

    orders: int = 0
    charges: int = 0
    told_confirmed: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No violation."""
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        """For the journal."""
        return {"orders": self.orders, "charges": self.charges,
                "told_confirmed": self.told_confirmed, "clean": self.clean,
                "violations": [{"rule": v.rule, "detail": v.detail, "ids": v.ids}
                               for v in self.violations]}


def read_evidence(folder: Path) -> list[dict[str, Any]]:
    """Every checkout attempt the load generator recorded."""
    entries = []
    for path in sorted(folder.glob("evidence-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


def run_audit(
    evidence: list[dict[str, Any]],
    database_url: str,
    payments_url: str,
    inventory_url: str,
    since: float,
    pending_limit_seconds: float = 600.0,
) -> AuditResult:
    """Check the ledgers against each other and against what shoppers were told."""
    try:
        with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
            orders = conn.cursor(row_factory=dict_row).execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE created_at >= to_timestamp(%s)",
                (since,)).fetchall()
        charges = httpx.get(f"{payments_url}/v1/charges", timeout=30).json()["charges"]
        reservations = httpx.get(f"{inventory_url}/v1/reservations", timeout=30).json()[
            "reservations"]
        stock = httpx.get(f"{inventory_url}/v1/stock", timeout=30).json()["items"]
    except (psycopg.Error, httpx.HTTPError, KeyError, ValueError) as exc:
        raise HarnessError(f"the audit could not read the ledgers: {exc}") from exc

    charges = [c for c in charges if c["created_at"] >= since]
    # A charge made in this window may belong to an order made before it (a payment taken
    # later for an order left pending by an earlier run): judge it with its order.
    known = {o["order_id"] for o in orders}
    earlier = sorted({c["order_id"] for c in charges} - known)
    if earlier:
        try:
            with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
                orders += conn.cursor(row_factory=dict_row).execute(
                    f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ANY(%s)",
                    (earlier,)).fetchall()
        except psycopg.Error as exc:
            raise HarnessError(f"the audit could not read the ledgers: {exc}") from exc
    result = AuditResult(orders=len(orders), charges=len(charges))
    by_id = {o["order_id"]: o for o in orders}
    by_key = {o["idempotency_key"]: o for o in orders}
    res_state = {r["reservation_id"]: r["state"] for r in reservations}
    add = result.violations.append

    told, told_pending = {}, {}
    for entry in evidence:
        if entry.get("status") == 201 and entry.get("order_status") == "confirmed":
            told[entry["idempotency_key"]] = entry
        elif entry.get("status") == 201 and entry.get("order_status") == "payment_pending":
            told_pending[entry["idempotency_key"]] = entry
    for key, entry in told_pending.items():
        order = by_key.get(key)
        if order is None or order["order_id"] != entry.get("order_id"):
            add(Violation("pending order missing", "a shopper was told the order is taken "
                          "(payment pending) but it is not in the orders table",
                          {"idempotency_key": key, "order_id": str(entry.get("order_id"))}))
    result.told_confirmed = len(told)
    for key, entry in told.items():
        order = by_key.get(key)
        if order is None or order["order_id"] != entry.get("order_id"):
            add(Violation("confirmed order missing", "a shopper was told an order is "
                          "confirmed but it is not in the orders table",
                          {"idempotency_key": key, "order_id": str(entry.get("order_id"))}))
        elif order["status"] != "confirmed":
            add(Violation("confirmed order not confirmed", f"told confirmed, stored as "
                          f"{order['status']}", {"order_id": order["order_id"]}))
        elif order["total_cents"] != entry.get("total_cents"):
            add(Violation("amount differs", f"told {entry.get('total_cents')}, stored "
                          f"{order['total_cents']}", {"order_id": order["order_id"]}))

    captured_per_order: dict[str, list[str]] = defaultdict(list)
    captured_keys: Counter[str] = Counter()
    for charge in charges:
        if charge["status"] not in ("captured",):
            continue
        captured_per_order[charge["order_id"]].append(charge["charge_id"])
        captured_keys[charge["idempotency_key"]] += 1
        order = by_id.get(charge["order_id"])
        if order is not None and order["status"] in ("pending", "payment_unknown",
                                                     "payment_pending"):
            continue  # being settled: "order left unresolved" reports it while it lasts
        if order is None or order["status"] != "confirmed" or \
                order["charge_id"] != charge["charge_id"]:
            add(Violation("orphan charge", "money was captured for no confirmed order "
                          f"(order is {order['status'] if order else 'missing'})",
                          {"charge_id": charge["charge_id"], "order_id": charge["order_id"]}))
    for order_id, charge_ids in captured_per_order.items():
        if len(charge_ids) > 1:
            add(Violation("double charge", f"{len(charge_ids)} captured charges for one order",
                          {"order_id": order_id, "charge_ids": ",".join(charge_ids)}))
    for key, count in captured_keys.items():
        if count > 1:
            add(Violation("idempotency key captured twice", f"{count} captures",
                          {"idempotency_key": key}))

    now = datetime.now(UTC).timestamp()
    for order in orders:
        attempts = [f"{order['order_id']}-{n}" for n in range(1, order["attempt"] + 1)]
        if order["status"] in ("failed", "declined", "cancelled"):
            held = [r for r in attempts if res_state.get(r) in ("active", "committed")]
            if held:
                add(Violation("reservation not released", f"{order['status']} order still "
                              f"holds stock", {"order_id": order["order_id"],
                                               "reservation_id": ",".join(held)}))
        elif order["status"] == "confirmed" and not order["stock_committed"]:
            add(Violation("stock not committed", "a paid order's reservation was not turned "
                          "into a sale", {"order_id": order["order_id"]}))
        elif order["status"] in ("pending", "payment_unknown"):
            add(Violation("order left unresolved", f"order is still {order['status']}",
                          {"order_id": order["order_id"]}))
        elif order["status"] == "payment_pending" and \
                now - float(order["created"]) > pending_limit_seconds:
            add(Violation("payment pending too long", "neither captured nor cancelled "
                          "within its limit", {"order_id": order["order_id"]}))
        elif order["status"] == "payment_pending":
            add(Violation("payment pending not settled", "the payment was neither taken nor "
                          "the order cancelled", {"order_id": order["order_id"]}))
    for reservation in reservations:
        if reservation["state"] != "active" or reservation["created_at"] < since:
            continue
        if reservation["reservation_id"].split("-")[0] not in by_id:
            add(Violation("reservation not released", "stock is held for a checkout that "
                          "failed before its order was written",
                          {"reservation_id": reservation["reservation_id"]}))
    for item in stock:
        if item["on_hand"] < 0 or item["available"] < 0:
            add(Violation("stock below zero", f"on hand {item['on_hand']}, available "
                          f"{item['available']}", {"sku": item["sku"]}))
    return result
