"""User classes for `make bench`, each doing one thing (the shopper's own journeys from
loadtests/locustfile.py, classified the same way), and no-op users for the machine's limit.

Name one on Locust's command line: Buyer, Browser, NoopFast or NoopHttp.
"""

from __future__ import annotations

import uuid

from locust import HttpUser, constant, task
from locust.contrib.fasthttp import FastHttpUser

import loadtests.locustfile as shop_load


class Buyer(shop_load.ShopperBase):
    """Browse, fill a cart, check out, read the order back: the checkout journey only."""

    @task
    def journey(self) -> None:
        self._browse()
        cart = {"X-Cart-Id": uuid.uuid4().hex}
        if self._fill_cart(cart):
            self.checkout(cart)


class Browser(shop_load.ShopperBase):
    """The sale page and a product or two, nothing else."""

    @task
    def look(self) -> None:
        self._browse()


class NoopFast(FastHttpUser):
    """As fast as it can: the shop's no-op route with Locust's fast client."""

    wait_time = constant(0)

    @task
    def noop(self) -> None:
        self.client.get("/healthz")


class NoopHttp(HttpUser):
    """The same with Locust's requests-based client."""

    wait_time = constant(0)

    @task
    def noop(self) -> None:
        self.client.get("/healthz")
