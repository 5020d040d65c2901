"""The ledger audit: nothing lost, every promise kept (DESIGN.md).

It reads the orders table, the payments ledger and inventory's own records directly (not
through Toxiproxy), and the load's evidence of what each shopper was told, for what
happened since the run started. Each check is one function over those ledgers:

- promises: every order told confirmed exists once, confirmed, with the amount told; every
  order told payment_pending exists; every answer that said "you have not been charged"
  has no capture for its key once settled;
- money: every confirmed order has exactly one capture of exactly its total; every capture
  belongs to a confirmed order (no orphan); every refund and void belongs to a failed,
  declined or cancelled order; no hold is left open on an order that ended, or past the
  payment-pending limit;
- stock, from inventory's own records: each confirmed order's reservation is committed;
  the reservations of orders that failed were released by the shop, not left to expire;
  each sku's units add up (initial = available + held + committed);
- orders: none left pending or with its payment unknown; every payment_pending order was
  captured or cancelled within its limit;
- mail, for a shop that sends order confirmations: every confirmed order mailed once, and
  no confirmation of an order the shop does not have or that failed.

A check whose condition the shop may still be settling (its reconciliation pass) is in
EVENTUAL_RULES: the runner repeats the audit while only those remain.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg.rows import dict_row

from .errors import HarnessError

if TYPE_CHECKING:
    from .stack import StackConfig
    from .target import Ledgers as LedgerSources
    from .target import Source as LedgerSource

# The columns an orders ledger answers (the target's query names them so).
ORDER_COLUMNS = ("order_id", "idempotency_key", "status", "total_cents", "attempt",
                 "reservation_id", "charge_id", "stock_committed", "updated", "created")
ENDED = ("failed", "declined", "cancelled")
# Rules the shop may still be settling (its reconciliation pass): the audit may wait.
EVENTUAL_RULES = frozenset({
    "order left unresolved", "payment pending not settled", "reservation not committed",
    "reservation not released", "hold left open", "refund or void of a live order",
    "confirmation not mailed",  # a shop may queue its mail while the server is away
})


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
    told_not_charged: int = 0
    violations: list[Violation] = field(default_factory=list)
    # Checks not made, each with the ledger it lacked: never counted as passed.
    not_judged: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No violation."""
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        """For the journal."""
        return {"orders": self.orders, "charges": self.charges,
                "told_confirmed": self.told_confirmed,
                "told_not_charged": self.told_not_charged, "clean": self.clean,
                "not_judged": self.not_judged,
                "violations": [{"rule": v.rule, "detail": v.detail, "ids": v.ids}
                               for v in self.violations]}


@dataclass(slots=True)
class Ledgers:
    """Everything the audit reads, as the stores hold it."""

    orders: list[dict[str, Any]]
    charges: list[dict[str, Any]]  # every charge in the payments ledger
    reservations: list[dict[str, Any]]  # every reservation in inventory
    stock: list[dict[str, Any]]
    since: float
    now: float
    pending_limit_seconds: float
    initial_stock: dict[str, int]
    # The ledgers the target gave (orders, charges, reservations, stock, initial_stock,
    # mail).
    given: frozenset[str] = frozenset({"orders", "charges", "reservations", "stock",
                                       "initial_stock"})
    mail: list[dict[str, Any]] = field(default_factory=list)  # every message the shop sent
    mail_order: str = ""  # the pattern whose first group is a message's order id
    _orders_by_id: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._orders_by_id = {o["order_id"]: o for o in self.orders}

    @property
    def recent_charges(self) -> list[dict[str, Any]]:
        """Charges made since the run started."""
        return [c for c in self.charges if c["created_at"] >= self.since]

    def order_of(self, charge: dict[str, Any]) -> dict[str, Any] | None:
        """The order a charge was made for (None: no such order in the shop)."""
        return self._orders_by_id.get(charge["order_id"])

    def captured(self, order_id: str) -> list[dict[str, Any]]:
        """The charges of an order where money moved and stayed (captured)."""
        return [c for c in self.charges if c["order_id"] == order_id
                and c["status"] == "captured"]


