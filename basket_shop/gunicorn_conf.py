"""gunicorn settings for Basket & Co: sync-ish threads, the schema made once on start."""

from __future__ import annotations

import os
from typing import Any

wsgi_app = "basket_shop.app:create_app()"
bind = os.environ.get("BASKET_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("BASKET_WORKERS", "3"))
worker_class = "gthread"
threads = int(os.environ.get("BASKET_THREADS", "8"))
timeout = 30
graceful_timeout = 5
keepalive = 75


def on_starting(server: Any) -> None:
    """Create the schema once, before any worker starts."""
    from basket_shop.app import init_database

    init_database(os.environ["BASKET_DATABASE_URL"])
