"""Orders and the product table in PostgreSQL (psycopg 3 with a connection pool).

libpq has no client-side query timeout, and a proxy that swallows packets (a Toxiproxy
blackhole) leaves a query waiting forever. So every transaction runs under a guard
that shuts the connection's socket down when its time is up: the wait wakes with an
error, the pool drops the broken connection, and the shopper gets an answer in time.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ..calls import GuardedCalls
from ..catalog import PRODUCTS
from ..domain import CartLine, Order, OrderStatus, StaleOrder
from ..errors import DependencyUnavailable
from ..resilience import Deadline, Timeouts
from ..watchdog import WATCHDOG

DEPENDENCY = "database"

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku text PRIMARY KEY,
    name text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0),
    sale_price_cents integer NOT NULL CHECK (sale_price_cents > 0)
);
CREATE TABLE IF NOT EXISTS orders (
    order_id text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    cart_id text NOT NULL,
    status text NOT NULL,
    total_cents integer NOT NULL CHECK (total_cents >= 0),
    attempt integer NOT NULL DEFAULT 1,
    reservation_id text,
    charge_id text,
    stock_committed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS order_items (
    order_id text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    sku text NOT NULL,
    qty integer NOT NULL CHECK (qty BETWEEN 1 AND 99),
    unit_price_cents integer NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE INDEX IF NOT EXISTS orders_status_idx ON orders (status);
-- A card sealed by the shop's vault, kept only while the order's payment is pending.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS card_sealed text;
-- Every stored change bumps the version and is made only if the version read is current.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0;
-- A reconciler's claim: nobody else settles the order until the lease ends.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lease_until timestamptz;
-- What the idempotency key was first used for (keyed digest of cart and card).
ALTER TABLE orders ADD COLUMN IF NOT EXISTS request_digest text NOT NULL DEFAULT '';
-- An order the reconciler could not settle waits until then (backoff), behind nobody.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS reconcile_failures integer NOT NULL DEFAULT 0;
"""
# Longer than the slowest settle (find, authorize, capture, save, commit, save: 2 s each).
LEASE_SECONDS = 30.0
LEASE_FREE = "(lease_until IS NULL OR lease_until < now())"
# A checkout holds a lease on its order from the moment it writes (or retries) it until it
# stores an outcome: the time its deadline leaves, plus this for the compensation steps it
# may still run after it. The reconciler takes no order under a lease, so it never gives up
# an order whose checkout is still going (and may still be charging).
CHECKOUT_LEASE_MARGIN = 5.0
# The longest an order the reconciler could not settle waits before the next try.
SET_ASIDE_MOST = 300.0
# What a save does to the lease: an outcome ends the checkout's; a pending order keeps it.
END_LEASE_ON_OUTCOME = "lease_until = CASE WHEN %s = 'pending' THEN lease_until END"


def translate_pg(exc: BaseException) -> DependencyUnavailable | None:
    """PostgreSQL errors become the shop's DependencyUnavailable."""
    if isinstance(exc, PoolTimeout):
        return DependencyUnavailable(DEPENDENCY, "saturated", "no free connection")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return DependencyUnavailable(DEPENDENCY, "timeout", "statement timed out")
    if isinstance(exc, psycopg.OperationalError):
        return DependencyUnavailable(DEPENDENCY, "reset", "connection failed")
    if isinstance(exc, psycopg.InterfaceError):
        return DependencyUnavailable(DEPENDENCY, "reset", "connection closed")
    return None


class _SocketGuard:
    """Shuts a connection's socket down if the guarded block outlives its time (armed on
    the process's one watchdog thread, not a timer thread per transaction)."""

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self._conn = conn
        self._seconds = seconds
        self.fired = False
        self._token: int | None = None

    def _sever(self) -> None:
        self.fired = True
        try:
            fd = self._conn.pgconn.socket
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            # The connection already closed by itself: nothing left to cut.
            return

    def __enter__(self) -> _SocketGuard:
        self._token = WATCHDOG.arm(self._seconds, self._sever)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            WATCHDOG.disarm(self._token)


