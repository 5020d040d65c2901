"""Each adapter against the one real server it talks to (and Toxiproxy in front where the
test breaks the connection): a few processes per module's stack, not the whole topology.
Every stack is session-wide, on free loopback ports, and always stopped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chaos.faults import FaultInjector
from chaos.stack import Ports, Stack, StackConfig
from demo_shop.adapters.carts import CartStore, connect_redis
from demo_shop.adapters.orders import OrdersStore, connect_pool, init_database
from demo_shop.calls import GuardedCalls
from demo_shop.health import HealthBoard
from demo_shop.resilience import Timeouts
from tests.conftest import TEST_RUNS, forget


@contextmanager
def servers(request: pytest.FixtureRequest, *components: str) -> Iterator[Stack]:
    """Only these components of the stack, started and always stopped."""
    stack = Stack(StackConfig(run_dir=TEST_RUNS / uuid.uuid4().hex[:8], ports=Ports.free(),
                              payments_processing_ms=10.0))
    try:
        stack.up(only=components)
        yield stack
    finally:
        stack.down()
        forget(stack.run_dir, request.session)


@pytest.fixture(scope="session")
def database(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """PostgreSQL, with Toxiproxy in front of it."""
    with servers(request, "postgres", "toxiproxy") as stack:
        yield stack


@pytest.fixture(scope="session")
def cache(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Redis, with Toxiproxy in front of it."""
    with servers(request, "redis", "toxiproxy") as stack:
        yield stack


@pytest.fixture(scope="session")
def upstreams(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The payments and inventory services."""
    with servers(request, "payments", "inventory") as stack:
        yield stack


@pytest.fixture(scope="session")
def ledgers(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The three ledgers the audit reads: orders (PostgreSQL), charges, reservations."""
    with servers(request, "postgres", "payments", "inventory") as stack:
        init_database(stack.config.direct_database_url)  # the shop would, at its start
        yield stack


def _swept(stack: Stack) -> Iterator[FaultInjector]:
    yield stack.faults
    stack.faults.sweep()


@pytest.fixture
def database_faults(database: Stack) -> Iterator[FaultInjector]:
    """Toxiproxy in front of PostgreSQL; every toxic and disabled proxy undone after."""
    yield from _swept(database)


@pytest.fixture
def cache_faults(cache: Stack) -> Iterator[FaultInjector]:
    """Toxiproxy in front of Redis; every toxic and disabled proxy undone after."""
    yield from _swept(cache)


@pytest.fixture
def calls() -> GuardedCalls:
    return GuardedCalls(HealthBoard())


@pytest.fixture
def orders_via_proxy(database: Stack, calls: GuardedCalls) -> Iterator[OrdersStore]:
    """The orders store as the shop uses it: through the postgres proxy."""
    init_database(database.config.direct_database_url)
    timeouts = Timeouts(connect=2.0, read=1.0)
    pool = connect_pool(database.config.database_url, timeouts)
    yield OrdersStore(pool, timeouts, calls)
    pool.close()


@pytest.fixture
def carts_via_proxy(cache: Stack, calls: GuardedCalls) -> CartStore:
    """The cart store as the shop uses it: through the redis proxy."""
    url = cache.config.redis_url(cache.config.ports.proxy_redis)
    return CartStore(connect_redis(url, Timeouts(connect=0.3, read=0.5)), calls)
