"""Carts in Redis: one hash per cart (sku -> qty) that expires after a week idle."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..calls import GuardedCalls
from ..domain import Cart
from ..errors import DependencyUnavailable
from ..resilience import Timeouts

DEPENDENCY = "cache"
CART_TTL_SECONDS = 7 * 24 * 3600


def translate_redis(exc: BaseException) -> DependencyUnavailable | None:
    """Redis errors become the shop's DependencyUnavailable."""
    if isinstance(exc, redis.exceptions.TimeoutError):
        return DependencyUnavailable(DEPENDENCY, "timeout", "no answer")
    if isinstance(exc, redis.exceptions.ConnectionError):
        return DependencyUnavailable(DEPENDENCY, "refused", "connection failed")
    if isinstance(exc, redis.exceptions.RedisError):
        return DependencyUnavailable(DEPENDENCY, "other", "redis error")
    return None


def connect_redis(url: str, timeouts: Timeouts) -> redis.Redis:
    """A client that connects on first use; no retries here (the resilience policy decides)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeouts.read,
        socket_connect_timeout=timeouts.connect,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        max_connections=64,
    )


class CartStore:
    """load / save / clear carts, each one instrumented Redis round trip."""

    def __init__(self, client: redis.Redis, calls: GuardedCalls) -> None:
        self._redis = client
        self._calls = calls

    @staticmethod
    def _key(cart_id: str) -> str:
        return f"cart:{cart_id}"

    def load(self, cart_id: str) -> Cart:
        """The cart, empty if it does not exist."""
        with self._calls.call(DEPENDENCY, "load", translate_redis):
            raw = self._redis.hgetall(self._key(cart_id))
        return Cart(cart_id, {str(sku): int(qty) for sku, qty in raw.items()})

    def save(self, cart: Cart) -> None:
        """Replace the stored cart with this one and renew its expiry."""
        key = self._key(cart.cart_id)
        with self._calls.call(DEPENDENCY, "save", translate_redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(key)
            if cart.lines:
                pipe.hset(key, mapping=dict(cart.lines.items()))  # type: ignore[arg-type]
                pipe.expire(key, CART_TTL_SECONDS)
            pipe.execute()

    def clear(self, cart_id: str) -> None:
        """Empty the cart after a confirmed order."""
        with self._calls.call(DEPENDENCY, "clear", translate_redis):
            self._redis.delete(self._key(cart_id))

    def probe(self) -> None:
        """A cheap health call for the prober."""
        with self._calls.call(DEPENDENCY, "health", translate_redis, probe=True):
            self._redis.ping()
