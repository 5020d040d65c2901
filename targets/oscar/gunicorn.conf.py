"""gunicorn as Oscar is deployed behind it: a few sync-style threaded workers."""

import os

bind = os.environ.get("OSCAR_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("OSCAR_WORKERS", "3"))
worker_class = "gthread"
threads = int(os.environ.get("OSCAR_THREADS", "8"))
timeout = 30
graceful_timeout = 5
keepalive = 10
wsgi_app = "wsgi:application"
