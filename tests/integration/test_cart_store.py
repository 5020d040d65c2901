"""The Redis cart store against the real server (through its Toxiproxy proxy)."""

from __future__ import annotations

import time
import uuid

import pytest

from demo_shop.adapters.carts import CART_TTL_SECONDS, CartStore
from demo_shop.domain import Cart
from demo_shop.errors import DependencyUnavailable

pytestmark = pytest.mark.integration


def test_save_load_clear_round_trip(carts_via_proxy: CartStore) -> None:
    cart = Cart(uuid.uuid4().hex)
    cart.add("LAMP-001", 2)
    cart.add("TOWL-001", 1)
    carts_via_proxy.save(cart)
    assert carts_via_proxy.load(cart.cart_id).lines == {"LAMP-001": 2, "TOWL-001": 1}
    carts_via_proxy.clear(cart.cart_id)
    assert carts_via_proxy.load(cart.cart_id).is_empty


def test_saved_cart_expires_after_a_week_idle(carts_via_proxy: CartStore) -> None:
    cart = Cart(uuid.uuid4().hex, {"LAMP-001": 1})
    carts_via_proxy.save(cart)
    ttl = carts_via_proxy._redis.ttl(f"cart:{cart.cart_id}")
    assert CART_TTL_SECONDS - 5 <= ttl <= CART_TTL_SECONDS


def test_blackholed_redis_fails_within_the_socket_timeout(
    carts_via_proxy: CartStore, cache_faults
) -> None:
    carts_via_proxy.load(uuid.uuid4().hex)
    cache_faults.inject("redis", "timeout", name="blackhole", attributes={"timeout": 0})
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        carts_via_proxy.load(uuid.uuid4().hex)
    assert info.value.dependency == "cache"
    assert time.monotonic() - started < 1.5


def test_redis_down_is_a_dependency_error(carts_via_proxy: CartStore, cache_faults) -> None:
    cache_faults.disable("redis")
    with pytest.raises(DependencyUnavailable) as info:
        carts_via_proxy.load(uuid.uuid4().hex)
    assert info.value.dependency == "cache"


def test_redis_takes_no_command_without_its_generated_password(cache) -> None:  # type: ignore[no-untyped-def]
    """Neither directly nor through its proxy: the cart store is no open door."""
    import redis

    for port in (cache.config.ports.redis, cache.config.ports.proxy_redis):
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping()
        assert redis.Redis.from_url(cache.config.redis_url(port), socket_timeout=2).ping()
