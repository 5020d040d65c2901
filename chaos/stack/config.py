"""Where the stack lives: loopback ports (from the environment, or free ones) and the
folders and URLs derived from them."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import StackError
from ..faults import ProxySpec
from ..vocabulary import REFERENCE_TARGETS
from .secrets import Secrets

LOOPBACK = "127.0.0.1"
# The PostgreSQL role the ledger audit connects as: reads every table, writes nothing.
AUDIT_ROLE = "cc_auditor"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# The reference shop's dependencies (each reached through its proxy); a target may add the
# mail role (MAILED: the stack's SMTP sink), whose proxy and sink exist only when it does.
PROXIED = REFERENCE_TARGETS
MAILED = "mail"
# Ports not bound by `up` itself: Prometheus and Alertmanager come with `observe`, the
# harness's endpoint and its alert receiver with each run.
NOT_AT_UP = ("prometheus", "alertmanager", "harness", "pager")
# What `up` starts, in order (each needs those before it).
COMPONENTS = ("postgres", "redis", "toxiproxy", "payments", "inventory", "mail", "shop")

Progress = Callable[[str], None]


@dataclass(slots=True)
class Ports:
    """Every port the stack listens on; each can be set with CC_<NAME>_PORT."""

    shop: int = 8000
    payments: int = 8101
    inventory: int = 8102
    mail: int = 8103  # the mail sink's ledger (HTTP)
    smtp: int = 8125  # the mail sink's SMTP server
    postgres: int = 15432
    redis: int = 16379
    toxiproxy: int = 8474
    proxy_payments: int = 18101
    proxy_inventory: int = 18102
    proxy_postgres: int = 25432
    proxy_redis: int = 26379
    proxy_mail: int = 18125
    prometheus: int = 9090  # only with `make observe`
    harness: int = 9108  # the harness's own metrics, while an experiment runs
    alertmanager: int = 9093  # only with `make observe`
    pager: int = 9109  # the harness's webhook receiver for Alertmanager, while a run runs

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ports:
        """Defaults, overridden by CC_SHOP_PORT, CC_PROXY_REDIS_PORT, ..."""
        env = dict(os.environ if env is None else env)
        ports = cls()
        for name in asdict(ports):
            raw = env.get(f"CC_{name.upper()}_PORT")
            if raw:
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise StackError(f"CC_{name.upper()}_PORT must be a port number, got {raw!r}")
                setattr(ports, name, int(raw))
        return ports

    @classmethod
    def free(cls) -> Ports:
        """Ports the OS says are free right now (for tests that run their own stack)."""
        names = list(asdict(cls()))
        socks = []
        try:
            for _ in names:
                s = socket.socket()
                s.bind((LOOPBACK, 0))
                socks.append(s)
            return cls(**{n: s.getsockname()[1] for n, s in zip(names, socks, strict=True)})
        finally:
            for s in socks:
                s.close()


@dataclass(slots=True)
class LaunchSpec:
    """A target's own shop as the stack runs it (chaos.target.Launch, its ${...} filled):
    a database and user of its own, commands run once on a new database, the server, and
    the pages it is warmed with once it answers ready."""

    command: list[str]
    prepare: list[list[str]] = field(default_factory=list)
    warm: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."
    database: str | None = None
    database_user: str | None = None
    ready_timeout: float = 120.0


@dataclass(slots=True)
class StackConfig:
    """Where the stack keeps its files, its ports, and knobs for the services."""

    run_dir: Path
    ports: Ports
    shop_workers: int = 3
    shop_threads: int = 8
    payments_processing_ms: float = 40.0
    extra_shop_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    # Where the shop's code is imported from (a mutant's throw-away copy for `mutants`).
    code_root: Path = PROJECT_ROOT
    # Which shop runs ("reference" or "basket"), and each dependency role's proxy name
    # (a target's dependencies.<role>.proxy; empty: the four reference proxies).
    shop_app: str = "reference"
    proxy_names: dict[str, str] = field(default_factory=dict)
    # The shop's ready route (the target's routes.ready; empty: the shop's default) and,
    # for shop_app "command", how the target's own shop is started.
    ready_route: str = ""
    launch: LaunchSpec | None = None
    _secrets: Secrets | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, shop_app: str = "reference",
                 proxy_names: dict[str, str] | None = None) -> StackConfig:
        """The configuration `make up` uses: CC_RUN_DIR, CC_*_PORT, CC_SHOP_WORKERS, ...,
        and the shop a target file names (chaos.target.stack_config)."""
        run_dir = Path(os.environ.get("CC_RUN_DIR", PROJECT_ROOT / ".run")).resolve()
        return cls(
            run_dir=run_dir,
            ports=Ports.from_env(),
            shop_workers=int(os.environ.get("CC_SHOP_WORKERS", "3")),
            shop_threads=int(os.environ.get("CC_SHOP_THREADS", "8")),
            payments_processing_ms=float(os.environ.get("CC_PAYMENTS_PROCESSING_MS", "40")),
            shop_app=shop_app, proxy_names=dict(proxy_names or {}),
        )

    @property
    def shop_ready_path(self) -> str:
        """Where the running shop says it is ready."""
        if self.ready_route:
            return self.ready_route
        return "/ready" if self.shop_app == "basket" else "/readyz"

    @property
    def shop_database_password(self) -> str:
        """The password of a target shop's own database user (derived from this install's
        PostgreSQL password, so it is per install and needs no file of its own)."""
        return hashlib.sha256(f"shop-db:{self.secrets.postgres_password}".encode()
                              ).hexdigest()[:32]

    @property
    def audit_database_password(self) -> str:
        """The password of the audit's read-only role (AUDIT_ROLE), derived as the shop
        database's is."""
        return hashlib.sha256(f"audit-db:{self.secrets.postgres_password}".encode()
                              ).hexdigest()[:32]

    @property
    def shop_url(self) -> str:
        """The storefront's base URL."""
        return f"http://{LOOPBACK}:{self.ports.shop}"

    @property
    def toxiproxy_url(self) -> str:
        """Toxiproxy's API."""
        return f"http://{LOOPBACK}:{self.ports.toxiproxy}"

    @property
    def secrets(self) -> Secrets:
        """This install's secrets (made on first use, kept in the run folder)."""
        if self._secrets is None:
            self._secrets = Secrets.load_or_create(self.run_dir)
        return self._secrets

    def postgres_url(self, port: int, database: str = "shop") -> str:
        """A DSN for the stack's PostgreSQL on this port, with its generated password."""
        return (f"postgresql://postgres:{self.secrets.postgres_password}@{LOOPBACK}:{port}"
                f"/{database}")

    @property
    def database_url(self) -> str:
        """The shop database, reached through the postgres proxy."""
        return self.postgres_url(self.ports.proxy_postgres)

    @property
    def direct_database_url(self) -> str:
        """The shop database without Toxiproxy (audits, tests)."""
        return self.postgres_url(self.ports.postgres)

    def redis_url(self, port: int) -> str:
        """A URL for the stack's Redis on this port, with its generated password."""
        return f"redis://:{self.secrets.redis_password}@{LOOPBACK}:{port}/0"

    @property
    def prometheus_url(self) -> str:
        """Prometheus, when `make observe` started it."""
        return f"http://{LOOPBACK}:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        """Alertmanager, when `make observe` started it."""
        return f"http://{LOOPBACK}:{self.ports.alertmanager}"

    @property
    def payments_url(self) -> str:
        """payments without Toxiproxy (the ledger, for audits)."""
        return f"http://{LOOPBACK}:{self.ports.payments}"

    @property
    def mail_url(self) -> str:
        """The mail sink's ledger (the messages it received), for audits."""
        return f"http://{LOOPBACK}:{self.ports.mail}"

    @property
    def mailed(self) -> bool:
        """The target has the mail role: the stack runs the SMTP sink and its proxy."""
        return MAILED in self.proxy_names

    @property
    def inventory_url(self) -> str:
        """inventory without Toxiproxy (reservations, for audits)."""
        return f"http://{LOOPBACK}:{self.ports.inventory}"

    def proxy(self, role: str) -> str:
        """The proxy's name for a dependency role."""
        return self.proxy_names.get(role, role)

    def proxy_specs(self) -> list[ProxySpec]:
        """A proxy per dependency role the shop uses (the reference shop's four by default),
        named as the target names it."""
        p = self.ports
        pairs = {
            "payments": (p.proxy_payments, p.payments),
            "inventory": (p.proxy_inventory, p.inventory),
            "postgres": (p.proxy_postgres, p.postgres),
            "redis": (p.proxy_redis, p.redis),
            MAILED: (p.proxy_mail, p.smtp),
        }
        roles = self.proxy_names or PROXIED
        return [
            ProxySpec(self.proxy(role), f"{LOOPBACK}:{listen}", f"{LOOPBACK}:{upstream}")
            for role, (listen, upstream) in pairs.items() if role in roles
        ]
