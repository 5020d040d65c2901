"""Target files: validated with path and line, ${...} filled or refused, the reference shop's
file true to the shop, skips with a reason, status pages of other formats read, and what a
target gives no ledger for reported as not judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.audit import CHECKS, AuditResult, Ledgers, audit_ledgers
from chaos.experiment import load_experiment
from chaos.run.audit import audit_run
from chaos.target import DEFAULT_TARGET, TARGETS_DIR, TargetError, parse_target, stack_config
from demo_shop.catalog import PRODUCTS
from loadtests.shape import REFERENCE, StatusFormat

STACK = {"SHOP_PORT": "8000", "TOXIPROXY_PORT": "8474", "PAYMENTS_PORT": "8101",
         "INVENTORY_PORT": "8102", "POSTGRES_PORT": "15432", "REDIS_PORT": "16379",
         "POSTGRES_PASSWORD": "pw", "AUDIT_DB_PASSWORD": "apw", "SERVICE_TOKEN": "t"}
OWN = """\
name: my-shop
shop:
  base_url: http://127.0.0.1:9000
status:
  route: /health.json
  format: json
  at: checks
  name_key: component
  state_key: status
  states: {operational: [pass], degraded: [warn], down: [fail]}
toxiproxy:
  api: http://127.0.0.1:8474
dependencies:
  payments: {proxy: stripe_mock, status_name: stripe}
