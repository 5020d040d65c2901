"""The stack manager: start, check and stop every process of the topology on loopback.

PostgreSQL, Redis, Toxiproxy, payments, inventory and the shop each run as a process
the stack started, recorded in a state file in the run folder. `down` stops those and
only those (it checks each pid's start time, so a reused pid is never killed). Each
dependency is reached by the shop only through its Toxiproxy proxy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from .appfaults import AppFaultClient
from .errors import StackError
from .faults import FaultInjector, ProxySpec
from .observe import render_config
from .waiting import poll

LOOPBACK = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROXIED = ("payments", "inventory", "postgres", "redis")
# Ports not bound by `up` itself: Prometheus comes with `observe`, the harness's endpoint
# with each run.
NOT_AT_UP = ("prometheus", "harness")

Progress = Callable[[str], None]


@dataclass(slots=True)
class Ports:
    """Every port the stack listens on; each can be set with CC_<NAME>_PORT."""

    shop: int = 8000
    payments: int = 8101
    inventory: int = 8102
    postgres: int = 15432
    redis: int = 16379
    toxiproxy: int = 8474
    proxy_payments: int = 18101
    proxy_inventory: int = 18102
    proxy_postgres: int = 25432
    proxy_redis: int = 26379
    prometheus: int = 9090  # only with `make observe`
    harness: int = 9108  # the harness's own metrics, while an experiment runs

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

    @classmethod
    def from_env(cls) -> StackConfig:
        """The configuration `make up` uses: CC_RUN_DIR, CC_*_PORT, CC_SHOP_WORKERS, ..."""
        run_dir = Path(os.environ.get("CC_RUN_DIR", PROJECT_ROOT / ".run")).resolve()
        return cls(
            run_dir=run_dir,
            ports=Ports.from_env(),
            shop_workers=int(os.environ.get("CC_SHOP_WORKERS", "3")),
            shop_threads=int(os.environ.get("CC_SHOP_THREADS", "8")),
            payments_processing_ms=float(os.environ.get("CC_PAYMENTS_PROCESSING_MS", "40")),
        )

    @property
    def shop_url(self) -> str:
        """The storefront's base URL."""
        return f"http://{LOOPBACK}:{self.ports.shop}"

    @property
    def toxiproxy_url(self) -> str:
        """Toxiproxy's API."""
        return f"http://{LOOPBACK}:{self.ports.toxiproxy}"

    @property
    def database_url(self) -> str:
        """The shop database, reached through the postgres proxy."""
        return f"postgresql://postgres@{LOOPBACK}:{self.ports.proxy_postgres}/shop"

    @property
    def direct_database_url(self) -> str:
        """The shop database without Toxiproxy (audits, tests)."""
        return f"postgresql://postgres@{LOOPBACK}:{self.ports.postgres}/shop"

    @property
    def prometheus_url(self) -> str:
        """Prometheus, when `make observe` started it."""
        return f"http://{LOOPBACK}:{self.ports.prometheus}"

    @property
    def payments_url(self) -> str:
        """payments without Toxiproxy (the ledger, for audits)."""
        return f"http://{LOOPBACK}:{self.ports.payments}"

    @property
    def inventory_url(self) -> str:
        """inventory without Toxiproxy (reservations, for audits)."""
        return f"http://{LOOPBACK}:{self.ports.inventory}"

    def proxy_specs(self) -> list[ProxySpec]:
        """The four proxies, named after the dependency they stand for."""
        p = self.ports
        pairs = {
            "payments": (p.proxy_payments, p.payments),
            "inventory": (p.proxy_inventory, p.inventory),
            "postgres": (p.proxy_postgres, p.postgres),
            "redis": (p.proxy_redis, p.redis),
        }
        return [
            ProxySpec(name, f"{LOOPBACK}:{listen}", f"{LOOPBACK}:{upstream}")
            for name, (listen, upstream) in pairs.items()
        ]


