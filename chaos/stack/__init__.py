"""The stack manager: start, check and stop every process of the topology on loopback.

PostgreSQL, Redis, Toxiproxy, payments, inventory, the mail sink (for a target with the
mail role) and the shop each run as a process
the stack started, recorded in a state file in the run folder (processes.py). `down` stops
those and only those. Each dependency is reached by the shop only through its Toxiproxy
proxy. Ports and URLs: config.py.
"""

from __future__ import annotations

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psutil

from ..appfaults import AppFaultClient
from ..errors import StackError
from ..faults import FaultInjector
from ..observe import render_config
from ..paging import render_alertmanager
from .config import (
    AUDIT_ROLE,
    COMPONENTS,
    LOOPBACK,
    MAILED,
    NOT_AT_UP,
    PROJECT_ROOT,
    PROXIED,
    LaunchSpec,
    Ports,
    Progress,
    StackConfig,
)
from .processes import (
    ComponentStatus,
    ProcessTable,
    Running,
    alive,
    find_binary,
    port_in_use,
    postgres_bin,
)


class Stack:
    """up / down / status of the whole topology for one run folder."""

    def __init__(self, config: StackConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self._progress = progress or (lambda msg: None)
        self._procs = ProcessTable(self.run_dir / "stack.json", self.run_dir / "logs",
                                   config.ready_timeout, self._progress)
        self.faults = FaultInjector(LOOPBACK, config.ports.toxiproxy)
        self.app_faults = AppFaultClient({"payments": config.payments_url,
                                          "inventory": config.inventory_url},
                                         dict.fromkeys(("payments", "inventory"),
                                                       config.secrets.admin_token))

    def _save(self, procs: list[Running]) -> None:
        self._procs.save(procs, {"ports": asdict(self.config.ports),
                                 "pg_dir": str(self._pg_dir()),
                                 "shop_app": self.config.shop_app})

    def refuse_other_shop(self) -> None:
        """StackError when the recorded stack runs another shop than this config's."""
        running = self.running_shop()
        if running is not None and running != self.config.shop_app:
            raise StackError(f"the stack runs the {running} shop, and the target needs the "
                             f"{self.config.shop_app} shop: `make down`, then `make up "
                             "TARGET=<the target file>`")

    def running_shop(self) -> str | None:
        """Which shop the recorded stack runs (None: no stack recorded)."""
        try:
            raw = json.loads(self._procs.state_file.read_text())
        except (OSError, ValueError):
            return None
        return str(raw.get("shop_app", "reference")) if isinstance(raw, dict) else None

    # ---- paths ------------------------------------------------------------------------
    def _pg_dir(self) -> Path:
        """PostgreSQL's data dir: the run folder, or /tmp when run as root (postgres must
        be able to reach it, and a root-owned home usually is closed to other users)."""
        if os.geteuid() != 0:
            return self.run_dir / "pg"
        digest = hashlib.sha1(str(self.run_dir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"checkout-chaos-pg-{digest}"

    # ---- up ---------------------------------------------------------------------------
    def up(self, only: tuple[str, ...] | None = None) -> None:
        """Start everything (or `only` these components, in the topology's order: an
        adapter's integration test needs one real server, not six), wait for each to be
        ready, create the proxies."""
        wanted = tuple(c for c in COMPONENTS if (only is None or c in only)
                       and (c != MAILED or self.config.mailed))
        unknown = sorted(set(only or ()) - set(COMPONENTS))
        if unknown:
            raise StackError(f"no component {', '.join(unknown)} "
                             f"(known: {', '.join(COMPONENTS)})")
        existing = [p for p in self._procs.load() if alive(p)]
        if existing:
            if all(s.healthy for s in self.status() if s.name in wanted):
                self._progress("stack is already up")
                return
            raise StackError(
                "a previous stack is partly running (see `make status`); run `make down` first"
            )
        self._check_ports(wanted)
        # Every binary found before anything starts: a missing one is an error that starts
        # nothing.
        binaries = {
            "postgres": lambda: (postgres_bin("initdb"), postgres_bin("postgres")),
            "redis": lambda: (find_binary("redis-server", "CC_REDIS_SERVER"),),
            "toxiproxy": lambda: (find_binary("toxiproxy-server", "CC_TOXIPROXY_SERVER",
                                              (PROJECT_ROOT / ".bin",)),),
        }
        found = {c: binaries[c]() for c in wanted if c in binaries}
        starters: dict[str, Callable[[], Running]] = {
            "postgres": lambda: self._start_postgres(*found["postgres"]),
            "redis": lambda: self._start_redis(*found["redis"]),
            "toxiproxy": lambda: self._start_proxies(*found["toxiproxy"]),
            "payments": lambda: self._start_service("payments"),
            "inventory": lambda: self._start_service("inventory"),
            MAILED: self._start_mail,
            "shop": self._start_shop,
        }
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        procs: list[Running] = []
        try:
            for component in wanted:
                procs.append(starters[component]())
                self._save(procs)
        except BaseException:
            # Every process spawned is recorded at once, the one whose wait failed too.
            self._procs.stop(self._procs.load())
            self._procs.state_file.unlink(missing_ok=True)
            raise

    def _start_proxies(self, binary: str) -> Running:
        """Toxiproxy with a proxy per dependency, none with a toxic."""
        running = self._start_toxiproxy(binary)
        self._progress("creating proxies: " + ", ".join(
            s.name for s in self.config.proxy_specs()))
        self.faults.ensure_proxies(self.config.proxy_specs())
        self.faults.sweep()
        for line in self.faults.close_exposed():
            self._progress(line)
        return running

    def _check_ports(self, wanted: tuple[str, ...]) -> None:
        def needed(name: str) -> bool:  # a proxy's port is Toxiproxy's to bind
            if name in ("smtp", "proxy_mail") and MAILED not in wanted:
                return False
            return (name in wanted or (name == "smtp" and MAILED in wanted)
                    or (name.startswith("proxy_") and "toxiproxy" in wanted))

        busy = [
            f"{name} port {port}" for name, port in asdict(self.config.ports).items()
            if name not in NOT_AT_UP and needed(name) and port_in_use(port)
        ]
        if busy:
            raise StackError(
                "already in use: " + ", ".join(busy) + ". Stop what listens there, or pick "
                "other ports with CC_<NAME>_PORT (e.g. CC_SHOP_PORT=8080)."
            )

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
            # Every connection, socket or TCP, proves the generated password (scram-sha-256):
            # a port reachable through a proxy is no open door.
            pwfile = pg_dir.with_name(pg_dir.name + ".pwfile")  # initdb wants pg_dir empty
            pwfile.unlink(missing_ok=True)
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(self.config.secrets.postgres_password + "\n")
            if user:
                os.chown(pwfile, account.pw_uid, account.pw_gid)
            try:
                result = subprocess.run(
                    [initdb, "-D", str(pg_dir), "-A", "scram-sha-256", f"--pwfile={pwfile}",
                     "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"],
                    capture_output=True, text=True, user=user, group=user,
                    extra_groups=[] if user else None, cwd=pg_dir, timeout=120,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise StackError(f"initdb failed: {result.stderr.strip()[-800:]}")
        port = self.config.ports.postgres
        proc = self._procs.spawn(
            "postgres",
            [postgres, "-D", str(pg_dir), "-p", str(port), "-k", str(pg_dir),
             "-c", f"listen_addresses={LOOPBACK}", "-c", "max_connections=300",
             "-c", "shared_buffers=128MB", "-c", "synchronous_commit=off"],
            port, user=user, cwd=pg_dir,
        )
        import psycopg

        def ready() -> bool:
            try:
                with psycopg.connect(self.config.postgres_url(port, "postgres"),
                                     connect_timeout=2, autocommit=True) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'shop'"
                                    ).fetchone() is None:
                        conn.execute("CREATE DATABASE shop")
                    self._audit_role(conn)
                return True
            except psycopg.OperationalError:
                return False

        self._procs.wait(proc, ready, "accepting connections")
        return proc

    def _audit_role(self, conn: Any) -> None:
        """The role the ledger audit reads through: it can read every shop's tables
        (pg_read_all_data) and write nothing; its sessions are read-only with a statement
        timeout, whatever a target file's query asks. Made or brought up to date at every
        start (a cluster from before it existed gets it too)."""
        from psycopg import sql

        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (AUDIT_ROLE,)
                        ).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(AUDIT_ROLE)))
        role = sql.Identifier(AUDIT_ROLE)
        conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                             ).format(role, sql.Literal(self.config.audit_database_password)))
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(role))
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on"
                             ).format(role))
        conn.execute(sql.SQL("ALTER ROLE {} SET statement_timeout = '30s'").format(role))

    def _start_redis(self, redis_bin: str) -> Running:
        port = self.config.ports.redis
        redis_dir = self.run_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        # The password goes in a file only we can read, not on the command line (ps).
        conf = redis_dir / "redis.conf"
        conf.unlink(missing_ok=True)
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.config.secrets.redis_password}\n")
        proc = self._procs.spawn(
            "redis",
            [redis_bin, str(conf), "--port", str(port), "--bind", LOOPBACK,
             "--dir", str(redis_dir), "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--protected-mode", "yes"],
            port,
        )
        auth = f"AUTH {self.config.secrets.redis_password}\r\nPING\r\n".encode()

        def ready() -> bool:
            with socket.create_connection((LOOPBACK, port), timeout=1) as s:
                s.sendall(auth)
                answer = b""
                while answer.count(b"\r\n") < 2:
                    chunk = s.recv(64)
                    if not chunk:
                        return False
                    answer += chunk
                return answer == b"+OK\r\n+PONG\r\n"

        self._procs.wait(proc, ready, "answering PING")
        return proc

    def _start_toxiproxy(self, binary: str) -> Running:
        port = self.config.ports.toxiproxy
        proc = self._procs.spawn(
            "toxiproxy", [binary, "-host", LOOPBACK, "-port", str(port), "-proxy-metrics"], port
        )
        self._procs.wait(proc, lambda: httpx.get(f"{self.config.toxiproxy_url}/version",
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
            "PAYMENTS_FINGERPRINT_KEY": self.config.secrets.payments_fingerprint_key,
            "PYTHONPATH": str(self.config.code_root),
            # The admin endpoint for application-level faults (loopback only); the
            # services leave it out unless told.
            "SERVICE_ADMIN": "1",
            "SERVICE_TOKEN": self.config.secrets.admin_token,
            # Its proxy's port is a Host it answers too (Toxiproxy forwards bytes as sent).
            "LISTEN_ALSO_PORTS": str(getattr(self.config.ports, f"proxy_{name}")),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        proc = self._procs.spawn(
            name,
            [self._gunicorn(), "--bind", f"{LOOPBACK}:{port}", "--workers", "1",
             "--worker-class", "gthread", "--threads", "16", "--graceful-timeout", "3",
             "--keep-alive", "10",
             f"demo_shop.upstreams.{name}:create_app()"],
            port, env=env,
        )
        self._procs.wait(proc, lambda: httpx.get(f"http://{LOOPBACK}:{port}/healthz",
                                           timeout=1).is_success, "answering /healthz")
        return proc

    def _start_mail(self) -> Running:
        """The mail sink: SMTP on its own port (reached through the mail proxy), the
        messages it kept on its ledger's port."""
        p = self.config.ports
        env = {"MAIL_DB": str(self.run_dir / "mail.sqlite3"),
               "MAIL_SMTP_HOST": LOOPBACK, "MAIL_SMTP_PORT": str(p.smtp),
               "PYTHONPATH": str(self.config.code_root)}
        proc = self._procs.spawn(
            MAILED,
            [self._gunicorn(), "--bind", f"{LOOPBACK}:{p.mail}", "--workers", "1",
             "--worker-class", "gthread", "--threads", "4", "--graceful-timeout", "3",
             "demo_shop.upstreams.mail:create_app()"],
            p.mail, env=env,
        )
        self._procs.wait(proc, lambda: httpx.get(f"{self.config.mail_url}/healthz",
                                           timeout=1).is_success
                         and port_in_use(p.smtp), "answering /healthz and SMTP")
        return proc

    def restart_shop(self, env: dict[str, str]) -> None:
        """Restart only the shop, with these SHOP_* settings added (an experiment's
        safeguards); the other processes keep running."""
        procs = self._procs.load()
        self._procs.stop([p for p in procs if p.name == "shop"])
        self.config.extra_shop_env = {**self.config.extra_shop_env, **env}
        started = self._start_shop()
        self._save([p for p in procs if p.name != "shop"] + [started])

    def restart_postgres(self) -> None:
        """Stop PostgreSQL (fast shutdown: open transactions are cut, as in a failover or a
        crash-restart) and start it again on the same data and port; the others keep
        running. A fault of the harness's own making, under load."""
        procs = self._procs.load()
        self._procs.stop([p for p in procs if p.name == "postgres"], how=signal.SIGINT)
        started = self._start_postgres(postgres_bin("initdb"), postgres_bin("postgres"))
        self._save([p for p in procs if p.name != "postgres"] + [started])

    def processes(self) -> list[Running]:
        """Every process the stack started that still runs (name and pid), for the
        benchmarks' CPU accounting and profiler."""
        return [p for p in self._procs.load() if alive(p)]

    def workers(self, name: str) -> list[int]:
        """The worker pids of a gunicorn the stack started (shop, payments, inventory)."""
        proc = next((p for p in self._procs.load() if p.name == name and alive(p)), None)
        if proc is None:
            raise StackError(f"{name} is not running")
        return [child.pid for child in psutil.Process(proc.pid).children()]

    def shop_env(self) -> dict[str, str]:
        """The environment the shop runs with: every dependency through its proxy."""
        p = self.config.ports
        metrics_dir = self.run_dir / "shop-metrics"
        return {
            "SHOP_BIND": f"{LOOPBACK}:{p.shop}",
            "SHOP_WORKERS": str(self.config.shop_workers),
            "SHOP_THREADS": str(self.config.shop_threads),
            "SHOP_DATABASE_URL": self.config.database_url,
            "SHOP_REDIS_URL": self.config.redis_url(p.proxy_redis),
            "SHOP_SECRET_KEY": self.config.secrets.shop_secret_key,
            "SHOP_VAULT_KEY": self.config.secrets.shop_vault_key,
            "SHOP_PAYMENTS_URL": f"http://{LOOPBACK}:{p.proxy_payments}",
            "SHOP_INVENTORY_URL": f"http://{LOOPBACK}:{p.proxy_inventory}",
            "SHOP_SERVICE_TOKEN": self.config.secrets.admin_token,
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "SHOP_HEALTH_DIR": str(self.run_dir / "shop-health"),
            "PYTHONPATH": str(self.config.code_root),
            **self.config.extra_shop_env,
        }

    def _shop_ready(self) -> bool:
        return httpx.get(f"{self.config.shop_url}{self.config.shop_ready_path}",
                         timeout=2).is_success

    def _start_basket(self) -> Running:
        """Basket & Co (basket_shop), the second target's shop: no cache."""
        p = self.config.ports
        env = {"BASKET_BIND": f"{LOOPBACK}:{p.shop}",
               "BASKET_WORKERS": str(self.config.shop_workers),
               "BASKET_THREADS": str(self.config.shop_threads),
               "BASKET_DATABASE_URL": self.config.database_url,
               "BASKET_PAYMENTS_URL": f"http://{LOOPBACK}:{p.proxy_payments}",
               "BASKET_INVENTORY_URL": f"http://{LOOPBACK}:{p.proxy_inventory}",
               "BASKET_SERVICE_TOKEN": self.config.secrets.admin_token,
               "BASKET_STATUS_FILE": str(self.run_dir / "basket-status.json"),
               "PYTHONPATH": str(self.config.code_root)}
        proc = self._procs.spawn("shop", [self._gunicorn(), "-c",
                                          "python:basket_shop.gunicorn_conf"],
                                 p.shop, env=env)
        self._procs.wait(proc, self._shop_ready, f"ready ({self.config.shop_ready_path})")
        return proc

    def _shop_database(self) -> bool:
        """The command shop's own database and user, made when missing (directly, not
        through the proxy); True when its prepare steps are due: the database is new, or
        they never all succeeded (a failed migration is run again at the next start)."""
        launch = self.config.launch
        unprepared = not (self.run_dir / "shop-prepared").exists()
        if launch is None or launch.database is None:
            return unprepared
        import psycopg
        from psycopg import sql

        user, name = launch.database_user or launch.database, launch.database
        with psycopg.connect(self.config.postgres_url(self.config.ports.postgres, "postgres"),
                             connect_timeout=5, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)
                            ).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(self.config.shop_database_password)))
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                            ).fetchone() is not None:
                return unprepared
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(user)))
        (self.run_dir / "shop-prepared").unlink(missing_ok=True)
        return True

    def _start_command(self) -> Running:
        """The target's own shop (stack: command): its database, its prepare commands on a
        new one (each must exit 0 within its ready timeout), then its server."""
        launch = self.config.launch
        if launch is None:
            raise StackError("the target runs its own shop (stack: command) but gives no "
                             "launch: say how to start it in the target file")
        cwd = Path(launch.cwd)
        log = self.run_dir / "logs" / "shop-prepare.log"
        if self._shop_database():
            for step in launch.prepare:
                self._progress(f"preparing the shop: {' '.join(step[-3:])}")
                with log.open("ab") as out:
                    try:
                        done = subprocess.run(step, cwd=cwd, env={**os.environ, **launch.env},
                                              stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL,
                                              timeout=launch.ready_timeout)
                    except (OSError, subprocess.TimeoutExpired) as exc:
                        raise StackError(f"the shop's prepare step {step[0]} could not run: "
                                         f"{exc} (see {log})") from exc
                if done.returncode != 0:
                    raise StackError(f"the shop's prepare step {' '.join(step)} exited "
                                     f"{done.returncode}; see {log}")
            (self.run_dir / "shop-prepared").touch()
        proc = self._procs.spawn("shop", launch.command, self.config.ports.shop,
                                 env=launch.env, cwd=cwd)
        try:
            self._procs.wait(proc, self._shop_ready,
                             f"ready ({self.config.shop_ready_path})",
                             timeout=launch.ready_timeout)
            self._warm(launch)
        except BaseException:
            self._procs.stop([proc])  # a shop that never got ready is not left running
            raise
        return proc

    def _warm(self, launch: LaunchSpec) -> None:
        """The launch's warm-up pages, one at a time: a new instance's first views (caches,
        per-row records made on a first view) are not left to the first concurrent shoppers."""
        if launch.warm:
            self._progress(f"warming the shop: {len(launch.warm)} pages")
        with httpx.Client(base_url=self.config.shop_url, follow_redirects=True,
                          timeout=launch.ready_timeout) as client:
            for path in launch.warm:
                try:
                    status = client.get(path).status_code
                except httpx.HTTPError as exc:
                    raise StackError(f"the shop's warm-up page {path} did not answer: {exc} "
                                     f"(see {self.run_dir / 'logs' / 'shop.log'})") from exc
                if status >= 500:
                    raise StackError(f"the shop's warm-up page {path} answered {status}; "
                                     f"see {self.run_dir / 'logs' / 'shop.log'}")

    def _start_shop(self) -> Running:
        if self.config.shop_app == "basket":
            return self._start_basket()
        if self.config.shop_app == "command":
            return self._start_command()
        env = self.shop_env()
        for shared in (Path(env["PROMETHEUS_MULTIPROC_DIR"]), Path(env["SHOP_HEALTH_DIR"])):
            shutil.rmtree(shared, ignore_errors=True)  # nothing of an earlier shop's workers
            shared.mkdir(parents=True)
        proc = self._procs.spawn(
            "shop", [self._gunicorn(), "-c", "python:demo_shop.gunicorn_conf"],
            self.config.ports.shop, env=env,
        )
        self._procs.wait(proc, self._shop_ready, f"ready ({self.config.shop_ready_path})")
        return proc

    # ---- Prometheus -------------------------------------------------------------------
    def observe(self, scrape_interval: str = "2s", rules_dir: Path | None = None) -> None:
        """Start Prometheus beside a running stack (own data dir, loopback), scraping the
        shop, payments, inventory, Toxiproxy and the harness, with Alertmanager beside it
        (its notifications go to the harness's receiver); a no-op when they run.
        `rules_dir`: the alert and recording rules to load instead of the project's."""
        procs = self._procs.load()
        if not procs:
            raise StackError("the stack is not up: run `make up` first (or `make observe`, "
                             "which brings it up)")
        if self.prometheus_url() is not None:
            self._progress(f"Prometheus is already running at {self.config.prometheus_url}")
            return
        for name in ("prometheus", "alertmanager"):
            port = getattr(self.config.ports, name)
            if port_in_use(port):
                raise StackError(f"{name.capitalize()} port {port} is already in use. Stop "
                                 f"what listens there, or pick another port with "
                                 f"CC_{name.upper()}_PORT.")
        binaries = {"prometheus": find_binary("prometheus", "CC_PROMETHEUS"),
                    "alertmanager": find_binary("alertmanager", "CC_ALERTMANAGER",
                                                (PROJECT_ROOT / ".bin",))}
        alertmanager = self._start_alertmanager(binaries["alertmanager"])
        self._save([p for p in procs if p.name not in ("prometheus", "alertmanager")]
                   + [alertmanager])
        port = self.config.ports.prometheus
        folder = self.run_dir / "prometheus"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(render_config(self.config.ports, scrape_interval, rules_dir,
                                        alertmanager=True))
        proc = self._procs.spawn(
            "prometheus",
            [binaries["prometheus"], f"--config.file={config}",
             f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={LOOPBACK}:{port}", "--storage.tsdb.retention.time=7d"],
            port, cwd=folder,
        )
        self._save([*self._procs.load(), proc])
        self._procs.wait(proc, lambda: httpx.get(f"{self.config.prometheus_url}/-/ready",
                                           timeout=1).is_success, "ready (/-/ready)")

    def _start_alertmanager(self, binary: str) -> Running:
        """Alertmanager on loopback, clustering off (it would listen on every address),
        every alert to the harness's receiver."""
        folder = self.run_dir / "alertmanager"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        config = folder / "alertmanager.yml"
        config.write_text(render_alertmanager(self.config.ports.pager))
        port = self.config.ports.alertmanager
        proc = self._procs.spawn(
            "alertmanager",
            [binary, f"--config.file={config}", f"--storage.path={folder / 'data'}",
             f"--web.listen-address={LOOPBACK}:{port}", "--cluster.listen-address=",
             "--log.level=warn"],
            port, cwd=folder,
        )
        self._procs.wait(proc, lambda: httpx.get(f"{self.config.alertmanager_url}/-/ready",
                                           timeout=1).is_success, "ready (/-/ready)")
        return proc

    def stop_prometheus(self) -> None:
        """Stop only Prometheus and Alertmanager (their data stays until `down`)."""
        procs = self._procs.load()
        watching = ("prometheus", "alertmanager")
        self._procs.stop([p for p in procs if p.name in watching])
        self._save([p for p in procs if p.name not in watching])

    def prometheus_url(self) -> str | None:
        """Prometheus's URL when this stack's Prometheus is running, else None."""
        running = any(p.name == "prometheus" and alive(p) for p in self._procs.load())
        return self.config.prometheus_url if running else None

    def alertmanager_url(self) -> str | None:
        """Alertmanager's URL when this stack's Alertmanager is running, else None."""
        running = any(p.name == "alertmanager" and alive(p) for p in self._procs.load())
        return self.config.alertmanager_url if running else None

    # ---- down -------------------------------------------------------------------------
    def down(self, keep_data: bool = False) -> list[str]:
        """Sweep harness toxics, stop every recorded process, remove throw-away data."""
        procs = self._procs.load()
        stopped: list[str] = []
        if any(p.name == "toxiproxy" and alive(p) for p in procs):
            try:
                for line in self.faults.sweep():
                    self._progress(line)
            except Exception as exc:
                self._progress(f"could not sweep toxics: {exc}")
        stopped = self._procs.stop(procs)
        self._procs.state_file.unlink(missing_ok=True)
        if not keep_data:
            pg_dir = self._pg_dir()
            shutil.rmtree(pg_dir, ignore_errors=True)
            for leftover in ("payments.sqlite3", "inventory.sqlite3", "mail.sqlite3"):
                for path in self.run_dir.glob(leftover + "*"):
                    path.unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "redis", ignore_errors=True)
            shutil.rmtree(self.run_dir / "shop-metrics", ignore_errors=True)
            shutil.rmtree(self.run_dir / "prometheus", ignore_errors=True)
            shutil.rmtree(self.run_dir / "alertmanager", ignore_errors=True)
            (self.run_dir / "shop-prepared").unlink(missing_ok=True)
        return stopped

    # ---- status -----------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        """Each recorded process: alive, its port, and a health check."""
        procs = {p.name: p for p in self._procs.load()}
        checks: dict[str, Callable[[], tuple[bool, str]]] = {
            "postgres": lambda: self._tcp(self.config.ports.postgres),
            "redis": lambda: self._tcp(self.config.ports.redis),
            "toxiproxy": lambda: self._http(f"{self.config.toxiproxy_url}/version"),
            "payments": lambda: self._http(f"{self.config.payments_url}/healthz"),
            "inventory": lambda: self._http(f"{self.config.inventory_url}/healthz"),
            "shop": lambda: self._http(f"{self.config.shop_url}"
                                       f"{self.config.shop_ready_path}"),
        }
        if MAILED in procs or self.config.mailed:  # only for a target with the mail role
            checks[MAILED] = lambda: self._http(f"{self.config.mail_url}/healthz")
        if "prometheus" in procs:  # only when `observe` started it
            checks["prometheus"] = lambda: self._http(f"{self.config.prometheus_url}/-/ready")
        if "alertmanager" in procs:
            checks["alertmanager"] = lambda: self._http(
                f"{self.config.alertmanager_url}/-/ready")
        out = []
        for name, check in checks.items():
            proc = procs.get(name)
            running = proc is not None and alive(proc)
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


__all__ = ["LOOPBACK", "PROJECT_ROOT", "PROXIED", "ComponentStatus", "Ports", "Running",
           "Stack", "StackConfig", "find_binary", "port_in_use"]
