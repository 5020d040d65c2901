"""Target files: what is under test. YAML, validated into typed models before anything runs,
every problem said with its path and line (as experiment files are).

A target says where the shop is and how it is shaped (routes, how a cart is named, the
test cards, the page markers of its brand and banner), how to read its status page, which
Toxiproxy proxy stands for each dependency role, and where the audit reads the ledgers.
Strings may name `${VARIABLE}`s: for a target the harness runs on its own stack (`stack:`),
that stack's ports and secrets (STACK_VARIABLES), so one file serves `make up`, test stacks
and gate lanes alike; and from the environment, only the names the file declares under
`secrets:` (a staging password). A target file is untrusted input: it can name no other
environment variable, reach no address beyond loopback, and its ledger queries are single
SELECTs that the audit runs in read-only transactions (docs/targets.md#trust).

The reference shop is `targets/reference.yaml`, the default of every command.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from loadtests.shape import (
    REFERENCE,
    Api,
    Markers,
    Outcome,
    Pages,
    ShopShape,
    StatusFormat,
)

from .errors import HarnessError
from .experiment import Experiment
from .stack.config import PROJECT_ROOT, LaunchSpec, StackConfig
from .validation import Strict, line_of, one_of, problems_of
from .vocabulary import STATUS_NAME, TARGETS

TARGETS_DIR = PROJECT_ROOT / "targets"
DEFAULT_TARGET = TARGETS_DIR / "reference.yaml"
# The shops the harness can run on its own stack (StackConfig.shop_app); "command": the
# target's own shop, started as its `launch` says.
StackShop = Literal["reference", "basket", "command"]
STACK_SHOPS: tuple[str, ...] = get_args(StackShop)
_VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_LOOPBACK_URL = re.compile(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)")


class TargetError(HarnessError):
    """A target file that cannot be used, with every problem listed."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        super().__init__(f"{path} is not a valid target:\n  " + "\n  ".join(problems))
        self.problems = problems


def _loopback(value: str) -> str:
    if not _LOOPBACK_URL.match(value):
        raise ValueError(f"{value!r} must be a loopback http URL such as http://127.0.0.1:8000 "
                         "(the harness only reaches loopback)")
    return value.rstrip("/")


_LOOPBACK_HOSTS = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost|::1)$")


def _loopback_dsn(value: str) -> str:
    """A PostgreSQL DSN whose every host is a loopback address (no socket paths, no
    hostaddr beyond loopback, no service file that could name another)."""
    import psycopg.conninfo

    try:
        parts = psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"not a PostgreSQL DSN: {str(exc).strip()}") from None
    hosts = [h for key in ("host", "hostaddr") for h in str(parts.get(key) or "").split(",")
             if h]
    if not hosts or "service" in parts or any(not _LOOPBACK_HOSTS.match(h) for h in hosts):
        raise ValueError("the dsn must name a loopback host, such as postgresql://user:"
                         "password@127.0.0.1:5432/shop (the harness only reaches loopback)")
    return value


def _one_select(value: str) -> str:
    """A ledger query: one SELECT (a WITH ... SELECT is one), nothing else."""
    import sqlparse

    statements = [s for s in sqlparse.parse(value) if s.token_first(skip_cm=True) is not None]
    if len(statements) != 1 or statements[0].get_type() != "SELECT":
        kinds = ", ".join(s.get_type() for s in statements) or "nothing"
        raise ValueError(f"a ledger query must be one SELECT (this is {kinds}): the audit "
                         "only reads")
    return value


def _compiled(value: str) -> re.Pattern[str]:
    """A target's regular expression, or the error that says why it is none."""
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None