@dataclass(slots=True)
class Running:
    """A process the stack started, as recorded in the state file."""

    name: str
    pid: int
    port: int
    started_ticks: int
    log: str


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One line of `make status`."""

    name: str
    pid: int | None
    port: int
    running: bool
    healthy: bool
    detail: str


def find_binary(name: str, env_var: str, extra_dirs: tuple[Path, ...] = ()) -> str:
    """A binary from an env var, PATH, or a known folder; StackError says how to get it."""
    explicit = os.environ.get(env_var)
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise StackError(f"{env_var}={explicit} is not an executable file")
    found = shutil.which(name)
    if found:
        return found
    for folder in extra_dirs:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError(
        f"`{name}` was not found (looked at ${env_var}, PATH and "
        f"{', '.join(str(d) for d in extra_dirs) or 'nowhere else'}). Run `make setup`, "
        f"which installs it, or set {env_var} to its path."
    )


def postgres_bin(tool: str) -> str:
    """initdb/postgres from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return find_binary(tool, f"CC_{tool.upper()}", tuple(debian))


def port_in_use(port: int) -> bool:
    """True when something already listens on the loopback port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(proc: Running) -> bool:
    ticks = _start_ticks(proc.pid)
    if ticks != proc.started_ticks:
        return False
    state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


class Stack:
    """up / down / status of the whole topology for one run folder."""

    def __init__(self, config: StackConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self._progress = progress or (lambda msg: None)
        self._state_file = self.run_dir / "stack.json"
        self.faults = FaultInjector(LOOPBACK, config.ports.toxiproxy)
        self.app_faults = AppFaultClient({"payments": config.payments_url,
                                          "inventory": config.inventory_url})
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # started by this object

    # ---- state file -------------------------------------------------------------------
    def _load(self) -> list[Running]:
        try:
            raw = json.loads(self._state_file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise StackError(f"{self._state_file} is unreadable ({exc}); delete it") from exc
        return [Running(**item) for item in raw.get("processes", [])]

    def _save(self, procs: list[Running]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "processes": [asdict(p) for p in procs],
            "ports": asdict(self.config.ports),
            "pg_dir": str(self._pg_dir()),
        }, indent=2))
        tmp.replace(self._state_file)

    # ---- paths ------------------------------------------------------------------------
    def _pg_dir(self) -> Path:
        """PostgreSQL's data dir: the run folder, or /tmp when run as root (postgres must
        be able to reach it, and a root-owned home usually is closed to other users)."""
        if os.geteuid() != 0:
            return self.run_dir / "pg"
        digest = hashlib.sha1(str(self.run_dir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"checkout-chaos-pg-{digest}"

    # ---- up ---------------------------------------------------------------------------
    def up(self) -> None:
        """Start everything, wait for each to be ready, create the proxies."""
        existing = [p for p in self._load() if _alive(p)]
        if existing:
            if all(s.healthy for s in self.status()):
                self._progress("stack is already up")
                return
            raise StackError(
                "a previous stack is partly running (see `make status`); run `make down` first"
            )
        self._check_ports()
        toxiproxy_bin = find_binary(
            "toxiproxy-server", "CC_TOXIPROXY_SERVER", (PROJECT_ROOT / ".bin",)
        )
        redis_bin = find_binary("redis-server", "CC_REDIS_SERVER")
        initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        procs: list[Running] = []
        try:
            procs.append(self._start_postgres(initdb, postgres))
            self._save(procs)
            procs.append(self._start_redis(redis_bin))
            self._save(procs)
            procs.append(self._start_toxiproxy(toxiproxy_bin))
            self._save(procs)
            self._progress("creating proxies: " + ", ".join(PROXIED))
            self.faults.ensure_proxies(self.config.proxy_specs())
            self.faults.sweep()
            procs.append(self._start_service("payments"))
            self._save(procs)
            procs.append(self._start_service("inventory"))
            self._save(procs)
            procs.append(self._start_shop())
            self._save(procs)
        except BaseException:
            self._stop(procs)
            self._state_file.unlink(missing_ok=True)
            raise

    def _check_ports(self) -> None:
        busy = [
            f"{name} port {port}" for name, port in asdict(self.config.ports).items()
            if name not in NOT_AT_UP and port_in_use(port)
        ]
        if busy:
            raise StackError(
                "already in use: " + ", ".join(busy) + ". Stop what listens there, or pick "
                "other ports with CC_<NAME>_PORT (e.g. CC_SHOP_PORT=8080)."
            )

    def _spawn(
        self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None,
        user: str | None = None, cwd: Path | None = None,
    ) -> Running:
        log_path = self.run_dir / "logs" / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=full_env, cwd=cwd or self.run_dir, start_new_session=True,
                user=user, group=user, extra_groups=[] if user else None,
            )
        self._children[proc.pid] = proc
        ticks = _start_ticks(proc.pid) or 0
        running = Running(name, proc.pid, port, ticks, str(log_path))
        self._progress(f"started {name} (pid {proc.pid}, port {port})")
        return running

    def _wait(self, proc: Running, ready: Callable[[], bool], what: str) -> None:
        """Poll ready() until it is true, the process dies, or the deadline passes."""
        def up() -> bool:
            if not _alive(proc):
                raise StackError(f"{proc.name} exited while starting; {self._tail(proc)}")
            return ready()

        # OSError and HTTP errors: not yet listening.
        if poll(up, self.config.ready_timeout, ignore=(OSError, httpx.HTTPError)):
            self._progress(f"{proc.name} ready")
            return
        raise StackError(
            f"{proc.name} was not {what} within {self.config.ready_timeout:.0f}s; "
            f"{self._tail(proc)}"
        )

    @staticmethod
    def _tail(proc: Running, lines: int = 8) -> str:
        try:
            text = Path(proc.log).read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return f"no log at {proc.log}"
        return f"last lines of {proc.log}:\n  " + "\n  ".join(text)

    def _start_postgres(self, initdb: str, postgres: str) -> Running:
        pg_dir = self._pg_dir()
        user = "postgres" if os.geteuid() == 0 else None
        if user:
            try:
                account = pwd.getpwnam(user)
            except KeyError as exc:
                raise StackError(
                    "PostgreSQL will not run as root and there is no `postgres` user: "
                    "run `make setup` (the postgresql package creates it)"
                ) from exc
        if not (pg_dir / "PG_VERSION").exists():
            shutil.rmtree(pg_dir, ignore_errors=True)
            pg_dir.mkdir(parents=True, mode=0o700)
            if user:
                os.chown(pg_dir, account.pw_uid, account.pw_gid)
            self._progress("initialising PostgreSQL data dir")
            result = subprocess.run(
                [initdb, "-D", str(pg_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                 "--locale=C", "--no-sync"],
                capture_output=True, text=True, user=user, group=user,
                extra_groups=[] if user else None, cwd=pg_dir, timeout=120,
            )
            if result.returncode != 0:
                raise StackError(f"initdb failed: {result.stderr.strip()[-800:]}")
        port = self.config.ports.postgres
        proc = self._spawn(
            "postgres",
            [postgres, "-D", str(pg_dir), "-p", str(port), "-k", str(pg_dir),
             "-c", f"listen_addresses={LOOPBACK}", "-c", "max_connections=300",
             "-c", "shared_buffers=128MB", "-c", "synchronous_commit=off"],
            port, user=user, cwd=pg_dir,
        )
        import psycopg

        def ready() -> bool:
            try:
                with psycopg.connect(
                    f"postgresql://postgres@{LOOPBACK}:{port}/postgres", connect_timeout=2,
                    autocommit=True,
                ) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'shop'"
                                    ).fetchone() is None:
                        conn.execute("CREATE DATABASE shop")
                return True
            except psycopg.OperationalError:
                return False

        self._wait(proc, ready, "accepting connections")
        return proc

    def _start_redis(self, redis_bin: str) -> Running:
        port = self.config.ports.redis
        redis_dir = self.run_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn(
            "redis",
            [redis_bin, "--port", str(port), "--bind", LOOPBACK, "--dir", str(redis_dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"],
            port,
        )

        def ready() -> bool:
            with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")

        self._wait(proc, ready, "answering PING")
        return proc

    def _start_toxiproxy(self, binary: str) -> Running:
        port = self.config.ports.toxiproxy
        proc = self._spawn(
            "toxiproxy", [binary, "-host", LOOPBACK, "-port", str(port), "-proxy-metrics"], port
        )
        self._wait(proc, lambda: httpx.get(f"{self.config.toxiproxy_url}/version",
                                           timeout=1).is_success, "answering its API")
        return proc

    def _gunicorn(self) -> str:
        return str(Path(sys.executable).with_name("gunicorn"))

    def _start_service(self, name: str) -> Running:
        port = getattr(self.config.ports, name)
        env = {
            "PAYMENTS_DB": str(self.run_dir / "payments.sqlite3"),
            "INVENTORY_DB": str(self.run_dir / "inventory.sqlite3"),
            "PAYMENTS_PROCESSING_MS": str(self.config.payments_processing_ms),
            "PYTHONPATH": str(self.config.code_root),
            # The admin endpoint for application-level faults (loopback only); the
            # services leave it out unless told.
            "SERVICE_ADMIN": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        proc = self._spawn(
            name,
            [self._gunicorn(), "--bind", f"{LOOPBACK}:{port}", "--workers", "1",
             "--worker-class", "gthread", "--threads", "16", "--graceful-timeout", "3",
             "--keep-alive", "10",
             f"demo_shop.upstreams.{name}:create_app()"],
            port, env=env,
        )
        self._wait(proc, lambda: httpx.get(f"http://{LOOPBACK}:{port}/healthz",
                                           timeout=1).is_success, "answering /healthz")
        return proc

    def restart_shop(self, env: dict[str, str]) -> None:
        """Restart only the shop, with these SHOP_* settings added (an experiment's
        safeguards); the other processes keep running."""
        procs = self._load()
        self._stop([p for p in procs if p.name == "shop"])
        self.config.extra_shop_env = {**self.config.extra_shop_env, **env}
        started = self._start_shop()
        self._save([p for p in procs if p.name != "shop"] + [started])

    def shop_env(self) -> dict[str, str]:
        """The environment the shop runs with: every dependency through its proxy."""
        p = self.config.ports
        metrics_dir = self.run_dir / "shop-metrics"
        return {
            "SHOP_BIND": f"{LOOPBACK}:{p.shop}",
            "SHOP_WORKERS": str(self.config.shop_workers),
            "SHOP_THREADS": str(self.config.shop_threads),
            "SHOP_DATABASE_URL": self.config.database_url,
            "SHOP_REDIS_URL": f"redis://{LOOPBACK}:{p.proxy_redis}/0",
            "SHOP_PAYMENTS_URL": f"http://{LOOPBACK}:{p.proxy_payments}",
            "SHOP_INVENTORY_URL": f"http://{LOOPBACK}:{p.proxy_inventory}",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "SHOP_HEALTH_DIR": str(self.run_dir / "shop-health"),
            "PYTHONPATH": str(self.config.code_root),
            **self.config.extra_shop_env,
        }

    def _start_shop(self) -> Running:
        env = self.shop_env()
        for shared in (Path(env["PROMETHEUS_MULTIPROC_DIR"]), Path(env["SHOP_HEALTH_DIR"])):
            shutil.rmtree(shared, ignore_errors=True)  # nothing of an earlier shop's workers
            shared.mkdir(parents=True)
        proc = self._spawn(
            "shop", [self._gunicorn(), "-c", "python:demo_shop.gunicorn_conf"],
            self.config.ports.shop, env=env,
        )
        self._wait(proc, lambda: httpx.get(f"{self.config.shop_url}/readyz",
                                           timeout=2).is_success, "ready (/readyz)")
        return proc

    # ---- Prometheus -------------------------------------------------------------------
    def observe(self, scrape_interval: str = "2s") -> None:
        """Start Prometheus beside a running stack (own data dir, loopback), scraping the
        shop, payments, inventory, Toxiproxy and the harness; a no-op when it runs."""
        procs = self._load()
        if not procs:
            raise StackError("the stack is not up: run `make up` first (or `make observe`, "
                             "which brings it up)")
        if self.prometheus_url() is not None:
            self._progress(f"Prometheus is already running at {self.config.prometheus_url}")
            return
        port = self.config.ports.prometheus
        if port_in_use(port):
            raise StackError(f"Prometheus port {port} is already in use. Stop what listens "
                             "there, or pick another port with CC_PROMETHEUS_PORT.")
        binary = find_binary("prometheus", "CC_PROMETHEUS")
        folder = self.run_dir / "prometheus"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(render_config(self.config.ports, scrape_interval))
        proc = self._spawn(
            "prometheus",
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={LOOPBACK}:{port}", "--storage.tsdb.retention.time=7d",
             "--web.enable-lifecycle"],
            port, cwd=folder,
        )
        self._save([p for p in procs if p.name != "prometheus"] + [proc])
        self._wait(proc, lambda: httpx.get(f"{self.config.prometheus_url}/-/ready",
                                           timeout=1).is_success, "ready (/-/ready)")

    def stop_prometheus(self) -> None:
        """Stop only Prometheus (its data stays until `down`)."""
        procs = self._load()
        self._stop([p for p in procs if p.name == "prometheus"])
        self._save([p for p in procs if p.name != "prometheus"])

    def prometheus_url(self) -> str | None:
        """Prometheus's URL when this stack's Prometheus is running, else None."""
        running = any(p.name == "prometheus" and _alive(p) for p in self._load())
        return self.config.prometheus_url if running else None

    # ---- down -------------------------------------------------------------------------
    def down(self, keep_data: bool = False) -> list[str]:
        """Sweep harness toxics, stop every recorded process, remove throw-away data."""
        procs = self._load()
        stopped: list[str] = []
        if any(p.name == "toxiproxy" and _alive(p) for p in procs):
            try:
                for line in self.faults.sweep():
                    self._progress(line)
            except Exception as exc:
                self._progress(f"could not sweep toxics: {exc}")
        stopped = self._stop(procs)
        self._state_file.unlink(missing_ok=True)
        if not keep_data:
            pg_dir = self._pg_dir()
            shutil.rmtree(pg_dir, ignore_errors=True)
            for leftover in ("payments.sqlite3", "inventory.sqlite3"):
                for path in self.run_dir.glob(leftover + "*"):
                    path.unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "redis", ignore_errors=True)
            shutil.rmtree(self.run_dir / "shop-metrics", ignore_errors=True)
            shutil.rmtree(self.run_dir / "prometheus", ignore_errors=True)
        return stopped

    def _stop(self, procs: list[Running], grace: float = 10.0) -> list[str]:
        """SIGTERM each live process group (newest first), then SIGKILL what lingers."""
        live = [p for p in reversed(procs) if _alive(p)]
        for proc in live:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        poll(lambda: not any(_alive(p) for p in live), grace, every=0.05)
        for proc in live:
            if _alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in live:
            child = self._children.pop(proc.pid, None)
            if child is not None:
                child.wait(timeout=5)  # reap what this object started: no zombie is left
            self._progress(f"stopped {proc.name} (pid {proc.pid})")
        # A child of this object that another process stopped (a run restarting the shop
        # from its own process) is reaped here, so no zombie outlives the stack.
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]
        return [p.name for p in live]

    # ---- status -----------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        """Each recorded process: alive, its port, and a health check."""
        procs = {p.name: p for p in self._load()}
        checks: dict[str, Callable[[], tuple[bool, str]]] = {
            "postgres": lambda: self._tcp(self.config.ports.postgres),
            "redis": lambda: self._tcp(self.config.ports.redis),
            "toxiproxy": lambda: self._http(f"{self.config.toxiproxy_url}/version"),
            "payments": lambda: self._http(f"{self.config.payments_url}/healthz"),
            "inventory": lambda: self._http(f"{self.config.inventory_url}/healthz"),
            "shop": lambda: self._http(f"{self.config.shop_url}/readyz"),
        }
        if "prometheus" in procs:  # only when `observe` started it
            checks["prometheus"] = lambda: self._http(f"{self.config.prometheus_url}/-/ready")
        out = []
        for name, check in checks.items():
            proc = procs.get(name)
            running = proc is not None and _alive(proc)
            healthy, detail = check() if running else (False, "not running")
            port = proc.port if proc else getattr(self.config.ports, name)
            out.append(ComponentStatus(name, proc.pid if proc else None, port, running,
                                       healthy, detail))
        return out

    @staticmethod
    def _tcp(port: int) -> tuple[bool, str]:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return True, "accepting connections"
        except OSError as exc:
            return False, f"not accepting connections ({exc.strerror})"

    @staticmethod
    def _http(url: str) -> tuple[bool, str]:
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError as exc:
            return False, f"no answer ({type(exc).__name__})"
        return response.is_success, f"HTTP {response.status_code}"
