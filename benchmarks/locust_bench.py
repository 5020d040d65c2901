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
        total, cart_ref = self._fill_cart(cart)
        if total is not None:
            self.checkout(cart, total, cart_ref)


class PagesJudged(shop_load.ShopperBase):
    """The sale page and a product page as fast as it can, each page parsed and judged as
    the load does (layout, banner, contract)."""

    wait_time = constant(0)

    @task
    def look(self) -> None:
        self.page("GET", "/", "/")
        self.page("GET", "/products/LAMP-001", "/products/[sku]")


class PagesByStatus(FastHttpUser):
    """The same two pages, judged by status code only (what HTML judging is measured
    against)."""

    wait_time = constant(0)

    @task
    def look(self) -> None:
        for path in ("/", "/products/LAMP-001"):
            with self.client.get(path, catch_response=True) as response:
                if response.status_code >= 500:
                    response.failure(f"http_{response.status_code}")


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