def _route(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be a path starting with /")
    return value


class Routes(Strict):
    """Where the JSON API lives; {sku} and {order_id} are filled in."""

    products: str = REFERENCE.products
    cart: str = REFERENCE.cart
    cart_items: str = REFERENCE.cart_items
    checkout: str = REFERENCE.checkout
    # null: an anonymous shopper may not read an order back (the ledger is the read-back)
    order: str | None = REFERENCE.order
    ready: str = REFERENCE.ready

    @field_validator("*")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _route(value)

    @model_validator(mode="after")
    def _order_has_id(self) -> Routes:
        if self.order is not None and "{order_id}" not in self.order:
            raise ValueError("routes.order must contain {order_id}")
        return self


class Cart(Strict):
    """How a cart is named: a header every cart call carries, its value made by the
    shopper (a fresh {id}, in `value`'s template: "SID:ANON:{host}:{id}") or by the shop
    (read from the first answer's header); or the shop's session cookie."""

    header: str = Field(default="X-Cart-Id", pattern=r"^[A-Za-z0-9-]+$")
    named_by: Literal["shopper", "shop", "cookie"] = "shopper"
    value: str = Field(default="{id}", pattern=r"\{id\}")


class ProductsAnswer(Strict):
    """Where the products answer keeps its list and, in each product, its id (which fills
    {sku} in the pages) and what fills {product} in the add-to-cart body."""

    at: str = ""
    id: str = "id"
    ref: str = "id"


class CartAnswer(Strict):
    """Where the cart answer keeps what fills {cart} in the checkout body, and its total."""

    ref: str = "id"
    total: str = "total"


class OutcomeRule(Strict):
    """A checkout answer with this status (and, where given, this value at a body field)
    means this outcome."""

    status: int = Field(ge=100, le=599)
    field: str = ""
    equals: str | None = None
    means: Literal["confirmed", "payment_pending", "declined"]  # loadtests.shape.MEANINGS

    @model_validator(mode="after")
    def _both(self) -> OutcomeRule:
        if bool(self.field) != (self.equals is not None):
            raise ValueError("give field and equals together (or neither)")
        return self


class CheckoutAnswer(Strict):
    """The checkout's request body (a template) and where its answer keeps the order's
    id, status and total; how the answer tells its outcome (first rule that matches)."""

    body: dict[str, Any]
    order_id: str
    status: str = "status"
    total: str
    outcomes: list[OutcomeRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _told(self) -> CheckoutAnswer:
        if not any(o.means == "confirmed" for o in self.outcomes):
            raise ValueError("outcomes must say which answer means confirmed")
        return self


class ApiSpec(Strict):
    """A shop's own JSON API, declared: answers read by dotted paths, bodies as templates
    with {product}, {qty}, {cart}, {card} ({card.number}, ...), {email} and {key}."""

    money: Literal["cents", "decimal"] = "cents"
    products: ProductsAnswer = Field(default_factory=ProductsAnswer)
    cart: CartAnswer = Field(default_factory=CartAnswer)
    add: dict[str, Any]
    checkout: CheckoutAnswer

    def shape(self) -> Api:
        """As the load reads it."""
        c = self.checkout
        return Api(products_at=self.products.at, product_id=self.products.id,
                   product_ref=self.products.ref, cart_ref=self.cart.ref,
                   cart_total=self.cart.total, money=self.money, add_body=self.add,
                   checkout_body=c.body, order_id=c.order_id, order_status=c.status,
                   order_total=c.total,
                   outcomes=tuple(Outcome(o.means, o.status, o.field, o.equals)
                                  for o in c.outcomes), declared=True)


class Card(Strict):
    """A test card as the checkout takes it."""

    number: str = Field(pattern=r"^\d{12,19}$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvc: str = Field(pattern=r"^\d{3,4}$")


class Cards(Strict):
    """One card the processor takes and one it declines."""

    good: Card = Card(number="4242424242424242", exp_month=12, exp_year=2030, cvc="123")
    declined: Card = Card(number="4000000000000002", exp_month=12, exp_year=2030, cvc="123")


class Brand(Strict):
    """The element that makes a page the shop's own, and the text it holds."""

    selector: str = Field(min_length=1)
    text: str = Field(min_length=1)


class PagesSpec(Strict):
    """The storefront pages shoppers browse and their markers; checkout_forms: the shop
    has the reference storefront's cart and checkout forms."""

    home: str = "/"
    product: str = "/products/{sku}"
    status: str | None = "/status"  # null: the shop has no status page for shoppers
    checkout_forms: bool = False
    brand: Brand
    banner: str | None = Field(default=None, min_length=1)  # null: no status banner

    @field_validator("home", "product", "status")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _route(value)


class Shop(Strict):
    """The shop under test."""

    base_url: str
    routes: Routes = Field(default_factory=Routes)
    cart: Cart = Field(default_factory=Cart)
    cards: Cards = Field(default_factory=Cards)
    metrics: str | None = None  # a Prometheus text route: the metrics agreement check
    pages: PagesSpec | None = None
    api: ApiSpec | None = None  # the shop's own API (None: the reference shop's contract)

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _loopback(value)


class _StateLines(Strict):
    """A status surface read line by line: `line` with the named groups name and state,
    and which of the shop's state words mean operational, degraded and down."""

    line: str = r"^\s*(?P<name>[\w .-]+?)\s*[:=]\s*(?P<state>\w+)\s*$"
    states: dict[Literal["operational", "degraded", "down"], list[str]]

    @field_validator("line")
    @classmethod
    def _regex(cls, value: str) -> str:
        if not {"name", "state"} <= set(_compiled(value).groupindex):
            raise ValueError("needs the named groups (?P<name>...) and (?P<state>...)")
        return value

    @field_validator("states")
    @classmethod
    def _all_three(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        missing = [s for s in ("operational", "down") if not value.get(s)]
        if missing:
            raise ValueError(f"say which words mean {' and '.join(missing)}")
        return value


class StatusSpec(_StateLines):
    """How to read the status page: JSON (`at` a dotted path to a mapping or a list) or
    lines of text (`line`, with named groups name and state), and which of the shop's
    state words mean operational, degraded and down."""

    route: str = "/api/status"
    format: Literal["json", "lines"] = "json"
    at: str = "dependencies"
    name_key: str = "name"
    state_key: str = "state"


class StatusPageSpec(_StateLines):
    """The HTML status page a shopper opens to learn what is going on: each element the
    CSS selector `rows` matches is one dependency, its text (spaces collapsed) matched by
    `line` (named groups name and state); `names` maps the page's names to the roles."""

    route: str
    rows: str = Field(min_length=1)
    line: str
    names: dict[str, Annotated[str, AfterValidator(one_of(TARGETS))]] = Field(min_length=1)

    _route = field_validator("route")(lambda cls, v: _route(v))


class BannerSpec(Strict):
    """The status banner (shop.pages.banner), read by the harness on the page at `route`:
    it names a dependency while its text matches the role's pattern in `says` (any case)."""

    route: str = "/"
    says: dict[Annotated[str, AfterValidator(one_of(TARGETS))], str] = Field(min_length=1)

    _route = field_validator("route")(lambda cls, v: _route(v))

    @field_validator("says")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            _compiled(pattern)
        return value


class Surfaces(Strict):
    """Where the shop tells shoppers about its state besides `status:` (its JSON status):
    each is held to the same time to communicate and time to clear; one not given is
    "not judged"."""

    status_page: StatusPageSpec | None = None
    banner: BannerSpec | None = None


# What the reports call each surface, in the order they are judged.
SURFACES = {"status": "status API", "status_page": "HTML status page", "banner": "banner"}


class Toxiproxy(Strict):
    """The Toxiproxy the shop's dependencies are reached through."""

    api: str

    @field_validator("api")
    @classmethod
    def _api(cls, value: str) -> str:
        return _loopback(value)


class Dependency(Strict):
    """One dependency role: its proxy's name (free), what the status page calls it, and
    where its service takes application faults (the reference simulators' admin)."""

    proxy: str = Field(min_length=1)
    status_name: str | None = None
    fault_admin: str | None = None
    # What the fault admin wants as `Authorization: Bearer ...` (the install's token).
    fault_admin_token: str | None = None

    @field_validator("fault_admin")
    @classmethod
    def _admin(cls, value: str | None) -> str | None:
        return None if value is None else _loopback(value)


class Source(Strict):
    """A ledger: an HTTP GET answering JSON (the list under `key`), or a SQL query."""

    http: str | None = None
    key: str | None = None
    dsn: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.http is None) == (self.dsn is None):
            raise ValueError("give either http (with key) or dsn (with query)")
        if self.http is not None:
            _loopback(self.http)
            if not self.key:
                raise ValueError("an http source needs key: the JSON list to read")
        elif not self.query:
            raise ValueError("a dsn source needs query")
        else:
            problems = []
            for check, value in ((_loopback_dsn, self.dsn), (_one_select, self.query)):
                try:
                    check(str(value))
                except ValueError as exc:
                    problems.append(str(exc))
            if problems:
                raise ValueError("; and ".join(problems))
        return self


class MailSource(Source):
    """The mail ledger: the messages the shop sent (subject, body, received_at), and how a
    message names its order: `order`, a regular expression whose first group (or group
    `order_id`) is the order's id, searched in the subject, then the body."""

    order: str = Field(min_length=1)

    @field_validator("order")
    @classmethod
    def _pattern(cls, value: str) -> str:
        if _compiled(value).groups < 1:
            raise ValueError("give the order id a group, e.g. 'order (\\S+)'")
        return value


class Ledgers(Strict):
    """Where the audit reads what happened. Each is optional: a check whose ledger is not
    given is reported as not judged. orders: a PostgreSQL query taking %(since)s (epoch
    seconds) and %(order_ids)s, answering the columns of chaos.audit.ORDER_COLUMNS.
    charges: charge_id, order_id, status, amount_cents, created_at. reservations:
    reservation_id, state, items, created_at. stock: sku, available, reserved. mail:
    subject, body, received_at, with the pattern that finds the order in a message."""

    orders: Source | None = None
    charges: Source | None = None
    reservations: Source | None = None
    stock: Source | None = None
    mail: MailSource | None = None
    initial_stock: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _orders_sql(self) -> Ledgers:
        if self.orders is not None and self.orders.dsn is None:
            raise ValueError("orders must be a dsn with a query")
        return self


class ShopDatabase(Strict):
    """A database and a user of the shop's own on the stack's PostgreSQL (its password is
    ${SHOP_DB_PASSWORD})."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    user: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")


class Launch(Strict):
    """How the harness runs the target's own shop on its stack (`stack: command`): its
    database, the commands run once on a new database (migrations, fixtures), then the
    server, each with `env` added, in `cwd`, its output in the stack's logs. `warm`: paths
    requested once each, one at a time, once the server answers ready and before any
    shopper, as a deployment warms a new instance before it takes traffic; each must answer
    below 500 (redirects followed)."""

    command: list[str] = Field(min_length=1)
    prepare: list[list[str]] = Field(default_factory=list)
    warm: list[Annotated[str, Field(pattern=r"^/")]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = "${PROJECT_ROOT}"
    database: ShopDatabase | None = None
    ready_timeout: float = Field(default=120.0, gt=0, le=900)

    def spec(self) -> LaunchSpec:
        """As the stack runs it."""
        db = self.database
        return LaunchSpec(command=list(self.command), prepare=[list(p) for p in self.prepare],
                          warm=list(self.warm),
                          env=dict(self.env), cwd=self.cwd,
                          database=None if db is None else db.name,
                          database_user=None if db is None else db.user,
                          ready_timeout=self.ready_timeout)


class Target(Strict):
    """A whole target file."""

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    stack: StackShop | None = None
    launch: Launch | None = None
    shop: Shop
    status: StatusSpec | None = None  # None: the shop has no status page to read
    surfaces: Surfaces = Field(default_factory=Surfaces)
    toxiproxy: Toxiproxy
    dependencies: dict[Annotated[str, AfterValidator(one_of(TARGETS))], Dependency] = \
        Field(min_length=1)
    ledgers: Ledgers = Field(default_factory=Ledgers)
    # The shop can be restarted with safeguards off (the reference shop on its own stack).
    safeguards: bool = False
    # The environment variables its ${...} may name (nothing else of the environment is
    # read): a staging password, say. Stack variables need no declaring.
    secrets: list[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]] = \
        Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        proxies = [d.proxy for d in self.dependencies.values()]
        if len(set(proxies)) != len(proxies):
            raise ValueError("two dependencies name the same proxy")
        if self.safeguards and self.stack != "reference":
            raise ValueError("safeguards can only be switched on the reference shop's own "
                             "stack (stack: reference)")
        if (self.stack == "command") != (self.launch is not None):
            raise ValueError("stack: command and launch go together (launch says how the "
                             "harness starts the shop)")
        if self.surfaces.banner is not None and (self.shop.pages is None
                                                 or self.shop.pages.banner is None):
            raise ValueError("surfaces.banner reads the banner: give its selector as "
                             "shop.pages.banner")
        named = set(self.surfaces.banner.says) if self.surfaces.banner else set()
        if self.surfaces.status_page is not None:
            named |= set(self.surfaces.status_page.names.values())
        if named - set(self.dependencies):
            raise ValueError(f"surfaces name {', '.join(sorted(named - set(self.dependencies)))}"
                             ", which dependencies: does not map")
        return self

    def surface_formats(self) -> tuple[dict[str, StatusFormat], dict[str, str]]:
        """Each surface the shop has, as the harness reads it (by its label in SURFACES),
        and why each other one is not judged."""
        formats: dict[str, StatusFormat] = {}
        missing: dict[str, str] = {}
        shape = self.shape().status
        if shape.route:
            formats[SURFACES["status"]] = shape
        else:
            missing[SURFACES["status"]] = f"target {self.name} has no status API (status:)"
        page = self.surfaces.status_page
        if page is not None:
            formats[SURFACES["status_page"]] = StatusFormat(
                route=page.route, format="html", rows=page.rows, line=page.line,
                names={shown: STATUS_NAME[role] for shown, role in page.names.items()},
                states={word: state for state, words in page.states.items()
                        for word in words})
        else:
            missing[SURFACES["status_page"]] = (f"target {self.name} gives no "
                                                "surfaces.status_page")
        banner = self.surfaces.banner
        if banner is not None and self.shop.pages is not None and self.shop.pages.banner:
            formats[SURFACES["banner"]] = StatusFormat(
                route=banner.route, format="banner", rows=self.shop.pages.banner,
                says={STATUS_NAME[role]: pattern for role, pattern in banner.says.items()})
        else:
            missing[SURFACES["banner"]] = f"target {self.name} gives no surfaces.banner"
        return formats, missing

    def unjudgeable(self, probe: str) -> str | None:
        """Why this target cannot show what a probe measures (None: it can)."""
        if probe in ("time_to_communicate", "time_to_clear") and self.status is None:
            return f"target {self.name} has no status page (status: is not given)"
        if probe in ("time_to_page", "time_to_resolve", "unrelated_pages") \
                and self.shop.metrics is None:
            return (f"target {self.name} has no metrics route (shop.metrics is not given), so "
                    "no alert rule can see its dependencies")
        if probe == "shop_metric_rate" and self.shop.metrics is None:
            return f"target {self.name} has no metrics route (shop.metrics is not given)"
        return None

    @property
    def roles(self) -> list[str]:
        """The dependency roles this target maps, in the vocabulary's order."""
        return [r for r in TARGETS if r in self.dependencies]

    def proxy(self, role: str) -> str:
        """The Toxiproxy proxy for a role."""
        return self.dependencies[role].proxy

    def skip_reason(self, experiment: Experiment) -> str | None:
        """Why this target cannot take the experiment (None: it can)."""
        missing = sorted({t for f in experiment.faults for t in f.target} - set(self.roles))
        if missing:
            return (f"target {self.name} has no {' or '.join(missing)} dependency "
                    f"(it maps {', '.join(self.roles)})")
        no_admin = sorted({t for f in experiment.faults if f.is_app for t in f.target
                           if self.dependencies[t].fault_admin is None})
        if no_admin:
            return (f"target {self.name} gives no fault_admin for {', '.join(no_admin)}, so "
                    "application faults cannot be set there")
        if experiment.shop.off and not self.safeguards:
            return (f"the experiment turns safeguards off, which only the reference shop "
                    f"on its own stack can do (target {self.name})")
        return None

    def shape(self) -> ShopShape:
        """The shop's shape for the load and the pollers."""
        r, shop = self.shop.routes, self.shop
        names = {(d.status_name or STATUS_NAME[role]): STATUS_NAME[role]
                 for role, d in self.dependencies.items()}
        status = StatusFormat(route="")  # no status page: nothing polls or judges it
        if self.status is not None:
            status = StatusFormat(
                route=self.status.route, format=self.status.format, at=self.status.at,
                name_key=self.status.name_key, state_key=self.status.state_key,
                line=self.status.line, names=names,
                states={word: state for state, words in self.status.states.items()
                        for word in words})
        pages = None
        if shop.pages is not None:
            p = shop.pages
            pages = Pages(home=p.home, product=p.product, status=p.status or "",
                          checkout=p.checkout_forms,
                          markers=Markers(p.brand.selector, p.brand.text, p.banner or "",
                                          says={STATUS_NAME[role]: pattern for role, pattern
                                                in (self.surfaces.banner.says.items()
                                                    if self.surfaces.banner else ())}))
        return ShopShape(products=r.products, cart=r.cart, cart_items=r.cart_items,
                         checkout=r.checkout, order=r.order or "", ready=r.ready,
                         cart_header=shop.cart.header, cart_named_by=shop.cart.named_by,
                         cart_value=shop.cart.value,
                         good_card=shop.cards.good.model_dump(),
                         declined_card=shop.cards.declined.model_dump(),
                         status=status, pages=pages,
                         api=Api() if shop.api is None else shop.api.shape(),
                         order_readable=r.order is not None)


# What a `stack:` target's ${...} may name: the stack's ports, folders and secrets.
_STACK_VALUES: dict[str, Callable[[StackConfig], object]] = {
    "SHOP_PORT": lambda c: c.ports.shop, "TOXIPROXY_PORT": lambda c: c.ports.toxiproxy,
    "PAYMENTS_PORT": lambda c: c.ports.payments,
    "INVENTORY_PORT": lambda c: c.ports.inventory,
    "POSTGRES_PORT": lambda c: c.ports.postgres, "REDIS_PORT": lambda c: c.ports.redis,
    "PROXY_PAYMENTS_PORT": lambda c: c.ports.proxy_payments,
    "PROXY_INVENTORY_PORT": lambda c: c.ports.proxy_inventory,
    "PROXY_POSTGRES_PORT": lambda c: c.ports.proxy_postgres,
    "PROXY_REDIS_PORT": lambda c: c.ports.proxy_redis,
    "MAIL_PORT": lambda c: c.ports.mail, "SMTP_PORT": lambda c: c.ports.smtp,
    "PROXY_MAIL_PORT": lambda c: c.ports.proxy_mail,
    "POSTGRES_PASSWORD": lambda c: c.secrets.postgres_password,
    "REDIS_PASSWORD": lambda c: c.secrets.redis_password,
    "SHOP_SECRET_KEY": lambda c: c.secrets.shop_secret_key,
    "SHOP_DB_PASSWORD": lambda c: c.shop_database_password,
    # The services' token for state-changing calls and their fault admin.
    "SERVICE_TOKEN": lambda c: c.secrets.admin_token,
    # The audit's read-only PostgreSQL role (cc_auditor) on this stack.
    "AUDIT_DB_PASSWORD": lambda c: c.audit_database_password,
    "PROJECT_ROOT": lambda c: PROJECT_ROOT, "RUN_DIR": lambda c: c.run_dir,
    # Where the shop's code is taken from: the repository, or a mutant's throw-away copy.
    "CODE_ROOT": lambda c: c.code_root,
}
STACK_VARIABLES = tuple(_STACK_VALUES)


def stack_variables(config: StackConfig) -> dict[str, str]:
    """The values of STACK_VARIABLES on this stack."""
    return {name: str(value(config)) for name, value in _STACK_VALUES.items()}


def _substitute(data: Any, variables: Mapping[str, str], path: tuple[Any, ...],
                missing: list[tuple[tuple[Any, ...], str]]) -> Any:
    if isinstance(data, dict):
        return {k: _substitute(v, variables, (*path, k), missing) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, variables, (*path, i), missing) for i, v in enumerate(data)]
    if isinstance(data, str):
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                missing.append((path, name))
                return match.group(0)
            return variables[name]
        return _VARIABLE.sub(one, data)
    return data


def parse_target(text: str, source: str = "<target>",
                 variables: Mapping[str, str] | None = None,
                 stack: Mapping[str, str] | None = None) -> Target:
    """Validate YAML text into a Target, ${...} filled from the names it declares under
    `secrets:`, taken from `variables` (the environment by default), and for a target with
    `stack:`, from the stack's (`stack_variables`); TargetError lists every problem with
    its line. No other variable is read: a shared target file cannot send the
    environment anywhere."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise TargetError(source, [f"not valid YAML: {getattr(exc, 'problem', exc)}{where}"]
                          ) from None
    if not isinstance(data, dict):
        raise TargetError(source, ["the file must be a mapping of keys (name, shop, ...)"])
    environment = os.environ if variables is None else variables
    listed = data.get("secrets")
    declared = [name for name in (listed if isinstance(listed, list) else [])
                if isinstance(name, str)]
    known = {name: environment[name] for name in declared if name in environment}
    if data.get("stack") and stack is not None:
        known.update(stack)
    missing: list[tuple[tuple[Any, ...], str]] = []
    data = _substitute(data, known, (), missing)
    if missing:
        raise TargetError(source, [
            f"{'.'.join(map(str, path))}: ${{{name}}} "
            + _why_unset(name, declared, bool(data.get("stack")))
            + (f" (line {line_of(text, path)})" if line_of(text, path) else "")
            for path, name in missing])
    try:
        return Target.model_validate(data)
    except ValidationError as exc:
        raise TargetError(source, problems_of(exc, text)) from None


def _why_unset(name: str, declared: list[str], on_stack: bool) -> str:
    if name in declared:
        return "is not set: export it"
    if name in STACK_VARIABLES and not on_stack:
        return (f"is a stack variable ({', '.join(STACK_VARIABLES)} are given only to a "
                "target with stack:)")
    return (f"is not declared: list {name} under secrets: to take it from the environment "
            "(a target file reads no other variable)")


def stack_config(path: Path | str | None) -> StackConfig:
    """The harness's own stack for a target file: the shop it names under `stack:` (the
    reference shop when none) and its proxies' names. Read before the stack exists (its
    ports fill the file's ${...}); load_target then validates the whole file."""
    try:
        data = yaml.safe_load(Path(path or DEFAULT_TARGET).read_text())
    except (OSError, yaml.YAMLError):
        data = None  # load_target says what is wrong with it
    data = data if isinstance(data, dict) else {}
    shop = str(data["stack"]) if data.get("stack") in STACK_SHOPS else "reference"
    deps = data.get("dependencies")
    names = {role: d["proxy"] for role, d in (deps if isinstance(deps, dict) else {}).items()
             if role in TARGETS and isinstance(d, dict) and isinstance(d.get("proxy"), str)}
    config = StackConfig.from_env(shop, names)
    shop_data = data.get("shop")
    routes = shop_data.get("routes") if isinstance(shop_data, dict) else None
    if isinstance(routes, dict) and isinstance(routes.get("ready"), str):
        config.ready_route = routes["ready"]
    if shop == "command":  # its launch is filled with this stack's ports and folders
        launch = load_target(path, config).launch
        config.launch = None if launch is None else launch.spec()
    return config


def load_target(path: Path | str | None, config: StackConfig | None = None) -> Target:
    """Read and validate a target file (the reference shop's when none is named), its
    stack variables taken from `config` when it runs on the harness's own stack."""
    file = Path(path) if path else DEFAULT_TARGET
    if not file.is_file():
        known = ", ".join(sorted(str(p.relative_to(PROJECT_ROOT)) for p in
                                 TARGETS_DIR.glob("*.yaml")))
        raise HarnessError(f"no target file {file} (the repository has: {known})")
    try:
        text = file.read_text()
    except OSError as exc:
        raise HarnessError(f"cannot read {file}: {exc.strerror}") from exc
    return parse_target(text, str(file),
                        stack=None if config is None else stack_variables(config))


def reference_target(config: StackConfig) -> Target:
    """The reference shop on a stack of the harness's (targets/reference.yaml)."""
    return load_target(None, config)
