"""A target that describes a shop nobody here wrote: its launch, its own API (bodies as
templates, answers read by paths, money in decimals, outcomes by status or body field),
cookie and templated-header carts, an order it will not show, no status page; each field's
errors name the field and line; and the classifier judging such a shop's answers."""

from __future__ import annotations

import json

import pytest

from chaos.target import TARGETS_DIR, TargetError, parse_target
from loadtests.classify import (
    DECLINED,
    DEGRADED,
    FALSE_DECLINE,
    OK,
    UNGRACEFUL,
    Expect,
    classify,
)
from loadtests.shape import Api, Outcome, ShopShape, at_path, cents, fill

STACK = {name: "1" for name in (
    "SHOP_PORT", "TOXIPROXY_PORT", "PAYMENTS_PORT", "INVENTORY_PORT", "POSTGRES_PORT",
    "REDIS_PORT", "PROXY_PAYMENTS_PORT", "PROXY_INVENTORY_PORT", "PROXY_POSTGRES_PORT",
    "PROXY_REDIS_PORT", "MAIL_PORT", "SMTP_PORT", "PROXY_MAIL_PORT")} | {
        "POSTGRES_PASSWORD": "pw", "REDIS_PASSWORD": "rpw", "SHOP_SECRET_KEY": "k",
        "SHOP_DB_PASSWORD": "dbpw", "PROJECT_ROOT": "/p", "RUN_DIR": "/r", "CODE_ROOT": "/c",
        "AUDIT_DB_PASSWORD": "apw", "SERVICE_TOKEN": "t"}
OWN = """\
name: foreign
shop:
  base_url: http://127.0.0.1:9000
  routes: {products: /p/, cart: /b/, cart_items: /b/add/, checkout: /co/, order: null,
           ready: /}
  cart: {named_by: shopper, header: Session-Id, value: "SID:ANON:{host}:{id}"}
  api:
    money: decimal
    products: {at: results, id: id, ref: url}
    cart: {ref: url, total: total_incl_tax}
    add: {url: "{product}", quantity: "{qty}"}
    checkout:
      body: {basket: "{cart}", guest_email: "{email}", payment: {card: "{card}"}}
      order_id: number
      total: total_incl_tax
      outcomes:
        - {status: 200, field: status, equals: Payment Declined, means: declined}
        - {status: 200, means: confirmed}
toxiproxy: {api: "http://127.0.0.1:8474"}
dependencies:
  payments: {proxy: pay}
"""


def test_the_oscar_file_is_a_valid_target_with_no_inventory_role() -> None:
    path = TARGETS_DIR / "oscar.yaml"
    target = parse_target(path.read_text(), str(path), variables={}, stack=STACK)
    assert target.stack == "command" and target.launch is not None
    assert target.launch.database is not None and target.launch.database.name == "oscar"
    assert target.roles == ["payments", "postgres", "redis", "mail"]
    assert target.ledgers.mail is not None and target.ledgers.mail.order
    assert target.status is None and target.shop.metrics is None
    shape = target.shape()
    assert shape.cart_named_by == "cookie" and not shape.order_readable
    assert shape.api.declared and shape.api.money == "decimal"
    assert shape.status.route == "" and shape.pages is not None
    assert shape.pages.markers.banner_selector == ""
    assert target.unjudgeable("time_to_communicate") is not None
    assert target.unjudgeable("ungraceful") is None
    assert "/p/.venv-oscar/bin/gunicorn" in target.launch.spec().command[0]
    assert target.launch.spec().cwd == "/c/targets/oscar"  # a mutant's copy runs its code


def test_a_declared_api_travels_to_the_load_and_back() -> None:
    shape = parse_target(OWN, variables={}).shape()
    assert shape.cart_value == "SID:ANON:{host}:{id}" and shape.order == ""
    again = ShopShape.from_file(shape.to_file(__import__("pathlib").Path(
        __import__("tempfile").mkdtemp()) / "shape.json"))
    assert again == shape
    assert again.api.outcome(200, {"status": "Payment Declined"}) == "declined"
    assert again.api.outcome(200, {"status": "new"}) == "confirmed"
    assert again.api.outcome(503, {"detail": "down"}) is None


