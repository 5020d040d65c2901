"""`make bench`: how fast, how precise, how close to the machine's limit.

Starts its own stack on free loopback ports, measures each figure with the variants side by
side (alternating, in this one run), writes reports/bench/bench.json and bench.md, and
stops everything it started, also on Ctrl-C. QUICK=1 runs fewer samples and shorter steps.
Nothing here asserts a time: benchmarks measure, tests test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from capacity import TICKS, tree_ticks, whole_run_p95  # benchmarks/ is this script's folder
from html_parsers import read_page_lxml, read_page_stdlib

from chaos.faults import HARNESS_PREFIX, ProxySpec
from chaos.shop import ShopClient
from chaos.shopper import Answer, ScriptedShopper
from chaos.stack import LOOPBACK, PROJECT_ROOT, Ports, Stack, StackConfig
from chaos.vocabulary import DEPENDENCIES
from chaos.waiting import poll
from loadtests.pages import read_page

QUICK = os.environ.get("QUICK") == "1"
REPEAT = 2 if QUICK else 10
HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("BENCH_OUT", PROJECT_ROOT / "reports" / "bench"))
SKUS = ["LAMP-001", "TOWL-001", "BOTL-001", "CHAIR-001", "SUNS-001"]


# ---- figures ---------------------------------------------------------------------------------
@dataclass
class Report:
    """Every figure, by section, for the JSON file and the Markdown table."""

    rows: list[dict[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, figure: str, value: str, how: str = "") -> None:
        self.rows.append({"section": section, "figure": figure, "value": value, "how": how})
        print(f"  {section} · {figure}: {value}", flush=True)

    def markdown(self, meta: dict[str, Any]) -> str:
        lines = [f"`make bench` on {meta['date']}, {meta['machine']}"
                 f"{' (QUICK=1)' if meta['quick'] else ''}, {meta['seconds']:.0f} s in all.", "",
                 "| section | figure | value | how |", "|---|---|---|---|"]
        lines += [f"| {r['section']} | {r['figure']} | {r['value']} | {r['how']} |"
                  for r in self.rows]
        return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def median_p99(samples: list[float]) -> str:
    return f"p50 {ms(statistics.median(samples))}, p99 {ms(pct(samples, 0.99))} (n={len(samples)})"


# ---- /proc -----------------------------------------------------------------------------------
def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants."""
    seen: dict[int, int] = {}
    tree_ticks(root, seen)
    return sum(seen.values()) / TICKS


def run_counted(cmd: list[str], timeout: float, **kwargs: Any) -> tuple[str, float, float]:
    """Run a command to its end: its stdout, wall seconds, and the CPU seconds of it and of
    every descendant it waited for (from wait4's rusage)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
    finally:
        timer.cancel()
    return out, time.monotonic() - started, usage.ru_utime + usage.ru_stime


# ---- HTTP helpers ----------------------------------------------------------------------------
def timed_gets(port: int, path: str, count: int, keep_alive: bool) -> list[float]:
    """Latency of count GETs on loopback; one connection for all, or a new one each."""
    samples = []
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    for _ in range(count):
        if not keep_alive:
            conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        started = time.perf_counter()
        conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
        conn.getresponse().read()
        samples.append(time.perf_counter() - started)
        if not keep_alive:
            conn.close()
    conn.close()
    return samples


def wrk(url: str, seconds: float, connections: int, close: bool = False
        ) -> dict[str, float]:
    """wrk's requests/s and latency percentiles (ms), and its CPU seconds."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out, _, cpu = run_counted(cmd, seconds + 30)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]

    def lat(label: str) -> float:
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": rate, "p50_ms": lat("50%"), "p99_ms": lat("99%"), "cpu": cpu,
            "requests": total}


class Shopper(ScriptedShopper):
    """The scripted shopper, its checkout timed alone (the cart is filled untimed)."""

    def __init__(self, base: str) -> None:
        super().__init__(base, deadline=10.0, sku=SKUS[0])

    def timed_checkout(self) -> Answer:
        """A fresh cart filled, then the checkout alone timed."""
        self.new_cart()
        self.add()
        return self.pay()


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.02) -> float | None:
    """Seconds until check() held, or None at the timeout."""
    started = time.monotonic()
    if poll(check, timeout, every, ignore=(httpx.HTTPError, OSError)) is None:
        return None
    return time.monotonic() - started


def status_of(stack: Stack, dependency: str) -> str:
    return ShopClient(stack.config.shop_url).state(dependency)


def wait_operational(stack: Stack, timeout: float = 60) -> None:
    if wait_until(lambda: all(status_of(stack, n) == "operational" for n in DEPENDENCIES),
                  timeout, 0.2) is None:
        raise RuntimeError("the shop did not report every dependency operational")


