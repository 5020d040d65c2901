"""Adapters wired to the session stack's real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaos.stack import LOOPBACK, Stack
from demo_shop.adapters.carts import CartStore, connect_redis
from demo_shop.adapters.orders import OrdersStore, connect_pool, init_database
from demo_shop.calls import GuardedCalls
from demo_shop.health import HealthBoard
from demo_shop.resilience import Timeouts


@pytest.fixture
def calls() -> GuardedCalls:
    return GuardedCalls(HealthBoard())


@pytest.fixture
def orders_via_proxy(stack: Stack, calls: GuardedCalls) -> Iterator[OrdersStore]:
    """The orders store as the shop uses it: through the postgres proxy."""
    init_database(stack.config.direct_database_url)
    timeouts = Timeouts(connect=2.0, read=1.0)
    pool = connect_pool(stack.config.database_url, timeouts)
    yield OrdersStore(pool, timeouts, calls)
    pool.close()


@pytest.fixture
def carts_via_proxy(stack: Stack, calls: GuardedCalls) -> CartStore:
    """The cart store as the shop uses it: through the redis proxy."""
    url = f"redis://{LOOPBACK}:{stack.config.ports.proxy_redis}/0"
    return CartStore(connect_redis(url, Timeouts(connect=0.3, read=0.5)), calls)
