"""The chaos engine on the real stack: verdicts, stop conditions, rollback on every exit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos.faults import HARNESS_PREFIX
from chaos.stack import Stack
from chaos.waiting import eventually

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent / "experiments"
CLI = [sys.executable, "-m", "chaos.cli"]


def run(name: str, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "run", str(HERE / f"{name}.yaml"), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=240)


def harness_toxics(stack: Stack) -> list[str]:
    return [t.name for t in stack.faults.toxics() if t.name.startswith(HARNESS_PREFIX)]


def assert_clean(stack: Stack) -> None:
    assert harness_toxics(stack) == []
    assert all(stack.faults.proxy_names().values()), stack.faults.proxy_names()


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return {case.get("name"): case for case in root.iter("testcase")}


def test_a_short_experiment_passes_with_every_report(stack: Stack, tmp_path: Path,
                                                     cli_env: dict[str, str]) -> None:
    result = run("short-pass", tmp_path, cli_env)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["verdict"] == "passed" and journal["score"] == 100.0
    steps = [(e["phase"], e["status"]) for e in journal["journal"]]
    assert [p for p, _ in steps] == ["shop", "preflight", "steady-state-before", "method",
                                     "rollback", "recovery", "teardown", "judge", "audit"]
    assert {s for _, s in steps} == {"succeeded"}
    assert journal["phase_verdicts"] == {"baseline": True, "fault": True, "recovery": True,
                                         "audit": True}
    assert journal["audit"]["clean"] and journal["audit"]["told_confirmed"] > 0
    cases = junit_cases(tmp_path / "junit.xml")
    assert "ledger audit: nothing lost" in cases and "checkouts still succeed" in cases
    assert not any(c.find("failure") is not None for c in cases.values())
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "PASS" in (tmp_path / "summary.md").read_text()
    assert_clean(stack)


def test_a_hypothesis_the_shop_cannot_meet_fails_with_exit_1(stack: Stack, tmp_path: Path,
                                                           cli_env: dict[str, str]) -> None:
    result = run("built-to-fail", tmp_path, cli_env)
    assert result.returncode == 1, result.stdout + result.stderr
    cases = junit_cases(tmp_path / "junit.xml")
    failing = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failing == {"every checkout succeeds while inventory is down"}
    failure = cases["every checkout succeeds while inventory is down"].find("failure")
    assert failure is not None and "wanted at least 0.99" in failure.get("message", "")
    assert_clean(stack)


def test_a_stop_condition_aborts_early_and_rolls_back(stack: Stack, tmp_path: Path,
                                                      cli_env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run("stop-condition", tmp_path, cli_env)
    assert result.returncode == 1, result.stdout + result.stderr
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["verdict"] == "aborted"
    assert journal["abort"]["condition"] == "most answers are errors"
    assert journal["abort"]["latency"] < 1.0  # condition met -> every fault gone
    restarted = next(e for e in journal["journal"] if e["phase"] == "shop")["output"]
    assert restarted["restarted"] and restarted["safeguards_off"] == ["fallbacks"]
    assert safeguards_off(stack) == []  # the run put the resilient shop back
    assert time.monotonic() - started < 60  # the 60 s fault did not run its course
    assert_clean(stack)


def wait_for_toxic(stack: Stack, timeout: float = 60) -> None:
    eventually(lambda: bool(harness_toxics(stack)), timeout, "the fault is injected",
               every=0.2)


def test_sigterm_mid_fault_leaves_no_toxic(stack: Stack, tmp_path: Path,
                                           cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen([*CLI, "run", str(HERE / "long-fault.yaml"), "--out",
                             str(tmp_path)], env=cli_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_toxic(stack)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, out + err
    assert_clean(stack)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert "SIGTERM" in journal["reason"]
    assert any(e["phase"] == "rollback" and e["status"] == "succeeded"
               for e in journal["journal"])


def test_sigkill_mid_fault_is_swept_at_the_next_start(stack: Stack, tmp_path: Path,
                                                      cli_env: dict[str, str]) -> None:
    from chaos.experiment import load_experiment
    from chaos.run import Collaborators

    proc = subprocess.Popen([*CLI, "run", str(HERE / "long-fault.yaml"), "--out",
                             str(tmp_path / "killed")], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_toxic(stack)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftover = harness_toxics(stack)
    assert leftover, "SIGKILL leaves the toxic behind (nothing can run on SIGKILL)"
    _, experiment = load_experiment(str(HERE / "short-pass.yaml"))
    preflight = Collaborators.for_stack(stack, tmp_path / "next").preflight(
        experiment.targets())
    assert any(name in line for line in preflight["swept_leftovers"] for name in leftover)
    assert any("stopped leftover load" in line for line in preflight["swept_leftovers"])
    assert_clean(stack)


def test_a_second_run_on_the_same_stack_is_refused(stack: Stack, tmp_path: Path,
                                                   cli_env: dict[str, str]) -> None:
    from chaos.run import run_lock

    with run_lock(stack.config.run_dir):
        result = run("short-pass", tmp_path, cli_env)
    assert result.returncode == 2
    assert "another run holds this stack (experiment, pid" in result.stderr
    assert_clean(stack)


@pytest.mark.parametrize("port_var,message", [
    ("CC_TOXIPROXY_PORT", "not up and healthy"),
    ("CC_SHOP_PORT", "not up and healthy"),
])
def test_a_stack_that_is_not_there_is_exit_2(tmp_path: Path, cli_env: dict[str, str],
                                             port_var: str, message: str) -> None:
    env = {**cli_env, port_var: "9"}
    result = run("short-pass", tmp_path, env)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_file_is_exit_2_before_anything_runs(tmp_path: Path,
                                                         cli_env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nfaults:\n  - target: paymnets\n    toxic: latencyy\n")
    result = subprocess.run([*CLI, "run", str(bad)], env=cli_env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "faults[0].target[0]" in result.stderr and "(line 3)" in result.stderr
    assert "Traceback" not in result.stderr


def failed_suites(junit: Path) -> set[str]:
    root = ET.parse(junit).getroot()
    return {str(suite.get("name")) for suite in root.iter("testsuite")
            if any(case.find("failure") is not None for case in suite.iter("testcase"))}


def safeguards_off(stack: Stack) -> list[str]:
    import httpx

    return list(httpx.get(f"{stack.config.shop_url}/healthz", timeout=5).json()["safeguards_off"])


def test_the_gate_fails_a_fragile_shop_and_passes_the_resilient_one(
    stack: Stack, tmp_path: Path, cli_env: dict[str, str],
) -> None:
    subset = ["--name", "payments-hard-down", "--name", "redis-hard-down", "--time-scale", "0.2"]

    def gate(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "gate", *subset, *extra], env=cli_env,
                              capture_output=True, text=True, timeout=900)

    fragile = gate("--shop", "fragile", "--out", str(tmp_path / "fragile"))
    assert fragile.returncode == 1, fragile.stdout[-3000:] + fragile.stderr
    assert failed_suites(tmp_path / "fragile" / "junit.xml") == {
        "payments-hard-down", "redis-hard-down"}
    summary = (tmp_path / "fragile" / "summary.md").read_text()
    assert "checkouts are still taken (confirmed or payment pending)" in summary
    assert "shoppers still fill carts and check out (cookie cart)" in summary
    assert safeguards_off(stack) == []  # each run put the resilient shop back
    resilient = gate("--out", str(tmp_path / "resilient"))
    assert resilient.returncode == 0, resilient.stdout[-3000:] + resilient.stderr
    assert failed_suites(tmp_path / "resilient" / "junit.xml") == set()
    assert_clean(stack)


def test_sigkill_mid_safeguard_experiment_leaves_every_safeguard_on_after_the_next_start(
        stack: Stack, tmp_path: Path, cli_env: dict[str, str]) -> None:
    """The runner turned a safeguard off (the shop restarted without retries) and was
    killed -9 mid-fault: nothing of it could run. Its journal is on disk, so the next run
    restores the shop first (it does not take 'retries off' for the shop's own state), and
    its preflight sweeps the toxic and stops the load."""
    from chaos.experiment import load_experiment
    from chaos.run import Collaborators
    from chaos.shop import SAFEGUARD_JOURNAL, ShopClient

    shop = ShopClient(stack.config.shop_url)
    proc = subprocess.Popen([*CLI, "run", str(HERE / "safeguard-long-fault.yaml"), "--out",
                             str(tmp_path / "killed")], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_toxic(stack)
        assert shop.safeguards_off() == frozenset({"retries"})
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    journal = stack.config.run_dir / SAFEGUARD_JOURNAL
    assert json.loads(journal.read_text())["found_off"] == []
    assert harness_toxics(stack)
    _, experiment = load_experiment(str(HERE / "short-pass.yaml"))
    nxt = Collaborators.for_stack(stack, tmp_path / "next")
    done = nxt.profile.ensure(experiment.shop.off)
    assert done["restored_after_killed_run"] == []  # every safeguard on, as found
    assert shop.safeguards_off() == frozenset() and not journal.exists()
    assert nxt.profile.found is None  # nothing of the killed run's to 'put back' later
    swept = nxt.preflight(experiment.targets())["swept_leftovers"]
    assert any("stopped leftover load" in line for line in swept)
    assert_clean(stack)