@pytest.mark.parametrize(("change", "field"), [
    ('  cart: {named_by: shopper, header: Session-Id, value: "SID:ANON:{host}:{id}"}',
     "shop.cart.value"),
    ("      order_id: number", "shop.api.checkout.order_id"),
    ("        - {status: 200, means: confirmed}", "shop.api.checkout"),
    ("    money: decimal", "shop.api.money"),
])
def test_each_api_field_error_names_its_field_and_line(change: str, field: str) -> None:
    broken = {
        "shop.cart.value": '  cart: {named_by: shopper, header: Session-Id, value: "SID"}',
        "shop.api.checkout.order_id": "      order_ids: number",
        "shop.api.checkout": "        - {status: 200, means: pending}",
        "shop.api.money": "    money: euros",
    }[field]
    assert change in OWN
    with pytest.raises(TargetError) as caught:
        parse_target(OWN.replace(change, broken), variables={})
    message = str(caught.value)
    assert field in message and "line" in message


def test_launch_goes_with_stack_command() -> None:
    with pytest.raises(TargetError, match="stack: command and launch go together"):
        parse_target("stack: command\n" + OWN, variables={})
    with pytest.raises(TargetError, match=r"launch\.command"):
        parse_target("stack: command\nlaunch: {command: []}\n" + OWN, variables={},
                     stack=STACK)
    with pytest.raises(TargetError, match="outcomes must say which answer means confirmed"):
        parse_target(OWN.replace("means: confirmed", "means: payment_pending"), variables={})
    with pytest.raises(TargetError, match="field and equals together"):
        parse_target(OWN.replace("field: status, equals: Payment Declined, ", "field: status, "),
                     variables={})


def test_the_outcome_words_are_the_loads() -> None:
    from typing import get_args

    from chaos.target import OutcomeRule
    from loadtests.shape import MEANINGS

    assert get_args(OutcomeRule.model_fields["means"].annotation) == MEANINGS


def test_templates_fill_values_and_keep_their_types() -> None:
    body = fill({"basket": "{cart}", "q": "{qty}", "card": "{card}", "n": "{card.number}",
                 "who": "sam-{key}@example.com", "list": ["{qty}", 3]},
                {"cart": "http://x/b/1/", "qty": 2, "card": {"number": "4242"}, "key": "k1"})
    assert body == {"basket": "http://x/b/1/", "q": 2, "card": {"number": "4242"},
                    "n": "4242", "who": "sam-k1@example.com", "list": [2, 3]}
    with pytest.raises(KeyError):
        fill({"b": "{cart}"}, {})


def test_paths_and_money() -> None:
    data = {"results": [{"id": 3, "url": "u3"}], "total": "19.98"}
    assert at_path(data, "results.0.url") == "u3" and at_path(data, "") is data
    assert at_path(data, "results.5") is None and at_path(data, "nope.deeper") is None
    assert cents("19.98", "decimal") == 1998 and cents(19.98, "decimal") == 1998
    assert cents("19.985", "decimal") is None and cents("x", "decimal") is None
    assert cents(1998, "cents") == 1998 and cents("1998", "cents") is None
    assert cents(True, "cents") is None


OSCAR_API = Api(products_at="", product_id="id", product_ref="url", cart_ref="url",
                cart_total="total_incl_tax", money="decimal", order_id="number",
                order_status="status", order_total="total_incl_tax",
                outcomes=(Outcome("declined", 200, "status", "Payment Declined"),
                          Outcome("confirmed", 200)), declared=True)
JSON = {"Content-Type": "application/json"}


def judge(status: int, body: object, **expect: object):
    return classify(status, JSON, json.dumps(body), 0.1, 6.0,
                    expect=Expect("checkout", api=OSCAR_API, host="127.0.0.1:9000",
                                  **expect))  # type: ignore[arg-type]


def test_a_declared_checkout_is_judged_by_its_outcome_rules() -> None:
    order = {"number": "100001", "status": "new", "total_incl_tax": "19.98",
             "url": "http://127.0.0.1:9000/api/orders/1/"}
    assert judge(200, order, total_cents=1998).cls == OK
    assert judge(200, order, total_cents=2000).reason == "checkout_total_differs"
    assert judge(200, {**order, "number": ""}).reason == "checkout_2xx_without_order"
    assert judge(200, {**order, "total_incl_tax": "lots"}).reason == "checkout_2xx_bad_total"
    declined = {**order, "status": "Payment Declined"}
    assert judge(200, declined, decline_card=True).cls == DECLINED
    assert judge(200, declined, decline_card=False).cls == FALSE_DECLINE
    # No rule matches an error: the graceful-failure contract judges it (no request id).
    assert judge(503, {"detail": "x"}).reason == "no_request_id"


def test_a_declared_pending_outcome_is_degraded() -> None:
    api = Api(order_id="number", order_total="total", money="decimal", declared=True,
              outcomes=(Outcome("payment_pending", 202), Outcome("confirmed", 200)))
    verdict = classify(202, JSON, json.dumps({"number": "1", "total": "5.00"}), 0.1, 6.0,
                       expect=Expect("checkout", api=api))
    assert verdict.cls == DEGRADED


