"""django-oscar, a shop nobody here wrote, under the harness from targets/oscar.yaml alone:
brought up through the stack's proxies (its own database and user, migrations and its
catalog fixture, the mail sink its confirmations go to), a database, a payments and a mail
experiment run end to end, their verdicts and the audit over Oscar's own tables asserted,
what Oscar cannot show reported as not judged or skipped, never passed; and throw-away
copies of the deployment with one bug each, failed by the check that guards against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chaos.faults import HARNESS_PREFIX
from chaos.stack import Stack
from chaos.target import TARGETS_DIR, load_target
from tests.conftest import running_stack, small_stack_config, stack_env

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "chaos.cli"]
OSCAR = TARGETS_DIR / "oscar.yaml"
OSCAR_VENV = TARGETS_DIR.parent / ".venv-oscar" / "bin" / "gunicorn"


@contextmanager
def oscar_stack(session: pytest.Session, code_root: Path | None = None) -> Iterator[Stack]:
    """Oscar on a stack of its own (free ports), started as its target file says, from the
    repository's targets/oscar/ or a throw-away copy under `code_root`."""
    if not OSCAR_VENV.exists():
        pytest.fail("django-oscar is not installed: run `make setup` (it makes .venv-oscar)")
    config = small_stack_config(shop_app="command", ready_route="/api/", proxy_names={
        "payments": "payments", "postgres": "postgres", "redis": "redis", "mail": "mail"})
    if code_root is not None:
        config.code_root = code_root
    launch = load_target(OSCAR, config).launch
    assert launch is not None
    config.launch = launch.spec()
    with running_stack(config, session) as running:
        yield running