def check_idle_socket(conn: psycopg.Connection[Any]) -> None:
    """Reject a pooled connection whose peer hung up while it sat idle.

    An idle connection's socket has nothing to read; if it is readable, the server or a
    proxy in between closed it (Toxiproxy does when a proxy is disabled). One select()
    with no wait finds that without a round trip, so recovery is not slowed by a pool
    full of dead connections and the check costs nothing under a latency fault.
    """
    if conn.closed:
        raise psycopg.OperationalError("connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.close()  # closed, the pool discards it instead of handing it out again
        raise psycopg.OperationalError("connection was closed by the server")


def _checkout_lease(deadline: Deadline) -> float:
    """How long a checkout holds its order: what its deadline leaves, and the margin."""
    return deadline.remaining() + CHECKOUT_LEASE_MARGIN


def connect_pool(dsn: str, timeouts: Timeouts, max_size: int = 10) -> ConnectionPool:
    """A pool that opens connections in the background; nothing waits on it at creation."""
    kwargs = {
        "autocommit": True,
        "connect_timeout": max(2, int(timeouts.connect + 0.999)),
        "options": f"-c statement_timeout={int(timeouts.read * 1000)}",
    }
    pool = ConnectionPool(
        dsn, min_size=2, max_size=max_size, kwargs=kwargs, open=False,
        # The pool retries a failed connection with doubling delays until this timeout;
        # after a 20 s outage the next try could be 16 s away, and checkouts failed that
        # long after the database was back. Giving up after 5 s instead lets the next
        # request that needs a connection start a fresh attempt at once.
        reconnect_timeout=5.0, name="orders", check=check_idle_socket,
    )
    pool.open(wait=False)
    return pool


def init_database(dsn: str) -> None:
    """Create the schema and seed the catalog once (safe to run from several processes)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(4242)")
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO products (sku, name, price_cents, sale_price_cents) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (sku) DO NOTHING",
                [(p.sku, p.name, p.price_cents, p.sale_price_cents) for p in PRODUCTS],
            )


class OrdersStore:
    """Products and orders, each method one guarded transaction."""

    def __init__(self, pool: ConnectionPool, timeouts: Timeouts, calls: GuardedCalls) -> None:
        self._pool = pool
        self._timeouts = timeouts
        self._calls = calls

    @contextmanager
    def _transaction(self, operation: str, deadline: Deadline, probe: bool = False,
                     atomic: bool = True) -> Iterator[psycopg.Connection]:
        """A pooled connection for one guarded call: a transaction around it when it runs
        several statements that must stand or fall together (`atomic`), none when it is
        one statement — that is atomic by itself, and BEGIN and COMMIT would be two more
        round trips through the proxy."""
        with self._calls.call(DEPENDENCY, operation, translate_pg, probe=probe):
            _, seconds = self._timeouts.cap(deadline)
            conn = self._pool.getconn(timeout=seconds)
            try:
                guard = _SocketGuard(conn, seconds)
                try:
                    with guard, (conn.transaction() if atomic else nullcontext()):
                        yield conn
                except psycopg.Error as exc:
                    if guard.fired:
                        raise DependencyUnavailable(DEPENDENCY, "timeout", "no answer") from exc
                    raise
            finally:
                self._pool.putconn(conn)

    def products(self, deadline: Deadline) -> list[dict[str, Any]]:
        """Every product with its prices, by sku."""
        with self._transaction("products", deadline, atomic=False) as conn:
            cur = conn.cursor(row_factory=dict_row)
            return list(cur.execute(
                "SELECT sku, name, price_cents, sale_price_cents FROM products ORDER BY sku"
            ))

    def unit_prices(self, skus: list[str], deadline: Deadline) -> dict[str, int]:
        """The sale price of each sku that exists."""
        with self._transaction("prices", deadline, atomic=False) as conn:
            rows = conn.execute(
                "SELECT sku, sale_price_cents FROM products WHERE sku = ANY(%s)", (skus,)
            ).fetchall()
            return {sku: price for sku, price in rows}

    def insert_pending(self, order: Order, unit_prices: dict[str, int], deadline: Deadline) -> bool:
        """Write a new pending order with its items, in one statement (so one round trip,
        and atomic); False when its idempotency key is already taken."""
        lines = order.items
        with self._transaction("insert_order", deadline, atomic=False) as conn:
            return conn.execute(
                "WITH placed AS (INSERT INTO orders (order_id, idempotency_key, cart_id, "
                "status, total_cents, attempt, reservation_id, request_digest, version, "
                "lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "now() + make_interval(secs => %s)) "
                "ON CONFLICT (idempotency_key) DO NOTHING RETURNING order_id) "
                "INSERT INTO order_items (order_id, sku, qty, unit_price_cents) "
                "SELECT placed.order_id, line.sku, line.qty, line.price FROM placed, "
                "unnest(%s::text[], %s::int[], %s::int[]) AS line(sku, qty, price)",
                (order.order_id, order.idempotency_key, order.cart_id, order.status,
                 order.total_cents, order.attempt, order.reservation_id,
                 order.request_digest, order.version, _checkout_lease(deadline),
                 [line.sku for line in lines],
                 [line.qty for line in lines], [unit_prices[line.sku] for line in lines]),
            ).rowcount > 0  # an order has items: none written means the key was taken

    def save(self, order: Order, deadline: Deadline) -> None:
        """Store an order's status, attempt, reservation, charge and stock flag — only if
        nobody changed it since it was read (StaleOrder otherwise). A sealed card is erased
        as soon as the order's payment is no longer pending."""
        with self._transaction("update_order", deadline, atomic=False) as conn:
            changed = conn.execute(
                "UPDATE orders SET status = %s, attempt = %s, reservation_id = %s, "
                "charge_id = %s, stock_committed = %s, updated_at = now(), "
                f"version = version + 1, {END_LEASE_ON_OUTCOME}, "
                "card_sealed = CASE WHEN %s = 'payment_pending' THEN card_sealed END "
                "WHERE order_id = %s AND version = %s",
                (order.status, order.attempt, order.reservation_id, order.charge_id,
                 order.stock_committed, order.status, order.status, order.order_id,
                 order.version),
            ).rowcount
        self._bump(order, changed)

    def park_for_payment(self, order: Order, sealed_card: str, deadline: Deadline) -> None:
        """Store the order as payment_pending with the sealed card for the capture later
        (conditional on the version read, as every change) — and the attempt and the
        reservation it holds: the reconciler takes the payment with this attempt's key, so
        a retried order parked here must not be reconciled under the attempt before it."""
        with self._transaction("park_order", deadline, atomic=False) as conn:
            changed = conn.execute(
                "UPDATE orders SET status = 'payment_pending', charge_id = %s, "
                "attempt = %s, reservation_id = %s, "
                "card_sealed = %s, updated_at = now(), version = version + 1, "
                "lease_until = NULL WHERE order_id = %s AND version = %s",
                (order.charge_id, order.attempt, order.reservation_id, sealed_card,
                 order.order_id, order.version),
            ).rowcount
        self._bump(order, changed)

    @staticmethod
    def _bump(order: Order, changed: int) -> None:
        if changed != 1:
            raise StaleOrder(order.order_id)
        order.version += 1

    def sealed_card(self, order_id: str, deadline: Deadline) -> str | None:
        """The sealed card of a payment_pending order, if it still has one."""
        with self._transaction("get_card", deadline, atomic=False) as conn:
            row = conn.execute("SELECT card_sealed FROM orders WHERE order_id = %s",
                               (order_id,)).fetchone()
            return None if row is None else row[0]

    def claim_for_retry(
        self, idempotency_key: str, stale_after_seconds: float, deadline: Deadline
    ) -> Order | None:
        """Atomically move a retryable (or stale pending) order back to pending, under the
        checkout's lease; None if not (another checkout or the reconciler holds it)."""
        with self._transaction("claim_order", deadline) as conn:
            row = conn.execute(
                "UPDATE orders SET status = 'pending', updated_at = now(), "
                "version = version + 1, lease_until = now() + make_interval(secs => %s) "
                f"WHERE idempotency_key = %s AND {LEASE_FREE} "
                "AND (status IN ('failed', 'payment_unknown') "
                "OR (status = 'pending' AND updated_at < now() - make_interval(secs => %s))) "
                "RETURNING order_id, status",
                (_checkout_lease(deadline), idempotency_key, stale_after_seconds),
            ).fetchone()
            return self._load(conn, "idempotency_key", idempotency_key) if row else None

    def needing_reconciliation(self, older_than_seconds: float, limit: int,
                               deadline: Deadline) -> list[Order]:
        """Orders a checkout left unfinished: confirmed without committed stock, payment
        unknown, or pending past its time (a worker died mid-checkout); and orders whose
        payment is to be taken later (at once: they wait for payments, not for a checkout)."""
        with self._transaction("find_unreconciled", deadline) as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT order_id FROM orders WHERE ((updated_at < now() - "
                "make_interval(secs => %s) AND (status IN ('payment_unknown', 'pending') OR "
                "(status = 'confirmed' AND NOT stock_committed))) OR status = 'payment_pending')"
                f" AND {LEASE_FREE} AND (next_attempt_at IS NULL OR next_attempt_at < now()) "
                "ORDER BY updated_at LIMIT %s",
                (older_than_seconds, limit))]
            return [o for i in ids if (o := self._load(conn, "order_id", i)) is not None]

    def claim(self, order: Order, deadline: Deadline,
              lease_seconds: float = LEASE_SECONDS) -> bool:
        """Take an order for reconciliation if nobody changed it since it was read and no
        lease is held on it: a lease longer than a settle, so no other reconciler and no
        shopper's retry settles it meanwhile (`release` ends it early)."""
        with self._transaction("claim_order", deadline, atomic=False) as conn:
            changed = conn.execute(
                "UPDATE orders SET lease_until = now() + make_interval(secs => %s), "
                f"version = version + 1 WHERE order_id = %s AND version = %s AND {LEASE_FREE}",
                (lease_seconds, order.order_id, order.version)).rowcount
        if changed == 1:
            order.version += 1
        return changed == 1

    def set_aside(self, order: Order, deadline: Deadline,
                  most_seconds: float = SET_ASIDE_MOST) -> float:
        """The reconciler could not settle this order: it waits (1 s, 2 s, 4 s, ... at most
        most_seconds) before it is tried again, and ends the reconciler's lease, so the
        orders behind it are settled meanwhile. The seconds it waits."""
        with self._transaction("set_aside_order", deadline, atomic=False) as conn:
            row = conn.execute(
                "UPDATE orders SET reconcile_failures = reconcile_failures + 1, "
                "next_attempt_at = now() + make_interval(secs => "
                "least(%s, power(2, reconcile_failures))), lease_until = NULL "
                "WHERE order_id = %s RETURNING least(%s, power(2, reconcile_failures - 1))",
                (most_seconds, order.order_id, most_seconds)).fetchone()
        return float(row[0]) if row else 0.0

    def release(self, order: Order, deadline: Deadline) -> None:
        """End a reconciler's lease on the order (it expires by itself if this fails)."""
        with self._transaction("release_order", deadline, atomic=False) as conn:
            conn.execute("UPDATE orders SET lease_until = NULL WHERE order_id = %s "
                         "AND version = %s", (order.order_id, order.version))

    def get(self, order_id: str, deadline: Deadline) -> Order | None:
        """One order with its items, or None."""
        with self._transaction("get_order", deadline, atomic=False) as conn:
            return self._load(conn, "order_id", order_id)

    def get_by_key(self, idempotency_key: str, deadline: Deadline) -> Order | None:
        """The order made with this idempotency key, or None."""
        with self._transaction("get_order", deadline, atomic=False) as conn:
            return self._load(conn, "idempotency_key", idempotency_key)

    def all_orders(self, deadline: Deadline) -> list[Order]:
        """Every order (for audits and tests)."""
        with self._transaction("list_orders", deadline) as conn:
            keys = [r[0] for r in conn.execute("SELECT order_id FROM orders ORDER BY created_at")]
            return [o for k in keys if (o := self._load(conn, "order_id", k)) is not None]

    @staticmethod
    def _load(conn: psycopg.Connection, column: str, value: str) -> Order | None:
        """One order and its items, in one query (one round trip)."""
        cur = conn.cursor(row_factory=dict_row)
        row = cur.execute(
            "SELECT orders.*, coalesce((SELECT json_agg(json_build_array(sku, qty) "
            "ORDER BY sku) FROM order_items WHERE order_items.order_id = orders.order_id), "
            f"'[]') AS items FROM orders WHERE {column} = %s",  # column is ours, not input
            (value,),
        ).fetchone()
        if row is None:
            return None
        items = row["items"]
        return Order(
            order_id=row["order_id"], idempotency_key=row["idempotency_key"],
            status=OrderStatus(row["status"]), total_cents=row["total_cents"],
            items=[CartLine(sku, qty) for sku, qty in items], cart_id=row["cart_id"],
            attempt=row["attempt"], reservation_id=row["reservation_id"],
            charge_id=row["charge_id"], stock_committed=row["stock_committed"],
            created_at=row["created_at"].timestamp(), version=row["version"],
            request_digest=row["request_digest"],
        )

    def probe(self) -> None:
        """A cheap health call for the prober."""
        with self._transaction("health", Deadline(self._timeouts.read), probe=True,
                               atomic=False) as conn:
            conn.execute("SELECT 1")