def test_declared_shapes_of_products_cart_and_order() -> None:
    def shape(kind: str, body: object) -> str:
        return classify(200, JSON, json.dumps(body), 0.1, 6.0,
                        expect=Expect(kind, api=OSCAR_API, host="127.0.0.1:9000")).reason  # type: ignore[arg-type]

    assert shape("products", [{"id": 1, "url": "http://127.0.0.1:9000/api/products/1/"}]) == ""
    assert shape("products", [{"id": 1}]) == "products_shape"
    assert shape("products", []) == "products_shape"
    assert shape("cart", {"url": "u", "total_incl_tax": "0.00"}) == ""
    assert shape("cart", {"url": "u", "total_incl_tax": None}) == "cart_shape"
    assert shape("order", {"number": "100001"}) == ""
    assert shape("order", {"id": 1}) == "order_shape"


def test_the_shops_own_address_is_no_leak_but_another_is() -> None:
    body = {"url": "http://127.0.0.1:9000/api/products/1/", "id": 1}
    own = classify(200, JSON, json.dumps([body]), 0.1, 6.0,
                   expect=Expect("products", api=OSCAR_API, host="127.0.0.1:9000"))
    assert own.cls == OK
    other = {"url": "http://127.0.0.1:5432/api/products/1/", "id": 1}
    leaked = classify(200, JSON, json.dumps([other]), 0.1, 6.0,
                      expect=Expect("products", api=OSCAR_API, host="127.0.0.1:9000"))
    assert (leaked.cls, leaked.reason) == (UNGRACEFUL, "internals_in_body")


def test_a_prepare_step_that_fails_starts_no_shop_and_says_where_to_look(tmp_path) -> None:
    from chaos.errors import StackError
    from chaos.stack import Ports, Stack, StackConfig
    from chaos.stack.config import LaunchSpec

    config = StackConfig(run_dir=tmp_path, ports=Ports.free(), shop_app="command",
                         launch=LaunchSpec(command=["/bin/true"], prepare=[["/bin/false"]],
                                           cwd=str(tmp_path)))
    (tmp_path / "logs").mkdir()
    with pytest.raises(StackError, match=r"prepare step /bin/false exited 1; see .*shop-"):
        Stack(config)._start_shop()
    config.launch = LaunchSpec(command=["/bin/true"], prepare=[["/no/such/binary"]],
                               cwd=str(tmp_path))
    with pytest.raises(StackError, match="could not run"):
        Stack(config)._start_shop()
    assert not (tmp_path / "shop-prepared").exists()  # tried again at the next start
    config.launch = None
    with pytest.raises(StackError, match="gives no launch"):
        Stack(config)._start_shop()


WARMED_SHOP = """\
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("seen", "a") as seen:
            seen.write(self.path + "\\n")
        self.send_response(500 if self.path == "/boom" else 200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_launch_warms_its_pages_in_order_and_a_warm_up_error_starts_no_shop(
        tmp_path) -> None:
    import sys

    from chaos.errors import StackError
    from chaos.stack import Ports, Stack, StackConfig
    from chaos.stack.config import LaunchSpec
    from chaos.stack.processes import port_in_use

    (tmp_path / "shop.py").write_text(WARMED_SHOP)
    ports = Ports.free()

    def stack(*warm: str) -> Stack:
        launch = LaunchSpec(command=[sys.executable, "shop.py", str(ports.shop)],
                            warm=list(warm), cwd=str(tmp_path), ready_timeout=20)
        return Stack(StackConfig(run_dir=tmp_path / "run", ports=ports, shop_app="command",
                                 ready_route="/ready", launch=launch))

    warmed = stack("/catalogue/", "/p_1/", "/p_2/")
    warmed.up(only=("shop",))
    try:
        assert (tmp_path / "seen").read_text().split("\n")[-4:-1] == [
            "/catalogue/", "/p_1/", "/p_2/"]
    finally:
        warmed.down()
    broken = stack("/p_1/", "/boom")
    with pytest.raises(StackError, match=r"warm-up page /boom answered 500; see .*shop\.log"):
        broken.up(only=("shop",))
    assert not port_in_use(ports.shop)  # the shop it started, it stopped


def test_a_warm_up_page_is_a_path() -> None:
    with pytest.raises(TargetError, match=r"launch\.warm"):
        parse_target("stack: command\nlaunch: {command: [x], warm: [catalogue/]}\n" + OWN,
                     variables={})
