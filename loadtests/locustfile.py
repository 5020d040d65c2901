"""Labor Day shoppers: browse, fill a cart, check out, read the order back.

Every answer is classified against the graceful-failure contract; ungraceful ones are
Locust failures named by their reason, so Locust's failure table shows them. Each
checkout's idempotency key, outcome and order id go to an evidence file for the ledger
audit; a per-second timeline of users, requests, classes and latency goes beside it.

Runs on its own:
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 50 -r 10 -t 60s --load-profile labor-day
Options: --load-profile steady|ramp|labor-day, --day-minutes (labor-day length; default -t),
--run-dir (evidence and timeline; default reports/load-latest), --checkout-deadline.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent
import locust.runners
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

# Workers report every second (not 3), so the live timeline and stop conditions lag little.
locust.runners.WORKER_REPORT_INTERVAL = 1.0

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # plain `locust -f` works too
from chaos.vocabulary import card_form  # noqa: E402
from loadtests.banner import BannerWrong, Seen, StatusWatch  # noqa: E402
from loadtests.classify import (  # noqa: E402
    ANY,
    CONTRACT_FAILURES,
    DEGRADED,
    GIVE_UP_SECONDS,
    OK,
    UNGRACEFUL,
    Expect,
    Verdict,
    classify,
)
from loadtests.evidence import Evidence, EvidenceInvalid, valid_evidence  # noqa: E402
from loadtests.shape import ShopShape, at_path, fill  # noqa: E402
from loadtests.shapes import PROFILES, Ticker  # noqa: E402
from loadtests.timeline import FRESH_FILE, Timeline, TimelineReportInvalid  # noqa: E402

FALLBACK_SKUS = ["LAMP-001", "TOWL-001", "BOTL-001", "CHAIR-001", "SUNS-001"]
# The share of journeys that go through the HTML storefront rather than the JSON API.
STOREFRONT_SHARE = 0.34
# Seconds /api/status must have said the same before a page's banner is judged by it.
BANNER_GRACE = 3.0


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--load-profile", choices=PROFILES, default="steady",
                        env_var="LOAD_PROFILE",
                        help="Load shape: steady, ramp or labor-day (uses -u, -r, -t)")
    parser.add_argument("--day-minutes", type=float, default=0.0, env_var="LOAD_DAY_MINUTES",
                        help="Minutes the labor-day profile's sale day is compressed into "
                             "(default: the run time)")
    parser.add_argument("--shape-seconds", type=float, default=0.0, env_var="LOAD_SHAPE_SECONDS",
                        help="Seconds the profile's shape spans (default: the run time)")
    parser.add_argument("--hold", action="store_true", default=False, env_var="LOAD_HOLD",
                        help="After the shape, keep its last users until the run time is up "
                             "(the harness then stops the load itself)")
    parser.add_argument("--run-dir", default="reports/load-latest", env_var="LOAD_RUN_DIR",
                        help="Folder for the evidence files and the timeline")
    parser.add_argument("--checkout-deadline", type=float, default=6.0,
                        env_var="LOAD_CHECKOUT_DEADLINE",
                        help="Seconds after which any answer counts as a hang (ungraceful)")
    parser.add_argument("--storefront-share", type=float, default=STOREFRONT_SHARE,
                        env_var="LOAD_STOREFRONT_SHARE",
                        help="Share of journeys made through the HTML pages (0-1)")
    parser.add_argument("--banner-grace", type=float, default=BANNER_GRACE,
                        env_var="LOAD_BANNER_GRACE",
                        help="Seconds /api/status must be settled before a page's banner "
                             "is judged by it (0: never judge the banner)")
    parser.add_argument("--target-shape", default="", env_var="LOAD_TARGET_SHAPE",
                        help="The shop's shape (routes, cart header, cards, pages, status) "
                             "as a JSON file the harness writes from a target file "
                             "(default: the reference shop's)")
    parser.add_argument("--decline-share", type=float, default=0.05, env_var="LOAD_DECLINE_SHARE",
                        help="Share of checkouts made with a card that is declined")
    parser.add_argument("--retry-given-up", action="store_true", default=False,
                        env_var="LOAD_RETRY_GIVEN_UP",
                        help="A shopper whose checkout never answered presses 'Place order' "
                             "again, with the same idempotency key")


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    run_dir = Path(options.run_dir if options else "reports/load-latest")
    environment.cc_run_dir = run_dir  # type: ignore[attr-defined]
    environment.cc_shape = ShopShape.from_file(  # type: ignore[attr-defined]
        options.target_shape if options else None)
    _ENVIRONMENT[:] = [environment]
    environment.cc_timeline = Timeline()  # type: ignore[attr-defined]
    environment.cc_evidence = Evidence(run_dir)  # type: ignore[attr-defined]
    if not isinstance(environment.runner, WorkerRunner):
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in (*run_dir.glob("evidence-*.jsonl"), run_dir / "timeline.jsonl",
                      run_dir / "live.jsonl", run_dir / FRESH_FILE, run_dir / "workers.json"):
            stale.unlink(missing_ok=True)
        (run_dir / "stop").unlink(missing_ok=True)


@events.report_to_master.add_listener
def _send_timeline(client_id: str, data: dict[str, Any]) -> None:
    environment = _environment()
    if environment is not None:
        data["cc_timeline"] = environment.cc_timeline.drain()  # type: ignore[attr-defined]
        data["cc_evidence"] = environment.cc_evidence.drain()  # type: ignore[attr-defined]


@events.worker_report.add_listener
def _merge_timeline(client_id: str, data: dict[str, Any]) -> None:
    """A worker's timeline, merged only from a worker this master knows and only when it
    is a report our workers make (a forged one is refused whole and logged)."""
    environment = _environment()
    if environment is None:
        return
    known = getattr(environment.runner, "clients", {})
    if client_id not in known:
        logging.warning("timeline report from unknown client %r refused", client_id)
        return
    try:
        evidence = valid_evidence(data.get("cc_evidence", []))
        environment.cc_timeline.merge(data.get("cc_timeline", {}))  # type: ignore[attr-defined]
    except (TimelineReportInvalid, EvidenceInvalid) as exc:
        logging.warning("report from %s refused: %s", client_id, exc)
        return
    environment.cc_evidence.flush(  # type: ignore[attr-defined]
        re.sub(r"[^A-Za-z0-9_.-]", "_", client_id), evidence)


_ENVIRONMENT: list[Environment] = []


@events.test_start.add_listener
def _start_sampling(environment: Environment, **_: Any) -> None:
    _ENVIRONMENT[:] = [environment]
    options = environment.parsed_options
    runs_users = isinstance(environment.runner, WorkerRunner | locust.runners.LocalRunner)
    has_status = bool(environment.cc_shape.status.route)  # type: ignore[attr-defined]
    if runs_users and environment.host and options is not None and options.banner_grace > 0 \
            and has_status:
        def wrong(seen: Seen, reason: str) -> None:
            """A page judged again: its answer becomes a contract failure, in the timeline
            and in Locust's failure table (as `<page> [banner]`)."""
            environment.cc_timeline.reclass(  # type: ignore[attr-defined]
                int(seen.at), seen.cls, UNGRACEFUL, seen.checkout)
            environment.events.request.fire(
                request_type="GET", name=f"{seen.name} [banner]", response_time=0,
                response_length=0, exception=BannerWrong(reason), context={})

        shape = environment.cc_shape  # type: ignore[attr-defined]
        watch = StatusWatch(environment.host, options.banner_grace, wrong, shape.status,
                            says=shape.pages.markers.says if shape.pages else None)
        environment.cc_status = watch  # type: ignore[attr-defined]
        environment.cc_status_loops = [  # type: ignore[attr-defined]
            gevent.spawn(watch.poll), gevent.spawn(watch.judge)]
    if isinstance(environment.runner, WorkerRunner):
        return

    distributed = not isinstance(environment.runner, locust.runners.LocalRunner)
    live = environment.cc_run_dir / "live.jsonl"  # type: ignore[attr-defined]

    def sample_users() -> None:
        """Each second: the user count, and the finished seconds to the live timeline."""
        while True:  # ends with the process (the greenlet is killed at quit)
            runner = environment.runner
            timeline = environment.cc_timeline  # type: ignore[attr-defined]
            if runner is not None:
                timeline.set_users(runner.user_count)
            late = 2 if distributed else 0  # workers report each second
            timeline.flush_live(live, lag_seconds=JUDGING_LAG + late, fresh_lag=1 + late)
            environment.cc_evidence.flush()  # type: ignore[attr-defined]
            if runner is not None and not isinstance(runner, locust.runners.LocalRunner):
                _say_workers(environment)
            gevent.sleep(0.5)

    environment.cc_sampler = gevent.spawn(sample_users)  # type: ignore[attr-defined]


