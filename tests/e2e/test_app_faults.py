"""Application-level faults in the services, and what the shop makes of them (the whole
stack)."""

from __future__ import annotations

import json

import httpx
import pytest

from chaos.shopper import api_checkout
from chaos.stack import Stack
from loadtests.classify import DEGRADED, OK

pytestmark = pytest.mark.e2e


@pytest.fixture
def app_faults(stack: Stack, faults):
    """The stack's application-fault client; everything is cleared after."""
    return stack.app_faults


def test_payments_answering_503_turns_checkouts_into_payment_pending(
    stack: Stack, app_faults,
) -> None:
    app_faults.inject("payments", "app_errors", {"percent": 100, "status": 503})
    answer = api_checkout(stack.config.shop_url, 5.0)
    assert answer.verdict.cls == DEGRADED and json.loads(answer.body)["status"] == \
        "payment_pending"


def test_a_capture_whose_answer_is_lost_is_found_and_charged_once(
    stack: Stack, app_faults,
) -> None:
    app_faults.inject("payments", "app_capture_lost", {"percent": 100})
    answer = api_checkout(stack.config.shop_url, 5.0)
    assert answer.verdict.cls == OK, answer.body
    order = json.loads(answer.body)
    charges = httpx.get(f"{stack.config.payments_url}/v1/charges",
                        params={"order_id": order["order_id"]}, timeout=5).json()["charges"]
    assert [c["status"] for c in charges] == ["captured"]