@pytest.fixture(scope="module")
def oscar(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The Oscar deployment as targets/oscar/ has it."""
    with oscar_stack(request.session) as running:
        yield running


def gate(stack: Stack, out: Path, *names: str) -> subprocess.CompletedProcess[str]:
    """checkout-chaos gate on one lane against Oscar, these experiments, time scale 0.4."""
    return subprocess.run(
        [*CLI, "gate", "--target", str(OSCAR), "--lanes", "1", "--time-scale", "0.4",
         "--out", str(out), *(arg for name in names for arg in ("--name", name))],
        env=stack_env(stack, out), capture_output=True, text=True, timeout=900)


def failed_cases(junit: Path) -> dict[str, set[str]]:
    """Per experiment (suite), the hypotheses that failed."""
    return {suite.get("name", ""): {case.get("name", "") for case in suite.iter("testcase")
                                    if case.find("failure") is not None}
            for suite in ET.parse(junit).getroot().iter("testsuite")}


def test_oscar_runs_the_catalog_from_its_target_file(oscar: Stack, tmp_path: Path) -> None:
    names = ("postgres-hard-down", "payments-hard-down", "mail-hard-down",
             "inventory-hard-down")
    result = gate(oscar, tmp_path, *names)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    failed = failed_cases(tmp_path / "junit.xml")
    journals = {name: json.loads((tmp_path / name / "journal.json").read_text())
                for name in names}
    for name in names[:3]:  # found under the fault, by a shop that held before it
        assert journals[name]["phase_verdicts"]["baseline"], (name, journals[name]["reason"])
        preflight = [s["output"] for s in journals[name]["journal"]
                     if s["phase"] == "preflight" and isinstance(s["output"], dict)]
        assert any(o.get("target") == "oscar" for o in preflight), name
        # The audit read Oscar's own order tables and the processor's ledger.
        audit = journals[name]["audit"]
        assert audit["orders"] > 0 and audit["charges"] > 0, audit
        assert not any(f"no {ledger}" in n for n in audit["not_judged"]
                       for ledger in ("orders", "charges", "reservations", "stock", "mail")
                       ), audit
        assert not any("status page" in r["name"] for r in journals[name]["hypotheses"]), name
    # Oscar has no status page: its hypotheses are not judged, never passed.
    assert any("no status page" in n for n in journals["payments-hard-down"]["not_judged"])
    # A database outage is Django's bare 500 page: no request id, not the shop's page. So
    # many pile up that the stop condition may end the run before the fault's window does.
    postgres = journals["postgres-hard-down"]
    assert "no ungraceful answers" in failed["postgres-hard-down"] or (
        postgres["verdict"] == "aborted" and "ungraceful answers pile up" in postgres["reason"]
    ), postgres["reason"]
    failures = (tmp_path / "postgres-hard-down" / "load" / "locust_failures.csv").read_text()
    assert "no_request_id" in failures
    # Payments down: the checkout answers 503 without a request id or Retry-After, and
    # takes no order at all (no payment-pending fallback). What may be lost is only the
    # charge of a checkout in flight when the proxy went down: captured, its answer cut,
    # the order rolled back (an orphan charge; 1 of 4 runs on 2026-12-04); nothing else.
    assert {"no ungraceful answers", "checkouts are still taken (confirmed or payment "
            "pending)"} <= failed["payments-hard-down"]
    payments = journals["payments-hard-down"]
    assert {v["rule"] for v in payments["audit"]["violations"]} <= {"orphan charge"}, \
        payments["audit"]["violations"]
    evidence = "".join(p.read_text() for p in
                       (tmp_path / "payments-hard-down" / "load").glob("evidence-*.jsonl"))
    told = [json.loads(line) for line in evidence.splitlines()]
    assert any(e["order_status"] == "confirmed" and e["http_status"] == 200 for e in told)
    # The mail server down: Oscar mails the confirmation inside the checkout, so the SMTP
    # error is Django's bare 500 after the card was charged, and the order is rolled back
    # (ATOMIC_REQUESTS): money taken for orders that do not exist.
    mail = journals["mail-hard-down"]
    assert {"no ungraceful answers", "ledger audit: nothing lost"} <= \
        failed["mail-hard-down"], mail["reason"]
    rules = {v["rule"] for v in mail["audit"]["violations"]}
    assert "orphan charge" in rules and "confirmation not mailed" not in rules, rules
    # No inventory role: skipped with the reason, neither passed nor failed.
    inventory = journals["inventory-hard-down"]
    assert inventory["verdict"] == "skipped" and "no inventory dependency" in \
        inventory["reason"]
    toxics = [t.name for t in oscar.faults.toxics() if t.name.startswith(HARNESS_PREFIX)]
    assert toxics == [] and all(oscar.faults.proxy_names().values())


# Throw-away copies of the deployment, each with one bug a shop team could ship: the check
# named must fail on it, and hold on the deployment in the same run. Each: the file under
# targets/oscar/ patched, the text replaced, its replacement, the audit rule it must meet.
MUTANT_EXPERIMENT = "payments-slicer"  # one the deployment rides out
MUTANTS = {
    # Its products do not track stock: orders allocate nothing and the shop oversells.
    "oversells": ("fixtures/catalog.json", '"track_stock": true', '"track_stock": false',
                  "stock does not add up"),
    # The confirmation step is not installed: shoppers are never mailed.
    "mails-nothing": ("settings.py", '    "shopapi.apps.ShopApiConfig",', "",
                      "confirmation not mailed"),
    # The confirmation step hooked twice: every shopper gets two.
    "mails-twice": ("shopapi/apps.py",
                    'oscarapi_post_checkout.connect(send_confirmation, '
                    'dispatch_uid="shop-confirmation")',
                    'oscarapi_post_checkout.connect(send_confirmation, dispatch_uid="a")\n'
                    '        oscarapi_post_checkout.connect(send_confirmation, dispatch_uid="b")',
                    "confirmation mailed more than once"),
    # The confirmation names the basket's id, not the order's number: it confirms an order
    # the shop does not have (and the real one is never confirmed).
    "mails-a-lost-order": (
        "shopapi/apps.py",
        '    context = {"user": user, "order": order, "lines": order.lines.all(), '
        '"request": request}\n',
        '    context = {"user": user, "order": order, "lines": order.lines.all(), '
        '"request": request}\n'
        "    from copy import copy\n"
        '    context["order"] = copy(order)\n'
        '    context["order"].number = str(order.basket_id)\n',
        "confirmation of a lost order"),
}


@pytest.fixture(scope="module")
def deployment_audit(oscar: Stack, tmp_path_factory: pytest.TempPathFactory
                     ) -> dict[str, object]:
    """The unmutated deployment's journal under the mutants' experiment."""
    out = tmp_path_factory.mktemp("deployment")
    gate(oscar, out, MUTANT_EXPERIMENT)
    journal: dict[str, object] = json.loads(
        (out / MUTANT_EXPERIMENT / "journal.json").read_text())
    return journal


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_each_oscar_mutant_is_failed_by_the_check_that_guards_against_it(
        mutant: str, deployment_audit: dict, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    patched, text, replacement, rule = MUTANTS[mutant]
    # The deployment's verdict is not asserted (one product page past the 6 s deadline on
    # a busy 2-core box fails the experiment), only that this check held on it.
    assert deployment_audit["phase_verdicts"]["baseline"], deployment_audit["reason"]
    assert not any(f"no {ledger}" in n for n in deployment_audit["audit"]["not_judged"]
                   for ledger in ("stock", "mail", "initial_stock"))
    assert rule not in {v["rule"] for v in deployment_audit["audit"]["violations"]}
    code = tmp_path / "code"
    shutil.copytree(TARGETS_DIR / "oscar", code / "targets" / "oscar",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = code / "targets" / "oscar" / patched
    source = path.read_text()
    assert source.count(text) == 1, (patched, text)
    path.write_text(source.replace(text, replacement))
    with oscar_stack(request.session, code) as mutant_stack:
        result = gate(mutant_stack, tmp_path / "mutant", MUTANT_EXPERIMENT)
    assert result.returncode == 1, result.stdout + result.stderr
    journal = json.loads((tmp_path / "mutant" / MUTANT_EXPERIMENT / "journal.json"
                          ).read_text())
    assert journal["phase_verdicts"]["baseline"], journal["reason"]
    assert rule in {v["rule"] for v in journal["audit"]["violations"]}
    failed = failed_cases(tmp_path / "mutant" / "junit.xml")
    assert "ledger audit: nothing lost" in failed[MUTANT_EXPERIMENT]