def _say_workers(environment: Environment, joining: str | None = None) -> None:
    """How many workers the master has, for a harness that waits for them."""
    workers = set(getattr(environment.runner, "clients", {})) | ({joining} if joining else set())
    (environment.cc_run_dir / "workers.json").write_text(  # type: ignore[attr-defined]
        json.dumps({"connected": len(workers), "at": time.time()}))


@events.worker_connect.add_listener
def _worker_connected(client_id: str, **_: Any) -> None:
    """Said as each worker connects, before the run starts (it starts once all have).
    Locust fires this before it adds the worker to its clients."""
    environment = _environment()
    if environment is not None:
        _say_workers(environment, joining=client_id)


@events.quitting.add_listener
def _write_outputs(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        environment.cc_evidence.flush()  # type: ignore[attr-defined]
        environment.cc_timeline.write(environment.cc_run_dir / "timeline.jsonl")  # type: ignore[attr-defined]


def _environment() -> Environment | None:
    return _ENVIRONMENT[0] if _ENVIRONMENT else None


# Seconds a timeline second stays open for a late verdict (a banner judged after the page).
JUDGING_LAG = 4


class ShopperBase(FastHttpUser):
    """What every shopper can do (browse, fill a cart, check out) through the JSON API or
    the storefront's pages, each answer classified; no tasks of its own, so other
    locustfiles can pick single journeys (benchmarks/)."""

    abstract = True
    wait_time = between(0.5, 2.0)
    network_timeout = GIVE_UP_SECONDS
    connection_timeout = 5.0
    skus: list[str] = []

    # Each product's id (its {sku} in the pages) -> what names it in an add-to-cart body.
    products: dict[str, Any] = {}

    def on_start(self) -> None:
        """Learn the catalog once per process (the API is the source of skus)."""
        if not ShopperBase.skus:
            route, api = self.shape.products, self.shape.api
            verdict, response = self.call("GET", route, route, expect=self._expect("products"))
            listed = at_path(_json_any(response), api.products_at) if verdict.cls == OK else None
            if isinstance(listed, list):
                ShopperBase.products = {
                    str(at_path(p, api.product_id)): at_path(p, api.product_ref)
                    for p in listed if isinstance(p, dict)}
                ShopperBase.skus = list(ShopperBase.products)

    def _expect(self, kind: Any, **fields: Any) -> Expect:
        """What an API answer of this kind must be: the reference contract, or the shapes
        the target file declared for the shop's own API."""
        api = self.shape.api
        return Expect(kind, api=api if api.declared else None, **fields)

    def _options(self) -> Any:
        return self.environment.parsed_options

    @property
    def shape(self) -> ShopShape:
        """The shop's routes, cart, cards, pages and status format."""
        shape: ShopShape = getattr(self.environment, "cc_shape", None) or ShopShape()
        return shape

    def _new_cart(self) -> dict[str, str]:
        """A cart's header: an id the shopper makes (in the target's template), or none
        yet (the shop names it, in a header or in its session cookie: a new session)."""
        shape = self.shape
        if shape.cart_named_by == "shopper":
            host = urlsplit(self.host or "").hostname or ""
            return {shape.cart_header: shape.cart_value.replace("{id}", uuid.uuid4().hex)
                    .replace("{host}", host)}
        if shape.cart_named_by == "cookie":
            self.client.cookiejar.clear()
        return {}

    def call(self, method: str, path: str, name: str, *, checkout: bool = False,
             headers: dict[str, str] | None = None, expect: Expect = ANY,
             kept: Callable[[Verdict, Any], str] | None = None,
             **kwargs: Any) -> tuple[Verdict, Any]:
        """One request, classified; contract failures are Locust failures named by reason.
        kept: checks that an earlier answer's promise held ('' if it did, else why not)."""
        options = self._options()
        deadline = options.checkout_deadline if options else 6.0
        if expect.markers is None and self.shape.pages is not None:
            expect = replace(expect, markers=self.shape.pages.markers)
        if not expect.host and self.host:  # the shop's own address is no leak
            expect = replace(expect, host=urlsplit(self.host).netloc)
        with self.client.request(method, path, name=name, headers=headers,
                                 catch_response=True, **kwargs) as response:
            elapsed = response.request_meta["response_time"] / 1000.0
            if response.status_code == 0:
                error = type(getattr(response, "error", None)).__name__
                verdict = classify(None, {}, "", elapsed, deadline, error)
            else:
                verdict = classify(response.status_code, response.headers or {},
                                   response.text or "", elapsed, deadline, expect=expect)
            if kept is not None and verdict.cls not in CONTRACT_FAILURES:
                broken = kept(verdict, response)
                if broken:
                    verdict = Verdict(UNGRACEFUL, broken, verdict.page)
            if verdict.cls in CONTRACT_FAILURES:
                response.failure(verdict.reason)
            else:
                response.success()
            self.environment.cc_timeline.record(  # type: ignore[attr-defined]
                verdict.cls, elapsed * 1000.0, checkout=checkout)
        return verdict, response

    def page(self, method: str, path: str, name: str, *, checkout: bool = False,
             form: dict[str, str] | None = None, follow: bool = True,
             decline_card: bool | None = None,
             kept: Callable[[Verdict, Any], str] | None = None) -> tuple[Verdict, Any]:
        """One page as a browser gets it (a form posted as a form, a redirect followed as
        its own request), judged as a page: the shop's layout, the banner, the contract."""
        watch: StatusWatch | None = getattr(self.environment, "cc_status", None)
        expect = Expect("checkout_page" if checkout else "page", decline_card=decline_card,
                        markers=self.shape.pages.markers if self.shape.pages else None)
        asked = time.time()
        headers = {"Accept": "text/html,application/xhtml+xml"}
        kwargs: dict[str, Any] = {"allow_redirects": False}
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            kwargs["data"] = urlencode(form)
        verdict, response = self.call(method, path, name, checkout=checkout, headers=headers,
                                      expect=expect, kept=kept, **kwargs)
        if watch is not None and verdict.page is not None and \
                verdict.cls not in CONTRACT_FAILURES:
            watch.observe(Seen((asked + time.time()) / 2, verdict.page.banner, name,
                               verdict.cls, checkout, verdict.page.banner_text))
        location = (response.headers or {}).get("Location", "")
        if follow and verdict.cls == OK and verdict.reason == "redirect" and location:
            return self.page("GET", location, _page_name(location))
        return verdict, response

    def _skus(self) -> list[str]:
        return ShopperBase.skus or FALLBACK_SKUS

    def _storefront(self) -> bool:
        """Does this journey go through the HTML pages (the experiment's share of them)?
        Only in a shop with the storefront's cart and checkout forms."""
        if self.shape.pages is None or not self.shape.pages.checkout:
            return False
        options = self._options()
        share = options.storefront_share if options else STOREFRONT_SHARE
        return random.random() < share

    # ---- the JSON API ------------------------------------------------------------------
    def _fill_cart(self, cart: dict[str, str]) -> tuple[int | None, Any]:
        """Add one or two items; the cart's total (None when nothing could be added) and
        what names the cart in a checkout body (the cart answer's `ref`)."""
        added = False
        shape, api = self.shape, self.shape.api
        for sku in random.sample(self._skus(), k=random.randint(1, 2)):
            body = fill(api.add_body, {"product": ShopperBase.products.get(sku, sku),
                                       "qty": random.randint(1, 2)})
            verdict, answer = self.call("POST", shape.cart_items, shape.cart_items,
                                        headers=cart, json=body, expect=self._expect("cart"))
            added = added or verdict.cls in (OK, DEGRADED)  # a cookie cart is a cart
            named = (answer.headers or {}).get(shape.cart_header)
            if named and shape.cart_named_by == "shop" and shape.cart_header not in cart:
                cart[shape.cart_header] = named  # the shop named the cart
        verdict, response = self.call("GET", shape.cart, shape.cart, headers=cart,
                                      expect=self._expect("cart"))
        if not added:
            return None, None
        shown = _json_any(response) if verdict.cls in (OK, DEGRADED) else None
        total = api.total_cents(shown, api.cart_total) if shown is not None else None
        return (total if total is not None else 0), at_path(shown, api.cart_ref)

    def _retries_given_up(self) -> bool:
        options = self._options()
        return bool(options and getattr(options, "retry_given_up", False))

    def _card(self) -> tuple[dict[str, Any], bool]:
        options = self._options()
        share = options.decline_share if options else 0.05
        declined = random.random() < share
        return (self.shape.declined_card if declined else self.shape.good_card), declined

    def checkout(self, cart: dict[str, str], total: int | None = None,
                 cart_ref: Any = None) -> None:
        """Check out once; on 503/429 wait as told (at most 2 s) and retry with the same key
        (and, with --retry-given-up, at once after an answer that never came).
        The body is the target's template; the answer is read where the target says."""
        card, declined = self._card()
        key = uuid.uuid4().hex
        expect = self._expect("checkout", decline_card=declined, total_cents=total or None)
        cart_promised = False
        shape, api = self.shape, self.shape.api
        values = {"card": card, "cart": cart_ref, "key": key,
                  "email": f"shopper-{key[:12]}@example.com"}
        try:
            request = fill(api.checkout_body, values)
        except KeyError:  # no cart to name (its answer failed): the shop is asked anyway
            request = fill(api.checkout_body, {**values, "cart": ""})
        ordered = False
        for attempt in (1, 2):
            verdict, response = self.call(
                "POST", shape.checkout, shape.checkout, checkout=True,
                headers={**cart, "Idempotency-Key": key}, json=request, expect=expect)
            answer = _json_any(response)
            body = answer if isinstance(answer, dict) else {}
            meaning = api.outcome(response.status_code, answer)
            ordered = meaning in ("confirmed", "payment_pending")
            cart_promised = cart_promised or body.get("cart_saved") is True
            order_id = at_path(answer, api.order_id) if ordered else None
            self._evidence(key, cart.get(shape.cart_header, "") or str(cart_ref or ""),
                           attempt, 201 if ordered else response.status_code,
                           verdict, card, declined, via="api", cart_cents=total,
                           http_status=response.status_code,
                           order_id=None if order_id is None else str(order_id),
                           order_status=meaning if ordered else None,
                           total_cents=api.total_cents(answer, api.order_total),
                           charged=_charged(meaning, body.get("charged", None)),
                           cart_saved=body.get("cart_saved"), request_id=(
                               response.headers or {}).get("X-Request-ID", ""))
            if response.status_code in (429, 503) and attempt == 1:
                retry_after = _seconds((response.headers or {}).get("Retry-After", "1"))
                gevent.sleep(min(retry_after, 2.0))
                continue
            if response.status_code == 0 and attempt == 1 and self._retries_given_up():
                continue
            break
        if ordered and order_id is not None and shape.order_readable:
            self.call("GET", shape.order.replace("{order_id}", str(order_id)),
                      shape.order.replace("{order_id}", "[id]"), expect=self._expect("order"))
        elif cart_promised:  # an answer promised the cart is kept: is it?
            self.call("GET", shape.cart, shape.cart, headers=cart, expect=self._expect("cart"),
                      kept=lambda _, answer: "" if _json(answer).get("items")
                      else "cart_not_saved")

    def _evidence(self, key: str, cart_id: str, attempt: int, status: int, verdict: Verdict,
                  card: dict[str, Any], declined: bool, **fields: Any) -> None:
        """What this answer promised the shopper, for the ledger audit."""
        self.environment.cc_evidence.write(  # type: ignore[attr-defined]
            ts=time.time(), idempotency_key=key, cart_id=cart_id, attempt=attempt,
            status=status, cls=verdict.cls, reason=verdict.reason,
            card=str(card["number"])[-4:], card_kind="declined" if declined else "good",
            **fields)

    # ---- the storefront's pages ----------------------------------------------------------
    def _browse(self) -> None:
        """The sale page and a product or two (every shopper browses the pages; in a shop
        without pages, the product list)."""
        pages = self.shape.pages
        if pages is None:
            self.call("GET", self.shape.products, self.shape.products,
                      expect=self._expect("products"))
            return
        self.page("GET", pages.home, pages.home)
        for sku in random.sample(self._skus(), k=random.randint(1, 2)):
            self.page("GET", pages.product.replace("{sku}", sku),
                      pages.product.replace("{sku}", "[sku]"))

    def _fill_cart_pages(self) -> int | None:
        """A new browser session adds one or two products with the product page's form
        (its CSRF token included), then opens the cart page; the cart's total, or None."""
        self.client.cookiejar.clear()
        added = False
        for sku in random.sample(self._skus(), k=random.randint(1, 2)):
            verdict, _ = self.page("GET", f"/products/{sku}", "/products/[sku]")
            form = verdict.page.form("/cart/add") if verdict.page is not None else None
            if form is None:
                continue
            verdict, _ = self.page("POST", "/cart/add", "/cart/add (form)",
                                   form={**form.fields, "qty": str(random.randint(1, 2))})
            added = added or verdict.cls in (OK, DEGRADED)
        verdict, _ = self.page("GET", "/cart", "/cart (page)")
        if not added or verdict.page is None:
            return None
        return verdict.page.cart_total_cents

    def checkout_pages(self, total: int | None) -> None:
        """The checkout form, filled and posted as a person would, then the order page."""
        verdict, _ = self.page("GET", "/checkout", "/checkout (page)")
        form = verdict.page.form("/checkout") if verdict.page is not None else None
        if form is None or "idempotency_key" not in form.fields:
            return
        card, declined = self._card()
        fields = {**form.fields, **card_form(card)}
        key = fields["idempotency_key"]
        verdict, response = self.page("POST", "/checkout", "/checkout (form)", form=fields,
                                      checkout=True, follow=False, decline_card=declined)
        status = response.status_code
        location = (response.headers or {}).get("Location", "")
        order_id = order_status = None
        charged: bool | None = None
        cart_saved = None
        if verdict.page is not None:  # a sorry page or the form again (declined)
            charged = verdict.page.charged if status != 402 else False
            cart_saved = verdict.page.cart_saved
        if status == 303 and location.startswith("/orders/"):
            order_id = location.rsplit("/", 1)[-1]
            shown, _ = self.page("GET", location, "/orders/[id] (page)")
            if shown.page is not None:
                order_status = shown.page.order_status.replace(" ", "_") or None
            charged = True if order_status == "confirmed" else None
        self._evidence(key, "", 1, 201 if order_id else status, verdict, card, declined,
                       via="page", cart_cents=total, order_id=order_id,
                       order_status=order_status,
                       total_cents=total, charged=charged, cart_saved=cart_saved,
                       request_id=(response.headers or {}).get("X-Request-ID", ""))
        if cart_saved and not order_id:  # the sorry page said "your cart is saved": is it?
            self.page("GET", "/cart", "/cart (page)", kept=lambda shown, _: "" if (
                shown.page is not None and shown.page.cart_total_cents) else "cart_not_saved")
        if self.shape.pages is not None and self.shape.pages.status:
            self.page("GET", self.shape.pages.status, f"{self.shape.pages.status} (page)")


class Shopper(ShopperBase):
    """A Labor Day shopper. Most browse, fewer fill a cart, fewer still check out; a share
    of them (--storefront-share) through the HTML pages, the rest through the JSON API."""

    @task(12)
    def browse(self) -> None:
        """Look at the sale and a product or two."""
        self._browse()

    @task(5)
    def fill_cart_and_leave(self) -> None:
        """Browse, add to cart, look at the cart, leave."""
        self._browse()
        if self._storefront():
            self._fill_cart_pages()
            return
        self._fill_cart(self._new_cart())

    @task(3)
    def buy(self) -> None:
        """Browse, fill a cart, check out, read the order back."""
        self._browse()
        if self._storefront():
            total = self._fill_cart_pages()
            if total is not None:
                self.checkout_pages(total)
            return
        cart = self._new_cart()
        total, cart_ref = self._fill_cart(cart)
        if total is not None:
            self.checkout(cart, total, cart_ref)


def _page_name(location: str) -> str:
    """A Locust stats name for a page a redirect led to (ids folded)."""
    path = urlsplit(location).path
    if path.startswith("/orders/"):
        return "/orders/[id] (page)"
    return f"{path} (page)"


def _charged(meaning: str | None, said: Any) -> bool | None:
    """What a checkout answer promised about the money: True (confirmed), False (an answer
    without an order that said "charged": false), None (pending, or no word)."""
    if meaning == "confirmed":
        return True
    if meaning == "payment_pending":
        return None
    return False if said is False else None


def _json_any(response: Any) -> Any:
    """An answer's JSON, whatever its shape (None: not JSON)."""
    try:
        return response.json()
    except Exception:  # not JSON: an error page, a reset, nothing at all
        return None


def _json(response: Any) -> dict[str, Any]:
    body = _json_any(response)
    return body if isinstance(body, dict) else {}


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


class ProfileShape(LoadTestShape):
    """steady, ramp or labor-day, reading Locust's own -u (peak users), -r and -t."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._ticker: Ticker | None = None

    def tick(self) -> tuple[int, float] | None:
        """Users wanted now; None ends the run (also when a `stop` file appears in the run
        folder: Locust then lets each user finish its journey, so every answer is recorded)."""
        options = self.runner.environment.parsed_options if self.runner else None
        if options is not None and (Path(options.run_dir) / "stop").exists():
            return None
        if self._ticker is None:
            users = int(getattr(options, "num_users", None) or 10)
            run_time = float(getattr(options, "run_time", None) or 60)
            day_minutes = float(getattr(options, "day_minutes", 0.0) or 0.0)
            profile = getattr(options, "load_profile", "steady")
            shape = float(getattr(options, "shape_seconds", 0.0) or 0.0) or run_time
            duration = day_minutes * 60 if profile == "labor-day" and day_minutes else shape
            spawn_rate = float(getattr(options, "spawn_rate", None) or 10)
            self._ticker = Ticker(profile, users, duration, spawn_rate,
                                  hold=bool(getattr(options, "hold", False)))
        return self._ticker.tick(self.get_run_time())
