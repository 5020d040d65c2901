"""gunicorn settings for the shop: gthread workers, multiprocess metrics, schema on start."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess

wsgi_app = "demo_shop.app:create_app()"
bind = os.environ.get("SHOP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SHOP_WORKERS", "3"))
worker_class = os.environ.get("SHOP_WORKER_CLASS", "gthread")
threads = int(os.environ.get("SHOP_THREADS", "8"))
timeout = 30
graceful_timeout = 5
keepalive = 75  # longer than any client keeps an idle connection: no reuse-while-closing race
accesslog = None  # the app writes its own JSON access log


def on_starting(server: Any) -> None:
    """Create the schema and seed the catalog once, before any worker starts."""
    from demo_shop.adapters.orders import init_database

    init_database(os.environ["SHOP_DATABASE_URL"])


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