"""


def load(name: str):
    path = TARGETS_DIR / f"{name}.yaml"
    return parse_target(path.read_text(), str(path), variables={}, stack=STACK)


def test_the_reference_file_describes_the_reference_shop() -> None:
    target = load("reference")
    assert target.roles == ["payments", "inventory", "postgres", "redis"]
    assert target.shape() == REFERENCE  # what the load does when no target is named
    assert target.ledgers.initial_stock == {p.sku: p.initial_stock for p in PRODUCTS}
    assert target.shop.base_url == "http://127.0.0.1:8000"
    assert "cc_auditor:apw@127.0.0.1:15432" in (target.ledgers.orders.dsn or "")


def test_the_basket_file_maps_three_roles_to_proxies_of_its_own() -> None:
    target = load("basket")
    assert target.roles == ["payments", "inventory", "postgres"]
    assert {target.proxy(r) for r in target.roles} == {"card_gateway", "stock_api", "orders_db"}
    shape = target.shape()
    assert shape.cart_header == "X-Basket" and shape.cart_named_by == "shop"
    assert shape.pages is not None and not shape.pages.checkout
    assert shape.status.read("card-gateway: OUT\norders-db: UP\nstock: UP\n") == \
        {"payments": "down", "database": "operational", "inventory": "operational"}


def test_a_stack_target_names_its_shop_and_proxies_for_the_stack() -> None:
    config = stack_config(TARGETS_DIR / "basket.yaml")
    assert config.shop_app == "basket" and config.shop_ready_path == "/ready"
    assert [s.name for s in config.proxy_specs()] == ["card_gateway", "stock_api", "orders_db"]
    reference = stack_config(DEFAULT_TARGET)
    assert [s.name for s in reference.proxy_specs()] == ["payments", "inventory", "postgres",
                                                          "redis"]


def test_unknown_keys_are_refused_with_their_path_and_line() -> None:
    text = OWN.replace("  format: json\n", "  format: json\n  colour: red\n") + "extra: 1\n"
    with pytest.raises(TargetError) as raised:
        parse_target(text, "own.yaml", variables={})
    problems = raised.value.problems
    assert "status.colour: unknown key (remove it or check its spelling) (line 7)" in problems
    assert any(p.startswith("extra: unknown key") for p in problems)
    assert str(raised.value).startswith("own.yaml is not a valid target:")


def test_an_unset_variable_is_named_with_its_line_and_the_stack_ones_explained() -> None:
    text = OWN.replace("http://127.0.0.1:8474", "http://127.0.0.1:${MY_TOXIPROXY}")
    with pytest.raises(TargetError) as raised:
        parse_target(text, "own.yaml", variables={}, stack=STACK)
    (problem,) = raised.value.problems
    assert problem.startswith("toxiproxy.api: ${MY_TOXIPROXY} is not declared: list "
                              "MY_TOXIPROXY under secrets:")
    assert problem.endswith("(line 12)")
    with pytest.raises(TargetError) as raised:  # set, but not declared: not read
        parse_target(text, "own.yaml", variables={"MY_TOXIPROXY": "18474"})
    declared = text + "secrets: [MY_TOXIPROXY]\n"
    with pytest.raises(TargetError) as raised:
        parse_target(declared, "own.yaml", variables={})
    assert raised.value.problems[0].startswith("toxiproxy.api: ${MY_TOXIPROXY} is not set")
    filled = parse_target(declared, "own.yaml", variables={"MY_TOXIPROXY": "18474"})
    assert filled.toxiproxy.api == "http://127.0.0.1:18474"
    stacked = OWN.replace("http://127.0.0.1:8474", "http://127.0.0.1:${TOXIPROXY_PORT}")
    with pytest.raises(TargetError) as raised:
        parse_target(stacked, "own.yaml", variables={"TOXIPROXY_PORT": "1"}, stack=STACK)
    assert "given only to a target with stack:" in raised.value.problems[0]


@pytest.mark.parametrize(("change", "says"), [
    (("http://127.0.0.1:9000", "http://shop.example.com"), "must be a loopback http URL"),
    (("states: {operational: [pass], degraded: [warn], down: [fail]}",
      "states: {degraded: [warn]}"), "say which words mean operational and down"),
    (("payments: {proxy", "search: {proxy"), "dependencies.search"),
    (("name: my-shop", "name: My Shop"), "name"),
])
def test_what_cannot_work_is_refused(change: tuple[str, str], says: str) -> None:
    with pytest.raises(TargetError) as raised:
        parse_target(OWN.replace(*change), "own.yaml", variables={})
    assert says in str(raised.value)


def test_an_experiment_the_target_cannot_take_is_skipped_with_its_reason() -> None:
    basket = load("basket")
    own = parse_target(OWN, "own.yaml", variables={})
    _, redis_down = load_experiment("redis-hard-down")
    _, payments_down = load_experiment("payments-hard-down")
    _, lost_capture = load_experiment("payments-capture-answer-lost")
    _, no_breakers = load_experiment(str(Path("chaos/experiments/safeguards/"
                                              "without-breakers.yaml")))
    assert basket.skip_reason(redis_down) == \
        "target basket has no redis dependency (it maps payments, inventory, postgres)"
    assert basket.skip_reason(payments_down) is None
    assert "no fault_admin for payments" in (own.skip_reason(lost_capture) or "")
    assert "safeguards off" in (basket.skip_reason(no_breakers) or "")
    assert load("reference").skip_reason(no_breakers) is None


def test_status_pages_in_other_formats_are_read_in_the_harness_words() -> None:
    own = parse_target(OWN, "own.yaml", variables={}).shape().status
    body = '{"checks": [{"component": "stripe", "status": "FAIL"}, {"component": "disk"}]}'
    assert own.read(body) == {"payments": "down"}  # a component it does not map is left out
    assert own.read('{"checks": [{"component": "stripe", "status": "on fire"}]}') is None
    assert own.read("<html>Service Unavailable</html>") is None
    reference = StatusFormat()
    assert reference.read('{"dependencies": {"cache": {"state": "degraded"}}}') == \
        {"cache": "degraded"}


def _ledgers(given: frozenset[str]) -> Ledgers:
    order = {"order_id": "o1", "idempotency_key": "k1", "status": "confirmed",
             "total_cents": 100, "attempt": 1, "reservation_id": "o1-1", "charge_id": None,
             "stock_committed": True, "updated": 0.0, "created": 0.0}
    return Ledgers([order], [], [], [], 0.0, 10.0, 600.0, {}, given)


def test_a_check_without_its_ledger_is_not_judged_and_never_passed() -> None:
    told = [{"idempotency_key": "k1", "status": 201, "order_status": "confirmed",
             "order_id": "o1", "total_cents": 100, "ts": 1.0}]
    only_orders = audit_ledgers(_ledgers(frozenset({"orders"})), told)
    assert only_orders.clean  # what was judged held...
    assert len(only_orders.not_judged) == 8  # ...and these were not judged at all
    assert any("no charges ledger" in n for n in only_orders.not_judged)
    # Given the charges, the same order's missing capture is a violation.
    with_charges = audit_ledgers(_ledgers(frozenset({"orders", "charges"})), told)
    assert [v.rule for v in with_charges.violations] == ["confirmed order not captured"]
    # Nothing given: no "ledger audit" verdict at all, only what was not judged.
    nothing = AuditResult(not_judged=[f"check {i}" for i in range(len(CHECKS))])
    outcome = audit_run(load_experiment("payments-hard-down")[1].checks, [],
                        lambda evidence: nothing, {}, {}, shop_has_metrics=False)
    assert outcome.results == []
    assert len(outcome.not_judged) == len(CHECKS) + 1
    assert outcome.not_judged[-1].startswith("shop metrics agree")


def test_a_stack_running_another_targets_shop_is_refused(tmp_path: Path) -> None:
    from chaos.errors import StackError
    from chaos.stack import Ports, Stack, StackConfig

    (tmp_path / "stack.json").write_text('{"processes": [], "shop_app": "basket"}')
    reference = Stack(StackConfig(run_dir=tmp_path, ports=Ports()))
    with pytest.raises(StackError, match="runs the basket shop, and the target needs the "
                                         "reference shop"):
        reference.refuse_other_shop()
    Stack(StackConfig(run_dir=tmp_path, ports=Ports(), shop_app="basket")).refuse_other_shop()


def test_the_docs_worked_target_file_is_valid() -> None:
    """docs/targets.md, "Point it at your own checkout": the example a user copies must
    load."""
    readme = (TARGETS_DIR.parent / "docs" / "targets.md").read_text()
    section = readme.split("A worked target file", 1)[1]
    text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    target = parse_target(text, "docs/targets.md", variables={"STAGING_AUDIT_PASSWORD": "x"})
    assert target.stack is None and target.roles == ["payments", "inventory", "postgres"]
    shape = target.shape()
    assert shape.status.read('{"components": [{"name": "card-payments", "status": "outage"}]}') \
        == {"payments": "down"}
    assert shape.pages is not None and shape.pages.markers.banner_selector == ".incident-banner"


def test_surfaces_are_read_as_the_target_says_and_a_wrong_one_is_refused() -> None:
    reference = load("reference")
    formats, missing = reference.surface_formats()
    assert list(formats) == ["status API", "HTML status page", "banner"] and not missing
    page = ("<html><body><table><tr id='dep-payments'><td>Card payments</td><td>down</td>"
            "</tr><tr id='dep-database'><td>Orders</td><td>operational</td></tr></table>")
    assert formats["HTML status page"].read(page) == {"payments": "down",
                                                      "database": "operational"}
    banner = "<html><body><div id='site-banner'><p>Stock checks are slower.</p></div>"
    assert formats["banner"].read(banner)["inventory"] == "down"
    _, basket_missing = load("basket").surface_formats()
    assert "HTML status page" in basket_missing  # not given: not judged, never passed
    text = load_text("reference")
    for change, says in (
            (("banner: \"#site-banner\"", "banner: null"),
             "give its selector as shop.pages.banner"),
            (("      redis: \\bcarts\\b\n", "      mail: \\bmail\\b\n"), "surfaces name mail"),
            (("      payments: card payments\n", "      payments: card (\n"),
             "not a regular expression")):
        with pytest.raises(TargetError) as raised:
            parse_target(text.replace(*change), "reference.yaml", variables={}, stack=STACK)
        assert says in str(raised.value), (change, str(raised.value))


def load_text(name: str) -> str:
    return (TARGETS_DIR / f"{name}.yaml").read_text()


@pytest.mark.parametrize(("change", "says"), [
    (("query: SELECT 1", "query: COPY (SELECT 1) TO PROGRAM 'curl evil.example'"),
     "a ledger query must be one SELECT (this is UNKNOWN)"),
    (("query: SELECT 1", "query: SELECT 1; DROP TABLE orders"),
     "a ledger query must be one SELECT (this is SELECT, DROP)"),
    (("query: SELECT 1", "query: UPDATE orders SET status = 'confirmed'"),
     "a ledger query must be one SELECT (this is UPDATE)"),
    (("@127.0.0.1:5432", "@db.example.com:5432"), "the dsn must name a loopback host"),
    (("@127.0.0.1:5432/shop", "@127.0.0.1:5432/shop?host=10.0.0.7"),
     "the dsn must name a loopback host"),
    (("@127.0.0.1:5432/shop", "@127.0.0.1:5432/shop?service=prod"),
     "the dsn must name a loopback host"),
])
def test_a_hostile_ledger_is_refused_before_anything_runs(change: tuple[str, str],
                                                          says: str) -> None:
    base = OWN + ("ledgers:\n  orders:\n    dsn: postgresql://audit:pw@127.0.0.1:5432/shop\n"
                  "    query: SELECT 1\n")
    assert parse_target(base, "own.yaml", variables={}).ledgers.orders is not None
    with pytest.raises(TargetError) as raised:
        parse_target(base.replace(*change), "own.yaml", variables={})
    assert any(says in p for p in raised.value.problems), raised.value.problems


def test_a_target_file_cannot_read_the_environment_it_does_not_declare() -> None:
    """${HOME} (or a token) in a shared file would leak to the URL it is put in."""
    text = OWN.replace("base_url: http://127.0.0.1:9000",
                       "base_url: http://127.0.0.1:9000/?who=${HOME}")
    with pytest.raises(TargetError) as raised:
        parse_target(text, "own.yaml", variables={"HOME": "/root"})
    assert "${HOME} is not declared" in raised.value.problems[0]


def test_a_hostile_target_file_is_refused_by_the_cli_with_exit_2(tmp_path: Path) -> None:
    """Before any connection: the audit command never reaches the DSN or runs the query."""
    from click.testing import CliRunner

    from chaos.cli import main

    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(OWN + "ledgers:\n  orders:\n"
                       "    dsn: postgresql://postgres:pw@db.example.com:5432/shop\n"
                       "    query: COPY (SELECT 1) TO PROGRAM 'id > /tmp/pwned'\n")
    result = CliRunner().invoke(main, ["audit", "--target", str(hostile)])
    assert result.exit_code == 2, result.output
    assert "the dsn must name a loopback host" in result.output
    assert "a ledger query must be one SELECT" in result.output
    assert "Traceback" not in result.output