# ---- sections --------------------------------------------------------------------------------
def toxiproxy_cost(stack: Stack, report: Report) -> None:
    """1. payments directly vs through its proxy (no toxic), keep-alive and not."""
    p = stack.config.ports
    n = 100 if QUICK else 600
    for keep_alive in (True, False):
        direct: list[float] = []
        proxied: list[float] = []
        for _ in range(4):  # alternate in blocks, so drift hits both alike
            direct += timed_gets(p.payments, "/healthz", n // 4, keep_alive)
            proxied += timed_gets(p.proxy_payments, "/healthz", n // 4, keep_alive)
        mode = "keep-alive" if keep_alive else "new connection per request"
        added = statistics.median(proxied) - statistics.median(direct)
        report.add("1 Toxiproxy cost", f"GET payments /healthz, {mode}: direct",
                   median_p99(direct), "Python http.client, sequential, alternating blocks")
        report.add("1 Toxiproxy cost", f"GET payments /healthz, {mode}: through the proxy",
                   median_p99(proxied) + f"; added p50 {added * 1e6:.0f} µs "
                   "(published anchor: < 100 µs per hop)", "same run")
        report.data.setdefault("toxiproxy_cost", {})[mode] = {
            "direct": direct, "proxied": proxied}
    seconds = 1 if QUICK else 4
    for close in (False, True):
        runs: dict[str, list[dict[str, float]]] = {"direct": [], "proxied": []}
        for _ in range(2):
            runs["direct"].append(wrk(f"http://{LOOPBACK}:{p.payments}/healthz", seconds, 8,
                                      close))
            runs["proxied"].append(wrk(f"http://{LOOPBACK}:{p.proxy_payments}/healthz",
                                       seconds, 8, close))
        mode = "new connection per request" if close else "keep-alive"
        rate = {k: statistics.mean(r["rps"] for r in v) for k, v in runs.items()}
        report.add("1 Toxiproxy cost", f"requests/s to payments, {mode} (wrk, 8 connections)",
                   f"direct {rate['direct']:.0f}, proxied {rate['proxied']:.0f} "
                   f"(ratio {rate['proxied'] / rate['direct']:.2f}); proxied p99 "
                   f"{runs['proxied'][-1]['p99_ms']:.2f} ms vs {runs['direct'][-1]['p99_ms']:.2f}",
                   f"wrk -t1 -c8 -d{seconds}s, A/B/A/B")


ECHO_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
while True:  # one connection at a time: the bench's blocks are sequential
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
"""


def round_trips(port: int, count: int, size: int = 64) -> list[float]:
    """Seconds per send-and-echo of `size` bytes on one kept connection."""
    payload = b"x" * size
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < size:
                got += len(sock.recv(size - got))
            times.append(time.perf_counter() - started)
    return times


def hop_cost(stack: Stack, report: Report) -> None:
    """1. What one proxy hop costs on this box, on the cheapest upstream: a TCP echo
    directly, through Toxiproxy, and through socat (a C forwarder: one more loopback hop
    and nothing else), alternating blocks."""
    # In a process of its own: an echo thread in this process would share the GIL with the
    # client and measure Python's thread switching instead.
    echo_proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE,
                                 text=True)
    assert echo_proc.stdout is not None
    echo_port = int(echo_proc.stdout.readline())
    free = Ports.free()
    spec = ProxySpec(f"{HARNESS_PREFIX}bench-echo", f"{LOOPBACK}:{free.shop}",
                     f"{LOOPBACK}:{echo_port}")
    stack.faults.ensure_proxies([spec])
    socat = shutil.which("socat")
    forwarder = subprocess.Popen(
        [socat, f"TCP-LISTEN:{free.payments},bind={LOOPBACK},fork,reuseaddr,nodelay",
         f"TCP:{LOOPBACK}:{echo_port},nodelay"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) if socat else None
    paths = {"direct": echo_port, "Toxiproxy": free.shop}
    if forwarder is not None:
        paths["socat"] = free.payments
        wait_until(lambda: not port_free(free.payments), 10)
    n = 400 if QUICK else 3000
    try:
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(4):
            for name, port in paths.items():
                times[name] += round_trips(port, n // 4)
    finally:
        httpx.delete(f"{stack.config.toxiproxy_url}/proxies/{spec.name}", timeout=5)
        if forwarder is not None:
            forwarder.terminate()
            forwarder.wait(10)
        echo_proc.kill()
        echo_proc.wait(10)
    base = statistics.median(times["direct"])
    added = {k: statistics.median(v) - base for k, v in times.items() if k != "direct"}
    report.add("1 Toxiproxy cost", "64-byte TCP echo, kept connection: added p50 per hop",
               ", ".join(f"{k} {v * 1e6:.0f} µs" for k, v in added.items()) +
               f" (direct p50 {base * 1e6:.0f} µs)" +
               ("" if "socat" in added else "; socat not installed (make setup)"),
               f"{n} round trips per path, alternating blocks; socat: a C forwarder, the "
               "cost of one more loopback hop on this box")
    report.data["hop_cost_us"] = {k: [t * 1e6 for t in v] for k, v in times.items()}


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((LOOPBACK, port)) != 0


def fault_precision(stack: Stack, report: Report) -> None:
    """2. configured latency vs added latency (payments call, whole checkout); bandwidth."""
    port = stack.config.ports.proxy_payments
    shopper = Shopper(stack.config.shop_url)
    base_call = timed_gets(port, "/healthz", 40, True)
    base_checkout = [shopper.timed_checkout().elapsed for _ in range(6 if QUICK else 12)]
    plan = {50: (30, 10), 200: (20, 8), 1000: (8, 5)}
    for latency, (calls, checkouts) in plan.items():
        if QUICK:
            calls, checkouts = max(4, calls // 4), max(2, checkouts // 3)
        for jitter in (0, latency // 10) if not QUICK or latency == 200 else (0,):
            name = stack.faults.inject("payments", "latency", name=f"bench-{latency}-{jitter}",
                                       stream="downstream",
                                       attributes={"latency": latency, "jitter": jitter})
            try:
                added = [s - statistics.median(base_call)
                         for s in timed_gets(port, "/healthz", calls, True)]
                whole = [shopper.timed_checkout().elapsed - statistics.median(base_checkout)
                         for _ in range(checkouts)]
            finally:
                stack.faults.roll_back("payments", name)
            report.add("2 Fault precision",
                       f"latency {latency} ms ± {jitter} ms: added to a payments call",
                       f"median {ms(statistics.median(added))}, p99 {ms(pct(added, 0.99))} "
                       f"(n={calls})", "minus the median without the toxic")
            report.add("2 Fault precision",
                       f"latency {latency} ms ± {jitter} ms: added to the whole checkout",
                       f"median {ms(statistics.median(whole))}, p99 {ms(pct(whole, 0.99))} "
                       f"(n={checkouts})", "POST /api/checkout: it calls payments twice "
                       "(authorize, capture)")
    shopper.close()
    bandwidth(stack, report)


class _Bulk(BaseHTTPRequestHandler):
    payload = os.urandom(2 * 1024 * 1024)

    def do_GET(self) -> None:
        size = int(self.path.strip("/") or len(self.payload))
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(self.payload[:size])

    def log_message(self, *args: Any) -> None:
        pass


def bandwidth(stack: Stack, report: Report) -> None:
    """A bandwidth toxic's configured rate vs the rate a download achieves through it."""
    server = ThreadingHTTPServer((LOOPBACK, 0), _Bulk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        listen = s.getsockname()[1]
    spec = ProxySpec(f"{HARNESS_PREFIX}bench-bulk", f"{LOOPBACK}:{listen}",
                     f"{LOOPBACK}:{server.server_address[1]}")
    stack.faults.ensure_proxies([spec])
    try:
        for rate_kb in (100, 1000):
            size = rate_kb * 1024 * (1 if QUICK else 2)  # about 1 or 2 s of transfer
            name = stack.faults.inject(spec.name, "bandwidth", name=f"bench-bw-{rate_kb}",
                                       stream="downstream", attributes={"rate": rate_kb})
            try:
                started = time.perf_counter()
                body = httpx.get(f"http://{LOOPBACK}:{listen}/{size}", timeout=60).content
                took = time.perf_counter() - started
            finally:
                stack.faults.roll_back(spec.name, name)
            achieved = len(body) / 1024 / took
            report.add("2 Fault precision", f"bandwidth {rate_kb} KB/s: achieved",
                       f"{achieved:.0f} KB/s ({achieved / rate_kb:.2f} of configured, "
                       f"{len(body) // 1024} KB)", "one download through a bench proxy")
    finally:
        httpx.delete(f"{stack.config.toxiproxy_url}/proxies/{spec.name}", timeout=5)
        server.shutdown()
        server.server_close()


def locust(stack: Stack, user: str, users: int, seconds: int, out: Path,
           host: str | None = None, wrap: list[str] | None = None,
           root: Path = PROJECT_ROOT, locustfile: str = "locust_bench.py",
           ) -> tuple[dict[str, Any], float]:
    """A headless Locust run of one user class from benchmarks/locust_bench.py: its
    aggregate figures and the CPU seconds Locust used (`wrap`: a command it runs under,
    such as a profiler)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [*(wrap or []), sys.executable, "-m", "locust", "-f",
           str(root / "benchmarks" / locustfile), user,
           "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
           "--host", host or stack.config.shop_url,
           "--json-file", str(out / "locust"), "--stop-timeout", "5", "--loglevel", "WARNING"]
    if locustfile == "locust_bench.py":  # the shop's locustfile: its outputs go here
        cmd += ["--run-dir", str(out)]
    _, _, cpu = run_counted(cmd, seconds + 60, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    stats = json.loads((out / "locust.json").read_text())
    requests = sum(entry["num_requests"] for entry in stats)
    failures = sum(entry["num_failures"] for entry in stats)
    checkouts = sum(e["num_requests"] for e in stats if e["name"] == "/api/checkout")
    p95 = whole_run_p95(out)
    return {"requests": requests, "failures": failures, "checkouts": checkouts,
            "seconds": seconds, "rps": requests / seconds, "checkouts_per_s": checkouts / seconds,
            "p95_ms": p95}, cpu


def process_cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each stack process with its workers."""
    return {p.name: tree_cpu(p.pid) for p in stack.processes()}


def capacity(stack: Stack, report: Report, scratch: Path) -> None:
    """3 and 4: the no-op limit (wrk, Locust), the highest passing checkout and browse
    rates, CPU-seconds per checkout per process; requests per CPU-second of each generator."""
    seconds = 3 if QUICK else 8
    noop = f"{stack.config.shop_url}/healthz"
    limit = wrk(noop, seconds, 32)
    fast, fast_cpu = locust(stack, "NoopFast", 32, seconds, scratch / "noop-fast")
    bare, bare_cpu = locust(stack, "NoopBare", 32, seconds, scratch / "noop-bare",
                            locustfile="locust_bare.py")
    slow, slow_cpu = locust(stack, "NoopHttp", 32, seconds, scratch / "noop-http")
    limit2 = wrk(noop, seconds, 32)
    wrk_rps = (limit["rps"] + limit2["rps"]) / 2
    report.add("3 Capacity", "machine limit: shop /healthz (same gunicorn, 3 gthread x 8), wrk",
               f"{wrk_rps:.0f} req/s, p99 {limit['p99_ms']:.1f} ms",
               f"wrk -c32 -d{seconds}s, before and after the Locust runs")
    report.add("3 Capacity", "machine limit: shop /healthz, Locust FastHttpUser (32 users)",
               f"{fast['rps']:.0f} req/s ({fast['rps'] / wrk_rps:.2f} of wrk's)",
               "no wait time, one Locust process")
    per_cpu = {"wrk": (limit["requests"] + limit2["requests"]) / (limit["cpu"] + limit2["cpu"]),
               "FastHttpUser": fast["requests"] / fast_cpu,
               "FastHttpUser, bare Locust": bare["requests"] / bare_cpu,
               "HttpUser": slow["requests"] / slow_cpu}
    report.add("4 Load generator", "requests per CPU-second on /healthz",
               ", ".join(f"{k} {v:.0f}" for k, v in per_cpu.items()) +
               f"; FastHttpUser / HttpUser = {per_cpu['FastHttpUser'] / per_cpu['HttpUser']:.1f}x"
               " (anchor: about 4x)", "CPU of the generator's process tree (wait4 rusage); "
               "FastHttpUser with the shop's locustfile loaded (its listeners: timeline, "
               "status watch), bare: Locust alone")
    report.add("4 Load generator", "FastHttpUser's requests per CPU-second as a share of wrk's",
               f"{per_cpu['FastHttpUser'] / per_cpu['wrk']:.2f} with the shop's locustfile, "
               f"{per_cpu['FastHttpUser, bare Locust'] / per_cpu['wrk']:.2f} bare Locust "
               "(goal: 0.25)", "same runs")
    report.data["load_generators"] = per_cpu

    for user, steps, what in (
        ("Buyer", [40] if QUICK else [25, 50, 100, 150], "checkout journeys"),
        ("Browser", [80] if QUICK else [50, 100, 200, 300], "catalog browsing"),
    ):
        best: dict[str, Any] | None = None
        for users in steps:
            before = process_cpu(stack)
            figures, locust_cpu = locust(stack, user, users, seconds * 2,
                                         scratch / f"{user}-{users}")
            after = process_cpu(stack)
            figures["cpu"] = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            figures["cpu"]["locust"] = locust_cpu
            figures["users"] = users
            report.data.setdefault("capacity", {}).setdefault(user, []).append(figures)
            print(f"    {user} {users} users: {figures['rps']:.0f} req/s, "
                  f"{figures['checkouts_per_s']:.2f} checkouts/s, p95 {figures['p95_ms']:.0f} "
                  f"ms, failures {figures['failures']}", flush=True)
            if figures["p95_ms"] < 500 and figures["failures"] == 0:
                best = figures
            else:
                break
        if best is None:
            report.add("3 Capacity", f"{what}: highest passing rate", "none passed", "")
            continue
        rate = (f"{best['checkouts_per_s']:.1f} checkouts/s, " if user == "Buyer" else "")
        report.add("3 Capacity", f"{what}: highest rate with p95 < 500 ms, no ungraceful",
                   f"{rate}{best['rps']:.0f} req/s at {best['users']} users, p95 "
                   f"{best['p95_ms']:.0f} ms = {best['rps'] / wrk_rps:.2f} of the no-op limit",
                   f"Locust steps of {seconds * 2}s: {', '.join(map(str, steps))} users")
        if user == "Buyer" and best["checkouts"]:
            per = {k: v / best["checkouts"] for k, v in best["cpu"].items()}
            report.add("3 Capacity", "CPU-seconds per checkout journey, per process",
                       ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in
                                 sorted(per.items(), key=lambda kv: -kv[1])),
                       "/proc utime+stime of each process tree over the step")


def fail_fast(stack: Stack, report: Report) -> None:
    """5. payments blackholed: time to the shopper's answer, breaker closed vs open."""
    shopper = Shopper(stack.config.shop_url)
    name = stack.faults.inject("payments", "timeout", name="bench-blackhole",
                               stream="downstream", attributes={"timeout": 0})
    closed: list[float] = []
    opened: list[float] = []
    statuses: dict[int, int] = {}
    try:
        for _ in range(10 if QUICK else 30):
            answer = shopper.timed_checkout()
            took, status = answer.elapsed, answer.status or 0
            statuses[status] = statuses.get(status, 0) + 1
            (opened if breaker_open(stack, "payments") and closed else closed).append(took)
    finally:
        stack.faults.roll_back("payments", name)
        shopper.close()
    deadline = 5.0
    report.add("5 Fail-fast", "payments blackholed, breaker not yet open: time to the answer",
               median_p99(closed) + f" vs the {deadline:g} s checkout deadline",
               f"sequential checkouts; answers {statuses}")
    if opened:
        report.add("5 Fail-fast", "payments blackholed, breaker open: time to the answer",
                   median_p99(opened), "payment pending without calling payments; the "
                   "slow ones are half-open probes waiting the 2.5 s read timeout")
    wait_operational(stack)


def breaker_open(stack: Stack, dependency: str) -> bool:
    state = ShopClient(stack.config.shop_url).breaker_state(dependency)
    return state is not None and state >= 2


def reflexes(stack: Stack, report: Report, env: dict[str, str], scratch: Path) -> None:
    """6. abort latency, rollback on SIGTERM, time-to-communicate, recovery."""
    cli = [sys.executable, "-m", "chaos.cli", "run"]
    aborts = []
    for i in range(REPEAT):
        out = scratch / f"abort-{i}"
        subprocess.run([*cli, str(HERE / "experiments" / "abort.yaml"), "--out", str(out)],
                       env=env, capture_output=True, timeout=180)
        abort = json.loads((out / "journal.json").read_text()).get("abort") or {}
        if "latency" in abort:
            aborts.append(abort["latency"])
    report.add("6 Reflexes", "abort: stop condition met → every toxic removed",
               median_p99(aborts), f"checkout-chaos run abort.yaml x{REPEAT}")
    rollbacks = []
    for i in range(REPEAT):
        proc = subprocess.Popen([*cli, str(HERE / "experiments" / "long.yaml"), "--out",
                                 str(scratch / f"sigterm-{i}")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if wait_until(lambda: bool(harness_toxics(stack)), 60, 0.05) is None:
                continue
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            if wait_until(lambda: not harness_toxics(stack), 30, 0.002) is not None:
                rollbacks.append(time.monotonic() - sent)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    report.add("6 Reflexes", "rollback on SIGTERM: signal → every toxic removed",
               median_p99(rollbacks), f"checkout-chaos run long.yaml, SIGTERM x{REPEAT}")
    told, recovered = communicate(stack)
    report.add("6 Reflexes", "time-to-communicate: payments down → /api/status says so",
               median_p99(told), f"proxy disabled x{REPEAT}, a checkout every 0.2 s")
    report.add("6 Reflexes", "recovery: payments back → a checkout confirmed again",
               median_p99(recovered), "same runs")


def harness_toxics(stack: Stack) -> list[str]:
    return [t.name for t in stack.faults.toxics() if t.name.startswith(HARNESS_PREFIX)]


def communicate(stack: Stack) -> tuple[list[float], list[float]]:
    """Payments taken down and brought back REPEAT times under a trickle of checkouts."""
    told: list[float] = []
    recovered: list[float] = []
    stop = threading.Event()
    confirmed_at: list[float] = [0.0]

    def trickle() -> None:
        shopper = Shopper(stack.config.shop_url)
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                answer = shopper.timed_checkout()
                if answer.status == 201 and answer.json().get("status") == "confirmed":
                    confirmed_at[0] = time.monotonic()
            stop.wait(0.2)
        shopper.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        for _ in range(REPEAT):
            wait_operational(stack)
            stack.faults.disable("payments")
            try:
                took = wait_until(lambda: status_of(stack, "payments") != "operational", 30)
            finally:
                stack.faults.enable("payments")
            back = time.monotonic()
            if took is not None:
                told.append(took)
            if wait_until(lambda b=back: bool(confirmed_at[0] > b), 60,  # type: ignore[misc]
                          0.02) is not None:
                recovered.append(confirmed_at[0] - back)
    finally:
        stop.set()
        thread.join(timeout=30)
    return told, recovered


def metrics_overhead(stack: Stack, report: Report, scratch: Path) -> None:
    """7. shop throughput with metrics on vs off; /metrics scrape time after a labor-day
    run."""
    seconds = 2 if QUICK else 6
    url = f"{stack.config.shop_url}/api/products"
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(2):
        for mode in ("on", "off"):
            stack.restart_shop({"SHOP_METRICS": mode})
            rates[mode].append(wrk(url, seconds, 16)["rps"])
    stack.restart_shop({"SHOP_METRICS": "on"})
    on, off = statistics.mean(rates["on"]), statistics.mean(rates["off"])
    report.add("7 Metrics overhead", "GET /api/products req/s, metrics on vs off",
               f"on {on:.0f}, off {off:.0f} (on/off {on / off:.2f})",
               f"wrk -c16 -d{seconds}s, shop restarted for each, on/off/on/off")
    day = scratch / "labor-day"
    minutes = 0.33 if QUICK else 3
    subprocess.run([sys.executable, "-m", "chaos.cli", "load", "--profile", "labor-day",
                    "--users", "60", "--duration", f"{minutes * 60:.0f}s", "--day-minutes",
                    str(minutes), "--out", str(day)], env=cli_env(stack),
                   capture_output=True, timeout=minutes * 60 + 120)
    files = len(list((stack.run_dir / "shop-metrics").glob("*.db")))
    scrapes = []
    size = 0
    for _ in range(REPEAT):
        started = time.perf_counter()
        size = len(httpx.get(f"{stack.config.shop_url}/metrics", timeout=10).content)
        scrapes.append(time.perf_counter() - started)
    report.add("7 Metrics overhead", f"shop /metrics scrape after a {minutes:g} min labor-day run",
               median_p99(scrapes) + f", {size // 1024} KB, {files} multiprocess files",
               "GET /metrics, sequential")


def worker_model(stack: Stack, report: Report, scratch: Path) -> None:
    """8. gunicorn sync vs gthread for checkout under a 200 ms payments latency."""
    seconds = 4 if QUICK else 15
    name = stack.faults.inject("payments", "latency", name="bench-workers",
                               stream="downstream", attributes={"latency": 200})
    results = {}
    try:
        for worker, threads in (("sync", "1"), ("gthread", "8")):
            # gunicorn turns sync into gthread when threads > 1: sync needs threads 1.
            stack.restart_shop({"SHOP_WORKER_CLASS": worker, "SHOP_THREADS": threads})
            figures, _ = locust(stack, "Buyer", 60, seconds, scratch / f"worker-{worker}")
            results[worker] = figures
    finally:
        stack.faults.roll_back("payments", name)
        stack.restart_shop({"SHOP_WORKER_CLASS": "gthread", "SHOP_THREADS": "8"})
    for worker, f in results.items():
        report.add("8 Worker model", f"gunicorn {worker} (3 workers"
                   f"{' x 8 threads' if worker == 'gthread' else ''}), payments +200 ms, "
                   "60 buyers", f"{f['checkouts_per_s']:.2f} checkouts/s, {f['rps']:.0f} req/s, "
                   f"p95 {f['p95_ms']:.0f} ms, failures {f['failures']}",
                   f"Locust {seconds}s; gevent: not supported (psycopg pool and threads)")
    report.data["worker_model"] = results


def shop_pages(stack: Stack) -> dict[str, str]:
    """The storefront's pages as a shopper gets them (a cart with an item; a sorry page
    recorded with PostgreSQL down, from the unit tests)."""
    base = stack.config.shop_url
    with httpx.Client(base_url=base, timeout=10) as client:
        product = client.get("/products/LAMP-001").text
        token = read_page(product).form("/cart/add")
        client.post("/cart/add", data={**(token.fields if token else {}), "qty": "1"})
        pages = {path: client.get(path).text for path in ("/", "/status", "/cart", "/checkout")}
    pages["/products/LAMP-001"] = product
    pages["sorry (503)"] = (PROJECT_ROOT / "tests" / "unit" / "recorded" /
                            "sorry-checkout-503.html").read_text()
    return pages


def html_judging(stack: Stack, report: Report, scratch: Path) -> None:
    """What judging pages costs the load generator: each candidate parser reading the same
    facts from the shop's own pages, then Locust's answers per second and per CPU-second
    with pages judged and judged by status only, alternated in one run."""
    pages = shop_pages(stack)
    loops = 50 if QUICK else 300
    costs: dict[str, list[float]] = {}
    def read_all(html_text: str) -> object:
        """read_page, with its forms read too (it reads them only when asked)."""
        page = read_page(html_text)
        return page.forms

    for name, read in (("selectolax (Lexbor)", read_all), ("lxml", read_page_lxml),
                       ("html.parser (stdlib)", read_page_stdlib)):
        for html_text in pages.values():
            started = time.process_time()
            for _ in range(loops):
                read(html_text)
            costs.setdefault(name, []).append((time.process_time() - started) / loops)
    fastest = min(statistics.mean(v) for v in costs.values())
    for name, values in costs.items():
        report.add("9 HTML judging", f"read one page: {name}",
                   f"{statistics.mean(values) * 1e6:.0f} µs CPU per page (mean of "
                   f"{len(values)} pages; {statistics.mean(values) / fastest:.1f}x the fastest)",
                   f"{loops} reads of each of {', '.join(pages)}")
    report.data["html_parsers_us"] = {k: [v * 1e6 for v in vs] for k, vs in costs.items()}
    seconds, rounds = (6, 2) if QUICK else (10, 3)
    figures: dict[str, list[tuple[float, float]]] = {"PagesByStatus": [], "PagesJudged": []}
    for index in range(rounds):
        for user in figures:
            stats, cpu = locust(stack, user, 16, seconds, scratch / f"html-{user}-{index}")
            figures[user].append((stats["rps"], stats["requests"] / cpu if cpu else 0.0))
    plain, judged = (
        (statistics.median(r for r, _ in figures[u]), statistics.median(c for _, c in figures[u]))
        for u in ("PagesByStatus", "PagesJudged"))
    report.add("9 HTML judging", "Locust on / and a product page: status only vs judged",
               f"{plain[0]:.0f} vs {judged[0]:.0f} answers/s (ratio {judged[0] / plain[0]:.2f}); "
               f"{plain[1]:.0f} vs {judged[1]:.0f} answers per CPU-second (ratio "
               f"{judged[1] / plain[1]:.2f})",
               f"16 users, no wait, {seconds}s each, {rounds} rounds alternated, medians")
    report.data["html_judging"] = figures


def cli_env(stack: Stack) -> dict[str, str]:
    from dataclasses import asdict

    env = {**os.environ, "CC_RUN_DIR": str(stack.run_dir), "PYTHONPATH": str(PROJECT_ROOT),
           "CC_HISTORY_FILE": str(stack.run_dir / "history.jsonl")}
    env.update({f"CC_{k.upper()}_PORT": str(v) for k, v in asdict(stack.config.ports).items()})
    return env


# ---- before and after -------------------------------------------------------------------------
# The commit the figures changed from (issue 15's start); BENCH_BEFORE=<rev> for another.
BEFORE = os.environ.get("BENCH_BEFORE", "0600bb2")


def code_at(rev: str, into: Path) -> Path | None:
    """The shop, services, load generator and harness as they were at `rev` (None: this
    clone does not have it, e.g. a shallow CI clone)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", rev, "demo_shop",
                              "loadtests", "chaos", "benchmarks"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def journey_costs(root: Path, users: int, seconds: int, scratch: Path) -> dict[str, Any]:
    """On a stack running the code under `root`: checkout journeys at a fixed load (rate,
    p95, CPU per journey of every process, Locust's own included) and Locust's requests per
    CPU-second on the no-op route (its user classes as that code has them)."""
    with own_stack(root) as stack:
        noop, noop_cpu = locust(stack, "NoopFast", 32, seconds, scratch / "noop", root=root)
        before = process_cpu(stack)
        figures, locust_cpu = locust(stack, "Buyer", users, seconds * 2, scratch / "buy",
                                     root=root)
        after = process_cpu(stack)
    cpu = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    cpu["locust"] = locust_cpu
    journeys = max(figures["checkouts"], 1)
    return {**figures, "per_journey_ms": {k: v / journeys * 1000 for k, v in cpu.items()},
            "noop_per_cpu_s": noop["requests"] / noop_cpu if noop_cpu else 0.0}


def before_after(report: Report, scratch: Path) -> None:
    """10: the base commit's shop and load generator against this code's, each on its own
    stack, alternated in this one run: checkout rate and p95 at the same load, CPU per
    checkout journey per process, Locust's no-op requests per CPU-second."""
    old = code_at(BEFORE, scratch / "before")
    if old is None:
        report.add("10 Before/after", f"against {BEFORE}", "not measured: this clone does not "
                   "have that commit (fetch it, or BENCH_BEFORE=<rev>)")
        return
    users, seconds, rounds = (30, 6, 1) if QUICK else (60, 8, 2)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for index in range(rounds):
        for name, root in (("before", old), ("after", PROJECT_ROOT)):
            runs[name].append(journey_costs(root, users, seconds,
                                            scratch / f"ba-{name}-{index}"))
            last = runs[name][-1]
            print(f"    {name} #{index + 1}: {last['checkouts_per_s']:.1f} checkouts/s, p95 "
                  f"{last['p95_ms']:.0f} ms, shop {last['per_journey_ms'].get('shop', 0):.1f} "
                  f"ms, locust {last['per_journey_ms']['locust']:.1f} ms per journey",
                  flush=True)
    report.data["before_after"] = {"rev": BEFORE, **runs}

    def med(name: str, pick: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(pick(r) for r in runs[name])

    how = (f"{users} Buyer users {seconds * 2} s on a stack of each code, {rounds} round(s) "
           f"alternated, medians; before = {BEFORE}")
    for figure, pick, unit in (
        ("checkouts/s at the same load", lambda r: r["checkouts_per_s"], ""),
        ("p95 of the journeys' requests", lambda r: r["p95_ms"], " ms"),
        ("shop CPU per checkout journey", lambda r: r["per_journey_ms"].get("shop", 0.0), " ms"),
        ("Locust CPU per checkout journey", lambda r: r["per_journey_ms"]["locust"], " ms"),
        ("all processes' CPU per checkout journey",
         lambda r: sum(r["per_journey_ms"].values()), " ms"),
        ("Locust requests per CPU-second, no-op route", lambda r: r["noop_per_cpu_s"], ""),
    ):
        b, a = med("before", pick), med("after", pick)
        report.add("10 Before/after", figure,
                   f"before {b:.1f}{unit}, after {a:.1f}{unit} (after/before "
                   f"{a / b if b else float('nan'):.2f})", how)


@contextlib.contextmanager
def own_stack(code_root: Path = PROJECT_ROOT) -> Iterator[Stack]:
    run_dir = PROJECT_ROOT / ".run" / f"bench-{uuid.uuid4().hex[:6]}"
    stack = Stack(StackConfig(run_dir=run_dir, ports=Ports.free(), shop_workers=3,
                              shop_threads=8, code_root=code_root), progress=lambda m: None)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        stack.up()
        yield stack
    finally:
        with contextlib.suppress(Exception):
            stack.faults.sweep()
        stack.down()
        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed: run `make setup`", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = Report()
    scratch = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    sections = [("toxiproxy", lambda s: toxiproxy_cost(s, report)),
                ("hop", lambda s: hop_cost(s, report)),
                ("precision", lambda s: fault_precision(s, report)),
                ("capacity", lambda s: capacity(s, report, scratch)),
                ("fail-fast", lambda s: fail_fast(s, report)),
                ("reflexes", lambda s: reflexes(s, report, cli_env(s), scratch)),
                ("metrics", lambda s: metrics_overhead(s, report, scratch)),
                ("workers", lambda s: worker_model(s, report, scratch)),
                ("html", lambda s: html_judging(s, report, scratch))]
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    try:
        with own_stack() as stack:
            print(f"stack up on free ports ({stack.config.shop_url})", flush=True)
            for name, section in sections:
                if only and name not in only:
                    continue
                print(f"[{time.monotonic() - started:5.0f}s] {name}", flush=True)
                section(stack)
        if not only or "before-after" in only:
            print(f"[{time.monotonic() - started:5.0f}s] before-after", flush=True)
            before_after(report, scratch)
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "quick": QUICK,
            "seconds": time.monotonic() - started,
            "machine": f"{os.cpu_count()} cores, "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} "
                       f"GiB, {platform.system()} {platform.release()}, Python "
                       f"{platform.python_version()}"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps({"meta": meta, "rows": report.rows,
                                                "data": report.data}, indent=1))
    (OUT / "bench.md").write_text(report.markdown(meta))
    print(f"\n{report.markdown(meta)}\nwritten: {OUT / 'bench.md'}, {OUT / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
