"""The shop's settings: defaults, overridden by SHOP_* environment variables, then by tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from .resilience import GuardSettings, Timeouts


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _guard(dependency: str, concurrency: int) -> GuardSettings:
    prefix = f"SHOP_{dependency.upper()}"
    return GuardSettings(
        failure_threshold=int(_env_float(f"{prefix}_BREAKER_FAILURES", 5)),
        recovery_timeout=_env_float(f"{prefix}_BREAKER_RESET", 5.0),
        concurrency=int(_env_float(f"{prefix}_BULKHEAD", concurrency)),
    )


# Each safeguard can be turned off alone (SHOP_SAFEGUARDS_OFF=payments_timeout,breakers) to
# show that the gate finds which one is missing; SHOP_RESILIENCE=off turns every one off:
# library-default timeouts (none for Redis and PostgreSQL) that ignore the checkout
# deadline, no breakers, bulkheads, retries, fallbacks, shedding or reconciliation — a shop
# as many are built.
FRAGILE_TIMEOUTS = {
    "payments": Timeouts(connect=5.0, read=5.0, within_deadline=False),  # httpx's default
    "inventory": Timeouts(connect=5.0, read=5.0, within_deadline=False),
    "database": Timeouts(connect=3600.0, read=3600.0, within_deadline=False),
    "cache": Timeouts(connect=3600.0, read=3600.0, within_deadline=False),
}
SAFEGUARDS = (
    *(f"{dependency}_timeout" for dependency in FRAGILE_TIMEOUTS),
    "breakers", "bulkheads", "retries", "fallbacks", "shedding", "reconcile",
)


@dataclass(frozen=True, slots=True)
class SafeguardPolicy:
    """Which safeguards the shop runs with: read once from the environment here, and handed
    to the app (shedding, fallback pages) and to the wiring (timeouts, guards, checkout)."""

    off: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> SafeguardPolicy:
        """SHOP_RESILIENCE=off turns every safeguard off; SHOP_SAFEGUARDS_OFF names some."""
        resilient = os.environ.get("SHOP_RESILIENCE", "on").strip().lower()
        if resilient not in ("on", "off"):
            raise ValueError(f"SHOP_RESILIENCE must be on or off, got {resilient!r}")
        if resilient == "off":
            return cls(frozenset(SAFEGUARDS))
        named = {s.strip() for s in os.environ.get("SHOP_SAFEGUARDS_OFF", "").split(",")
                 if s.strip()}
        unknown = sorted(named - set(SAFEGUARDS))
        if unknown:
            raise ValueError(f"SHOP_SAFEGUARDS_OFF names unknown safeguards "
                             f"{', '.join(unknown)} (known: {', '.join(SAFEGUARDS)})")
        return cls(frozenset(named))

    @classmethod
    def fragile(cls) -> SafeguardPolicy:
        """Every safeguard off: a shop as many are built."""
        return cls(frozenset(SAFEGUARDS))

    def on(self, safeguard: str) -> bool:
        """Whether this safeguard is on."""
        return safeguard not in self.off

    @property
    def all_on(self) -> bool:
        """Every safeguard on (the resilient shop)."""
        return not self.off


# Keys that were ever shipped or shown as examples: a shop running with one is as open as
# one with none.
KNOWN_DEFAULT_SECRETS = frozenset({
    "", "dev-only-secret-change-me", "change-me", "changeme", "secret", "test", "dev",
})
MIN_SECRET_LENGTH = 32


class InsecureSettings(ValueError):
    """The shop was asked to start with a secret anyone could know."""


def check_secrets(settings: dict[str, Any]) -> None:
    """Refuse to run outside tests with a missing, default or short secret, or with one key
    doing both jobs (a leaked cookie key must not also unseal cards)."""
    if settings.get("TESTING"):
        return
    for name, env in (("SECRET_KEY", "SHOP_SECRET_KEY"), ("VAULT_KEY", "SHOP_VAULT_KEY")):
        value = str(settings.get(name) or "")
        if value in KNOWN_DEFAULT_SECRETS or len(value) < MIN_SECRET_LENGTH:
            raise InsecureSettings(
                f"{env} is missing, a known default or shorter than {MIN_SECRET_LENGTH} "
                "characters: start the shop with `make up` (it generates per-install secrets "
                "in .run/secrets.json) or set it to a long random value")
    if settings["SECRET_KEY"] == settings["VAULT_KEY"]:
        raise InsecureSettings("SHOP_SECRET_KEY and SHOP_VAULT_KEY must differ")


def settings_from_env() -> dict[str, Any]:
    """Flask config mapping for the shop, read from the environment."""
    policy = SafeguardPolicy.from_env()
    off = policy.off
    settings = _resilient_settings()
    settings["SAFEGUARDS"] = policy
    for dependency, fragile in FRAGILE_TIMEOUTS.items():
        if f"{dependency}_timeout" in off:
            settings["TIMEOUTS"][dependency] = fragile
    if all(f"{d}_timeout" in off for d in FRAGILE_TIMEOUTS):
        settings["CHECKOUT_DEADLINE"] = 3600.0
    settings["GUARDS"] = {
        name: replace(guard, breaker="breakers" not in off, bulkhead="bulkheads" not in off,
                      retries="retries" not in off)
        for name, guard in settings["GUARDS"].items()}
    if "reconcile" in off:
        settings["RECONCILE_INTERVAL"] = 0.0
    if "fallbacks" in off:
        settings["PAYMENT_PENDING_LIMIT"] = 0
    return settings


def _resilient_settings() -> dict[str, Any]:
    return {
        # Per-install secrets (`make up` generates them): one signs cookies (the cookie
        # cart, CSRF), the other seals stored cards. No defaults: see check_secrets.
        "SECRET_KEY": os.environ.get("SHOP_SECRET_KEY", ""),
        "VAULT_KEY": os.environ.get("SHOP_VAULT_KEY", ""),
        "DATABASE_URL": os.environ.get(
            "SHOP_DATABASE_URL", "postgresql://postgres@127.0.0.1:25432/shop"
        ),
        "REDIS_URL": os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:26379/0"),
        "PAYMENTS_URL": os.environ.get("SHOP_PAYMENTS_URL", "http://127.0.0.1:18101"),
        # The install's token for the services' state-changing calls (.run/secrets.json).
        "SERVICE_TOKEN": os.environ.get("SHOP_SERVICE_TOKEN", ""),
        "INVENTORY_URL": os.environ.get("SHOP_INVENTORY_URL", "http://127.0.0.1:18102"),
        "CHECKOUT_DEADLINE": _env_float("SHOP_CHECKOUT_DEADLINE", 5.0),
        "TIMEOUTS": {
            "payments": Timeouts(
                connect=_env_float("SHOP_PAYMENTS_CONNECT_TIMEOUT", 0.5),
                read=_env_float("SHOP_PAYMENTS_READ_TIMEOUT", 2.5),
            ),
            "inventory": Timeouts(
                connect=_env_float("SHOP_INVENTORY_CONNECT_TIMEOUT", 0.5),
                read=_env_float("SHOP_INVENTORY_READ_TIMEOUT", 2.0),
            ),
            "database": Timeouts(
                connect=_env_float("SHOP_DATABASE_CONNECT_TIMEOUT", 2.0),
                read=_env_float("SHOP_DATABASE_READ_TIMEOUT", 1.0),
            ),
            "cache": Timeouts(
                connect=_env_float("SHOP_CACHE_CONNECT_TIMEOUT", 0.3),
                read=_env_float("SHOP_CACHE_READ_TIMEOUT", 0.5),
            ),
        },
        # When half a dependency's calls in the status window take this long, the status
        # page says it is slow.
        "SLOW_SECONDS": {
            dependency: _env_float(f"SHOP_{dependency.upper()}_SLOW", default)
            for dependency, default in (("payments", 1.0), ("inventory", 0.5),
                                        ("database", 0.1), ("cache", 0.1))},
        "HEALTH_PROBE_INTERVAL": _env_float("SHOP_HEALTH_PROBE_INTERVAL", 1.0),
        # A folder the shop's workers share, so all of them tell shoppers the same status
        # (unset: each worker tells its own).
        "HEALTH_DIR": os.environ.get("SHOP_HEALTH_DIR", ""),
        "RECONCILE_INTERVAL": _env_float("SHOP_RECONCILE_INTERVAL", 2.0),
        # A checkout holds stock for seconds; if its release cannot be sent (inventory down),
        # expiry gives the stock back soon. A paid order whose hold expired is re-reserved
        # by the reconciliation pass.
        "RESERVATION_TTL": int(_env_float("SHOP_RESERVATION_TTL", 30)),
        # Payments down: orders are accepted as payment_pending and their payment taken when
        # payments answers again, or cancelled (stock given back) after this many seconds.
        "PAYMENT_PENDING_LIMIT": int(_env_float("SHOP_PAYMENT_PENDING_LIMIT", 600)),
        # Load shedding: checkouts in flight per worker, and how long one may wait for a
        # slot before it is answered 429 + Retry-After instead of queueing.
        "CHECKOUT_SLOTS": int(_env_float("SHOP_CHECKOUT_SLOTS", 6)),
        "CHECKOUT_QUEUE_SECONDS": _env_float("SHOP_CHECKOUT_QUEUE_SECONDS", 0.5),
        "MAX_CONTENT_LENGTH": int(_env_float("SHOP_MAX_BODY_BYTES", 64 * 1024)),
        "RETRY_AFTER_SECONDS": int(_env_float("SHOP_RETRY_AFTER", 30)),
        # Of each worker's threads (8 by default) at most this many wait on one dependency,
        # so a slow one cannot take every thread from the pages that do not need it.
        "GUARDS": {"payments": _guard("payments", 5), "inventory": _guard("inventory", 5),
                   "database": _guard("database", 6), "cache": _guard("cache", 6)},
    }
