"""Locust with nothing of ours loaded: the no-op route as fast as one process can, so `make
bench` can tell Locust's own cost per request from what the shop's locustfile adds."""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class NoopBare(FastHttpUser):
    """GET /healthz with no wait, no classification, no timeline, no status watch."""

    wait_time = constant(0)

    @task
    def noop(self) -> None:
        self.client.get("/healthz")
