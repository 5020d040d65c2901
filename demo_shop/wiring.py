"""The one place that builds the real adapters and hands them to the app."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .adapters.carts import CartStore, connect_redis
from .adapters.inventory import InventoryClient
from .adapters.orders import OrdersStore, connect_pool
from .adapters.payments import PaymentsClient
from .cache import ShortCache
from .calls import GuardedCalls
from .checkout import CheckoutDeps
from .config import SafeguardPolicy
from .health import FALLBACK_MESSAGES, HealthBoard, Periodic, SharedStates
from .reconcile import Reconciler, ReleaseQueue
from .resilience import Deadline, build_guards
from .vault import CardVault


@dataclass(slots=True)
class Shop:
    """Everything a request handler may use: the checkout's collaborators and the health view."""

    deps: CheckoutDeps
    orders: OrdersStore
    carts: CartStore
    board: HealthBoard
    prober: Periodic
    # (value, fresh): from short-lived caches with the fallbacks on, straight from the
    # dependency without them.
    stock_levels: Callable[[], tuple[dict[str, int], bool]] = lambda: ({}, True)
    catalog: Callable[[], tuple[list[dict[str, Any]], bool]] | None = None
    closers: tuple[Any, ...] = ()
    reconcile_loop: Periodic | None = None

    def start_background(self) -> None:
        """Start the prober and the reconciliation loop once per process."""
        self.prober.ensure_started()
        if self.reconcile_loop is not None:
            self.reconcile_loop.ensure_started()

    def close(self) -> None:
        """Stop the background loops and close every client (tests, worker exit)."""
        self.prober.stop()
        if self.reconcile_loop is not None:
            self.reconcile_loop.stop()
        for closer in self.closers:
            closer()


def build_shop(config: dict[str, Any]) -> Shop:
    """Real adapters from config; connections open lazily or in the background."""
    timeouts = config["TIMEOUTS"]
    policy: SafeguardPolicy = config.get("SAFEGUARDS") or SafeguardPolicy()
    resilient = policy.all_on
    fallbacks = policy.on("fallbacks")
    board = HealthBoard(slow_seconds=config["SLOW_SECONDS"],
                        messages=FALLBACK_MESSAGES if fallbacks else None,
                        shared=SharedStates(config["HEALTH_DIR"]) if config.get("HEALTH_DIR")
                        else None)
    calls = GuardedCalls(board, build_guards(config["GUARDS"]))
    pool = connect_pool(config["DATABASE_URL"], timeouts["database"])
    carts = CartStore(connect_redis(config["REDIS_URL"], timeouts["cache"]), calls)
    orders = OrdersStore(pool, timeouts["database"], calls)
    payments = PaymentsClient(config["PAYMENTS_URL"], timeouts["payments"], calls,
                              token=config["SERVICE_TOKEN"])
    inventory = InventoryClient(config["INVENTORY_URL"], timeouts["inventory"], calls,
                                token=config["SERVICE_TOKEN"])
    releases = ReleaseQueue()
    deps = CheckoutDeps(
        carts=carts, orders=orders, payments=payments, inventory=inventory,
        reservation_ttl_seconds=config["RESERVATION_TTL"],
        stale_pending_seconds=config["CHECKOUT_DEADLINE"] * 4,
        compensation_reserve=1.0 if resilient else 0.0,
        vault=CardVault(config["VAULT_KEY"]) if fallbacks else None,
        payment_pending_seconds=config["PAYMENT_PENDING_LIMIT"],
        release_later=releases.add if config["RECONCILE_INTERVAL"] > 0 else None,
        request_key=hashlib.sha256(b"checkout requests:" + config["VAULT_KEY"].encode()
                                   ).digest(),
    )
    probes = {
        "payments": payments.probe, "inventory": inventory.probe,
        "database": orders.probe, "cache": carts.probe,
    }
    prober = Periodic(probes, board, config["HEALTH_PROBE_INTERVAL"])
    reconciler = Reconciler(deps, orders, settle_seconds=config["CHECKOUT_DEADLINE"] + 2,
                            releases=releases)
    loop = Periodic({"reconcile": reconciler.run_once}, board, config["RECONCILE_INTERVAL"])
    if fallbacks:
        stock = ShortCache(lambda: inventory.stock_levels(Deadline(0.5)), fresh_for=5.0,
                           serve_stale_for=120.0).get
        catalog = ShortCache(lambda: orders.products(Deadline(1.0)), fresh_for=30.0,
                             serve_stale_for=3600.0).get
    else:
        def stock() -> tuple[dict[str, int], bool]:
            return inventory.stock_levels(Deadline.none()), True

        def catalog() -> tuple[list[dict[str, Any]], bool]:
            return orders.products(Deadline.none()), True
    return Shop(deps, orders, carts, board, prober, stock, catalog,
                (pool.close, payments.close, inventory.close), loop)
