"""The shop's settings: defaults, overridden by SHOP_* environment variables, then by tests."""

from __future__ import annotations

import os
from typing import Any

from .resilience import Timeouts


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def settings_from_env() -> dict[str, Any]:
    """Flask config mapping for the shop, read from the environment."""
    return {
        "SECRET_KEY": os.environ.get("SHOP_SECRET_KEY", "dev-only-secret-change-me"),
        "DATABASE_URL": os.environ.get(
            "SHOP_DATABASE_URL", "postgresql://postgres@127.0.0.1:25432/shop"
        ),
        "REDIS_URL": os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:26379/0"),
        "PAYMENTS_URL": os.environ.get("SHOP_PAYMENTS_URL", "http://127.0.0.1:18101"),
        "INVENTORY_URL": os.environ.get("SHOP_INVENTORY_URL", "http://127.0.0.1:18102"),
        "CHECKOUT_DEADLINE": _env_float("SHOP_CHECKOUT_DEADLINE", 5.0),
        "TIMEOUTS": {
            "payments": Timeouts(
                connect=_env_float("SHOP_PAYMENTS_CONNECT_TIMEOUT", 0.5),
                read=_env_float("SHOP_PAYMENTS_READ_TIMEOUT", 2.5),
            ),
            "inventory": Timeouts(
                connect=_env_float("SHOP_INVENTORY_CONNECT_TIMEOUT", 0.5),
                read=_env_float("SHOP_INVENTORY_READ_TIMEOUT", 1.0),
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
        "HEALTH_PROBE_INTERVAL": _env_float("SHOP_HEALTH_PROBE_INTERVAL", 1.0),
        "RECONCILE_INTERVAL": _env_float("SHOP_RECONCILE_INTERVAL", 2.0),
        "RESERVATION_TTL": int(_env_float("SHOP_RESERVATION_TTL", 900)),
        "MAX_CONTENT_LENGTH": int(_env_float("SHOP_MAX_BODY_BYTES", 64 * 1024)),
        "RETRY_AFTER_SECONDS": int(_env_float("SHOP_RETRY_AFTER", 30)),
    }
