"""The API fuzzed in-process from its own OpenAPI document (Schemathesis on the WSGI app,
adapters faked): no 5xx, every answer as documented. And the same fuzzing must FAIL on a
shop with a bug of the kind it guards against (a check that cannot fail is a defect)."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import FailureGroup

from .fakes import fake_app


def fake_shop_app() -> Flask:
    return fake_app()


APP = fake_shop_app()
SCHEMA = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)
CHECKS = [schemathesis.checks.not_a_server_error]


@SCHEMA.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_the_fuzzer_fails_a_shop_that_answers_500(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutant: adding to the cart crashes on a sku the catalog lacks (a KeyError, 500)."""
    from demo_shop.web import shopping

    def crashing_add(sku: str, qty: int):  # the bug: no check that the sku is sold
        return shopping.products_by_sku()[sku]

    monkeypatch.setattr("demo_shop.web.api.add_to_cart", crashing_add)
    broken = schemathesis.openapi.from_wsgi("/api/openapi.json", fake_shop_app())
    operation = broken["/api/cart/items"]["POST"]
    case = operation.Case(body={"sku": "NOT-SOLD", "qty": 1}, headers={})
    with pytest.raises(FailureGroup, match="Server error"):
        case.call_and_validate(checks=CHECKS)


def test_the_fuzzer_fails_an_error_that_is_not_problem_json(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutant: a 404 answered as an HTML page on the JSON API."""
    from demo_shop.web import errors

    monkeypatch.setattr(errors, "wants_json", lambda: False)
    broken = schemathesis.openapi.from_wsgi("/api/openapi.json", fake_shop_app())
    case = broken["/api/orders/{order_id}"]["GET"].Case(path_parameters={"order_id": "nope"})
    with pytest.raises(FailureGroup, match="Content-Type"):
        case.call_and_validate(
            checks=[schemathesis.checks.content_type_conformance])
