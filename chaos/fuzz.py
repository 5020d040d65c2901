"""`make fuzz`: Schemathesis against the live shop, driven by the shop's own OpenAPI document.

The fuzzer reaches the shop through a Toxiproxy proxy made for the run (and removed after),
as every other client of the stack reaches what it tests; the shop's own dependencies are
behind their proxies as always. Bounded twice: a number of examples per operation, and a
wall-clock limit on the whole run. Checks: fuzz/schemathesis.toml (no 5xx, every answer as
documented — status, content type, headers, body — and every error problem+json).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError
from .faults import FaultInjector, ProxySpec
from .stack.config import LOOPBACK, PROJECT_ROOT

CONFIG = PROJECT_ROOT / "fuzz" / "schemathesis.toml"
PROXY = "shop-fuzz"


@dataclass(frozen=True, slots=True)
class FuzzResult:
    """What one fuzz run did."""

    exit_code: int
    operations: str  # "6/6"
    cases: int
    failures: int
    log: Path
    junit: Path

    @property
    def passed(self) -> bool:
        """No failure and nothing errored."""
        return self.exit_code == 0

    def summary(self) -> str:
        """One line for people."""
        verdict = "clean" if self.passed else f"{self.failures} failure(s)"
        return (f"fuzz: {self.cases} test cases over {self.operations} operations, {verdict} "
                f"(log {self.log})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def parse_summary(output: str) -> tuple[str, int, int]:
    """(operations tested, test cases generated, failures) from Schemathesis's summary."""
    tested = re.search(r"Selected: (\d+)/(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    failures = re.search(r"found (\d+) unique failures", output)
    return (f"{tested.group(1)}/{tested.group(2)}" if tested else "?",
            int(cases.group(1)) if cases else 0, int(failures.group(1)) if failures else 0)


def run_fuzz(faults: FaultInjector, shop_port: int, out: Path, examples: int,
             seconds: float, seed: int | None = None) -> FuzzResult:
    """Run Schemathesis through a proxy in front of the shop; the proxy is always removed."""
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    faults.ensure_proxies([ProxySpec(PROXY, f"{LOOPBACK}:{port}", f"{LOOPBACK}:{shop_port}")])
    log, junit = out / "schemathesis.log", out / "junit.xml"
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file",
               str(CONFIG), "run", f"http://{LOOPBACK}:{port}/api/openapi.json",
               "--max-examples", str(examples), "--request-timeout", "10",
               # The proxy forwards bytes as sent: the shop answers only its own address.
               "--header", f"Host: {LOOPBACK}:{shop_port}",
               "--report", "junit", "--report-junit-path", str(junit), "--no-color"]
    if seed is not None:
        command += ["--seed", str(seed)]
    try:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=seconds,
                                  cwd=out, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"the fuzz run passed its limit of {seconds:.0f} s: lower "
                               "EXAMPLES or raise FUZZ_SECONDS") from exc
        except FileNotFoundError as exc:
            raise HarnessError("schemathesis is not installed: run `make setup`") from exc
    finally:
        faults.remove_proxy(PROXY)
    log.write_text(done.stdout + done.stderr)
    operations, cases, failures = parse_summary(done.stdout)
    return FuzzResult(done.returncode, operations, cases, failures, log, junit)