Check = Callable[[Ledgers, dict[str, dict[str, Any]], list[Violation]], None]


def read_evidence(folder: Path) -> list[dict[str, Any]]:
    """Every checkout answer the load generator recorded."""
    entries = []
    for path in sorted(folder.glob("evidence-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


def last_answers(evidence: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per idempotency key, the last answer its shopper got (what they were left with)."""
    last: dict[str, dict[str, Any]] = {}
    for entry in sorted(evidence, key=lambda e: (e.get("ts", 0), e.get("attempt", 0))):
        if entry.get("idempotency_key"):
            last[entry["idempotency_key"]] = entry
    return last


READ_ONLY_SESSION = "-c default_transaction_read_only=on -c statement_timeout=30000"


def _fetch(source: LedgerSource, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One ledger's rows: an HTTP GET's JSON list under its key, or a SQL query's rows."""
    if source.http is not None:
        answer = httpx.get(source.http, timeout=30)
        answer.raise_for_status()
        rows = answer.json()[source.key]
        if not isinstance(rows, list):
            raise ValueError(f"{source.http} answered no list under {source.key!r}")
        return rows
    assert source.dsn is not None and source.query is not None
    # The query comes from a target file: untrusted. Validation let only one SELECT in;
    # the session is read-only with a statement timeout whatever role the DSN names, and
    # the query runs in a READ ONLY transaction, so nothing it says can write.
    with psycopg.connect(source.dsn, connect_timeout=5, options=READ_ONLY_SESSION) as conn:
        conn.read_only = True
        with conn.transaction():
            found: list[dict[str, Any]] = conn.cursor(row_factory=dict_row).execute(
                source.query.encode(), params).fetchall()
    return found


def read_ledgers(sources: LedgerSources, since: float, pending_limit_seconds: float = 600.0
                 ) -> Ledgers:
    """Read every ledger the target gives (directly, not through Toxiproxy); HarnessError
    when one given cannot be read. A ledger not given is left out, and the checks that
    need it are not judged."""
    given = {name for name in ("orders", "charges", "reservations", "stock", "mail")
             if getattr(sources, name) is not None}
    if sources.initial_stock:
        given.add("initial_stock")
    read: dict[str, list[dict[str, Any]]] = {}
    try:
        if sources.charges is not None:
            read["charges"] = _fetch(sources.charges, {"since": since})
        if sources.orders is not None:
            # A charge made in this window may belong to an order made before it (a payment
            # taken later for an order left pending by an earlier run): judge it with it.
            earlier = sorted({c["order_id"] for c in read.get("charges", [])
                              if c["created_at"] >= since})
            read["orders"] = _fetch(sources.orders, {"since": since, "order_ids": earlier})
        for name in ("reservations", "stock", "mail"):
            source = getattr(sources, name)
            if source is not None:
                read[name] = _fetch(source, {"since": since})
    except (psycopg.Error, httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
        raise HarnessError(f"the audit could not read the ledgers: {exc}") from exc
    return Ledgers(read.get("orders", []), read.get("charges", []),
                   read.get("reservations", []), read.get("stock", []), since,
                   datetime.now(UTC).timestamp(), pending_limit_seconds,
                   dict(sources.initial_stock), frozenset(given), read.get("mail", []),
                   "" if sources.mail is None else sources.mail.order)


# ---- promises ---------------------------------------------------------------------------------

def check_told_orders(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                      add: list[Violation]) -> None:
    """Every order a shopper was told of exists, as told."""
    by_key = {o["idempotency_key"]: o for o in ledgers.orders}
    for key, entry in told.items():
        if entry.get("status") != 201:
            continue
        order = by_key.get(key)
        ids = {"idempotency_key": key, "order_id": str(entry.get("order_id"))}
        said = entry.get("order_status")
        if order is None or order["order_id"] != entry.get("order_id"):
            rule = "confirmed order missing" if said == "confirmed" else "pending order missing"
            add.append(Violation(rule, f"a shopper was told the order is {said} but it is "
                                 "not in the orders table", ids))
        elif said == "confirmed" and order["status"] != "confirmed":
            add.append(Violation("confirmed order not confirmed",
                                 f"told confirmed, stored as {order['status']}", ids))
        elif entry.get("total_cents") is not None and \
                order["total_cents"] != entry.get("total_cents"):
            add.append(Violation("amount differs", f"told {entry.get('total_cents')}, stored "
                                 f"{order['total_cents']}", ids))


def check_not_charged(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                      add: list[Violation]) -> None:
    """An answer that said "you have not been charged" left no capture for its key."""
    by_key = {o["idempotency_key"]: o for o in ledgers.orders}
    for key, entry in told.items():
        if entry.get("charged") is not False:
            continue
        order = by_key.get(key)
        if order is None:
            continue  # no order, so no charge could be made for it
        for charge in ledgers.captured(order["order_id"]):
            add.append(Violation("told not charged but captured", "a shopper was told they "
                                 f"have not been charged ({entry.get('status')}), yet "
                                 f"{charge['amount_cents']} was captured",
                                 {"idempotency_key": key, "order_id": order["order_id"],
                                  "charge_id": charge["charge_id"]}))


# ---- money ------------------------------------------------------------------------------------

def check_confirmed_captured(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                             add: list[Violation]) -> None:
    """Each confirmed order has exactly one capture, of exactly its total."""
    for order in ledgers.orders:
        if order["status"] != "confirmed":
            continue
        captured = ledgers.captured(order["order_id"])
        ids = {"order_id": order["order_id"]}
        if not captured:
            add.append(Violation("confirmed order not captured", "the shop confirmed an order "
                                 "whose payment was never taken", ids))
        elif len(captured) > 1:
            add.append(Violation("double charge", f"{len(captured)} captured charges for one "
                                 "order", {**ids, "charge_ids": ",".join(
                                     c["charge_id"] for c in captured)}))
        elif captured[0]["amount_cents"] != order["total_cents"]:
            add.append(Violation("charge amount differs", f"captured "
                                 f"{captured[0]['amount_cents']} for an order of "
                                 f"{order['total_cents']}",
                                 {**ids, "charge_id": captured[0]["charge_id"]}))


def check_captures_have_orders(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                               add: list[Violation]) -> None:
    """Every capture belongs to a confirmed order (one being settled is reported by the
    unresolved-order check while it lasts)."""
    for charge in ledgers.recent_charges:
        if charge["status"] != "captured":
            continue
        order = ledgers.order_of(charge)
        if order is not None and order["status"] in ("pending", "payment_unknown",
                                                     "payment_pending", "confirmed"):
            continue
        add.append(Violation("orphan charge", "money was captured for no confirmed order "
                             f"(order is {order['status'] if order else 'missing'})",
                             {"charge_id": charge["charge_id"], "order_id": charge["order_id"]}))


def check_refunds_and_voids(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                            add: list[Violation]) -> None:
    """Money given back, or a hold let go, only for orders that ended without a sale —
    or for an earlier attempt of an order the shopper retried (its charge is another one;
    the confirmed-captured check judges that one)."""
    for charge in ledgers.recent_charges:
        if charge["status"] not in ("refunded", "voided"):
            continue
        order = ledgers.order_of(charge)
        if order is None or order["status"] in ENDED:
            continue  # no order at all: the orphan and missing-order checks speak to it
        if order.get("charge_id") and order["charge_id"] != charge["charge_id"]:
            continue  # an earlier attempt's charge, given back before the retry
        add.append(Violation("refund or void of a live order", f"a {charge['status']} charge "
                             f"for an order that is {order['status']}",
                             {"charge_id": charge["charge_id"], "order_id": order["order_id"]}))


def check_holds(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                add: list[Violation]) -> None:
    """No authorization left open on an order that ended, nor past the pending limit."""
    for charge in ledgers.charges:
        if charge["status"] != "authorized":
            continue
        order = ledgers.order_of(charge)
        age = ledgers.now - charge["created_at"]
        ids = {"charge_id": charge["charge_id"], "order_id": charge["order_id"]}
        if age > ledgers.pending_limit_seconds:
            add.append(Violation("hold past its limit", f"a hold on the shopper's card has "
                                 f"been open {age:.0f} s (limit "
                                 f"{ledgers.pending_limit_seconds:.0f} s)", ids))
        elif charge["created_at"] >= ledgers.since and (
                order is None or order["status"] in (*ENDED, "confirmed")):
            add.append(Violation("hold left open", "a hold on the shopper's card outlived its "
                                 f"order ({order['status'] if order else 'missing'})", ids))


# ---- stock ------------------------------------------------------------------------------------

def check_reservations(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                       add: list[Violation]) -> None:
    """Confirmed orders' stock is committed in inventory; failed orders' stock was released
    by the shop (an expired hold means the shop never gave it back)."""
    state = {r["reservation_id"]: r["state"] for r in ledgers.reservations}
    owned: set[str] = set()
    for order in ledgers.orders:
        ids = {"order_id": order["order_id"]}
        attempts = {f"{order['order_id']}-{n}" for n in range(1, order["attempt"] + 1)}
        if order["reservation_id"]:
            attempts.add(order["reservation_id"])
        owned |= attempts
        if order["status"] == "confirmed":
            rid = order["reservation_id"]
            if state.get(rid) != "committed":
                add.append(Violation("reservation not committed", "a paid order's stock is "
                                     f"{state.get(rid, 'missing')} in inventory, not committed",
                                     {**ids, "reservation_id": str(rid)}))
        elif order["status"] in ENDED:
            for rid in sorted(r for r in attempts if r in state):
                _released_by_shop(rid, state[rid], order["status"], add)
    for reservation in ledgers.reservations:
        rid = reservation["reservation_id"]
        if reservation["created_at"] >= ledgers.since and rid not in owned and \
                rid.split("-")[0] not in {o["order_id"] for o in ledgers.orders}:
            _released_by_shop(rid, reservation["state"], "never written", add)


def _released_by_shop(rid: str, state: str, order_status: str, add: list[Violation]) -> None:
    ids = {"reservation_id": rid}
    if state == "active":
        add.append(Violation("reservation not released", f"a {order_status} order still "
                             "holds stock", ids))
    elif state == "expired":
        add.append(Violation("reservation left to expire", f"a {order_status} order's "
                             "stock came back only when its hold expired", ids))
    elif state == "committed":
        add.append(Violation("stock sold for an unpaid order", f"a {order_status} order's "
                             "stock was committed", ids))


def check_stock_adds_up(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                        add: list[Violation]) -> None:
    """Per sku, from inventory's own records: initial = available + held + committed."""
    committed: dict[str, int] = defaultdict(int)
    for reservation in ledgers.reservations:
        if reservation["state"] == "committed":
            for line in reservation["items"]:
                committed[line["sku"]] += line["qty"]
    for item in ledgers.stock:
        start = ledgers.initial_stock.get(item["sku"])
        if start is None:
            continue
        counted = item["available"] + item["reserved"] + committed[item["sku"]]
        if counted != start:
            add.append(Violation("stock does not add up", f"started with {start}, now "
                                 f"{item['available']} available + {item['reserved']} held + "
                                 f"{committed[item['sku']]} sold = {counted}",
                                 {"sku": item["sku"]}))


# ---- orders -----------------------------------------------------------------------------------

def check_orders_settled(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                         add: list[Violation]) -> None:
    """No order left half-done; every payment_pending order settled within its limit."""
    for order in ledgers.orders:
        ids = {"order_id": order["order_id"]}
        if order["status"] in ("pending", "payment_unknown"):
            add.append(Violation("order left unresolved", f"order is still {order['status']}",
                                 ids))
        elif order["status"] == "payment_pending":
            if ledgers.now - float(order["created"]) > ledgers.pending_limit_seconds:
                add.append(Violation("payment pending too long", "neither captured nor "
                                     "cancelled within its limit", ids))
            else:
                add.append(Violation("payment pending not settled", "the payment was neither "
                                     "taken nor the order cancelled", ids))


# ---- mail -------------------------------------------------------------------------------------

def _order_named(pattern: re.Pattern[str], message: dict[str, Any]) -> str | None:
    """The order a message is about (None: it names none)."""
    for part in ("subject", "body"):
        found = pattern.search(str(message.get(part) or ""))
        if found:
            return found.groupdict().get("order_id") or found.group(1)
    return None


def check_confirmations_mailed(ledgers: Ledgers, told: dict[str, dict[str, Any]],
                               add: list[Violation]) -> None:
    """Every confirmed order mailed once, and no confirmation of an order lost or failed."""
    pattern = re.compile(ledgers.mail_order)
    mailed: Counter[str] = Counter()
    for message in ledgers.mail:
        if float(message["received_at"]) >= ledgers.since:
            order_id = _order_named(pattern, message)
            if order_id is not None:
                mailed[order_id] += 1
    for order in ledgers.orders:
        if order["status"] != "confirmed" or float(order["created"]) < ledgers.since:
            continue
        ids, sent = {"order_id": str(order["order_id"])}, mailed[str(order["order_id"])]
        if sent == 0:
            add.append(Violation("confirmation not mailed", "a confirmed order's shopper "
                                 "was sent no confirmation", ids))
        elif sent > 1:
            add.append(Violation("confirmation mailed more than once",
                                 f"{sent} confirmations of one order", ids))
    by_id = {str(o["order_id"]): o for o in ledgers.orders}  # a pattern finds text
    for order_id, sent in sorted(mailed.items()):
        found = by_id.get(order_id)
        if found is None:
            add.append(Violation("confirmation of a lost order", f"{sent} confirmation(s) "
                                 "mailed for an order the shop does not have",
                                 {"order_id": order_id}))
        elif found["status"] in ENDED:
            add.append(Violation("confirmation of a failed order", f"mailed, and the order "
                                 f"is {found['status']}", {"order_id": order_id}))


# Each check with the ledgers it reads.
CHECKS: tuple[tuple[Check, tuple[str, ...]], ...] = (
    (check_told_orders, ("orders",)),
    (check_not_charged, ("orders", "charges")),
    (check_confirmed_captured, ("orders", "charges")),
    (check_captures_have_orders, ("orders", "charges")),
    (check_refunds_and_voids, ("orders", "charges")),
    (check_holds, ("orders", "charges")),
    (check_reservations, ("orders", "reservations")),
    (check_stock_adds_up, ("reservations", "stock", "initial_stock")),
    (check_orders_settled, ("orders",)),
    (check_confirmations_mailed, ("orders", "mail")),
)


def audit_ledgers(ledgers: Ledgers, evidence: list[dict[str, Any]]) -> AuditResult:
    """Every check whose ledgers were given, over ledgers already read; the others are
    listed as not judged."""
    told = last_answers(evidence)
    result = AuditResult(orders=len(ledgers.orders), charges=len(ledgers.recent_charges))
    result.told_confirmed = sum(1 for e in told.values() if e.get("status") == 201
                                and e.get("order_status") == "confirmed")
    result.told_not_charged = sum(1 for e in told.values() if e.get("charged") is False)
    for check, needs in CHECKS:
        lacking = [n for n in needs if n not in ledgers.given]
        if lacking:
            name = (check.__doc__ or check.__name__).split("\n")[0].rstrip(".")
            result.not_judged.append(f"{name} (no {' or '.join(lacking)} ledger)")
            continue
        check(ledgers, told, result.violations)
    return result


def run_audit(evidence: list[dict[str, Any]], sources: LedgerSources, since: float,
              pending_limit_seconds: float = 600.0) -> AuditResult:
    """Check the ledgers against each other and against what shoppers were told."""
    return audit_ledgers(read_ledgers(sources, since, pending_limit_seconds), evidence)


def stack_sources(config: StackConfig) -> LedgerSources:
    """The reference shop's ledgers on a stack of the harness's (targets/reference.yaml)."""
    from .target import reference_target

    return reference_target(config).ledgers
