"""Locust's own distributed mode, as on separate load hosts: a master and two workers
started as separate commands over loopback; the workers' evidence reaches the master's run
folder for the audit, their timelines are merged, and a run refuses to judge until the
workers it expects report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.audit import read_evidence, run_audit, stack_sources
from chaos.stack import PROJECT_ROOT, Ports, Stack
from loadtests.run import worker_command
from loadtests.timeline import read_timeline

pytestmark = pytest.mark.e2e


def ended(proc: subprocess.Popen, within: float = 30) -> None:  # type: ignore[type-arg]
    """The process has ended: waited for up to `within` seconds, then killed."""
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_master_and_two_workers_started_apart_gather_evidence_and_timeline(
        stack: Stack, cli_env: dict[str, str], tmp_path: Path) -> None:
    port = Ports.free().harness  # any free loopback port
    master_out = tmp_path / "master"
    started = time.time()
    master = subprocess.Popen(
        [sys.executable, "-m", "chaos.cli", "load", "--host", stack.config.shop_url,
         "--users", "8", "--spawn-rate", "8", "--duration", "12s", "--out", str(master_out),
         "--workers-expect", "2", "--master-port", str(port)],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers = [subprocess.Popen(worker_command("127.0.0.1", port, tmp_path / f"worker-{i}"),
                                cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for i in range(2)]
    try:
        output, _ = master.communicate(timeout=150)
    finally:
        for worker in workers:
            ended(worker)  # a worker quits when its master does
        ended(master, within=0)
    assert master.returncode == 0, output
    assert all(w.returncode is not None for w in workers)

    rows = read_timeline(master_out / "timeline.jsonl")
    final = json.loads((master_out / "locust.json").read_text())
    assert sum(r["requests"] for r in rows) == sum(e["num_requests"] for e in final) > 0
    sources = sorted(master_out.glob("evidence-*.jsonl"))
    assert len(sources) == 2, sources  # one file per worker, gathered by the master
    assert not list(tmp_path.glob("worker-*/evidence-*.jsonl"))  # nothing left on the workers
    evidence = read_evidence(master_out)
    assert sum(1 for e in evidence if e.get("order_status") == "confirmed") > 0
    config = stack.config
    audit = run_audit(evidence, stack_sources(config), since=started)
    assert audit.clean, audit.violations
    assert audit.told_confirmed == sum(1 for e in evidence if e.get("status") == 201
                                       and e.get("order_status") == "confirmed")


def test_a_run_refuses_to_judge_until_its_workers_report(
        cli_env: dict[str, str], tmp_path: Path) -> None:
    port = Ports.free().harness
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "chaos.cli", "run", "inventory-flaky", "--out", str(out),
         "--workers-expect", "2", "--master-port", str(port), "--workers-wait", "12"],
        env={**cli_env, **{k: v for k, v in os.environ.items() if k == "PATH"}},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # One worker of the two comes: the run must still refuse, and say how many came.
    worker = subprocess.Popen(worker_command("127.0.0.1", port, tmp_path / "worker"),
                              cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        output, _ = run.communicate(timeout=120)
    finally:
        worker.terminate()
        ended(worker)
        ended(run, within=0)
    assert run.returncode == 2, output
    journal = json.loads((out / "journal.json").read_text())
    assert journal["verdict"] == "error"
    assert "1 of 2 load workers reported within 12 s" in journal["reason"]
    assert "--worker" in journal["reason"]  # how to start one
    assert not any(e["phase"] == "method" for e in journal["journal"])  # no fault injected
    assert "Traceback" not in output
