"""Hypothesis on the two other doors: the storefront's HTML forms (whatever a shopper's
browser or a bot posts) and experiment files (whatever a user writes). Neither may answer
with a traceback: a form gets a page or a clear 400, a file a clear ExperimentError."""

from __future__ import annotations

import yaml
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.experiment import ExperimentError, parse_experiment

from .fakes import fake_app

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _app() -> Flask:
    app = fake_app()
    app.config["WTF_CSRF_ENABLED"] = False  # the token is tested elsewhere; fuzz what is behind it
    return app


APP = _app()
field_text = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", "1", "99", "100", "-1", "²", "٣", "1e3", "4242424242424242", "A", "%00", "🛒"]))


def _assert_no_traceback(response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:500]
    assert "Traceback" not in body and "File \"" not in body


@FUZZ
@given(sku=field_text, qty=field_text, extra=st.dictionaries(st.text(max_size=8), field_text,
                                                               max_size=3))
def test_the_add_to_cart_form_never_answers_500(sku: str, qty: str, extra: dict) -> None:
    client = APP.test_client()
    _assert_no_traceback(client.post("/cart/add", data={**extra, "sku": sku, "qty": qty}))


@FUZZ
@given(key=field_text, number=field_text, month=field_text, year=field_text, cvc=field_text)
def test_the_checkout_form_never_answers_500(key: str, number: str, month: str, year: str,
                                              cvc: str) -> None:
    client = APP.test_client()
    client.post("/cart/add", data={"sku": "A", "qty": "1"})
    answer = client.post("/checkout", data={"idempotency_key": key, "card_number": number,
                                            "exp_month": month, "exp_year": year, "cvc": cvc})
    _assert_no_traceback(answer)
    assert answer.status_code in (303, 400, 402, 409, 503)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=True), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20)
KEYS = ["title", "description", "tags", "load", "steady_state", "method", "rollbacks",
        "hypotheses", "target", "toxic", "at", "duration", "attributes", "stop_when",
        "users", "profile", "probes", "kind", "audit", "recovery", "shop"]


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(KEYS), yaml_values, max_size=8))
def test_any_experiment_document_loads_or_says_what_to_fix(doc: dict) -> None:
    text = yaml.safe_dump(doc)
    try:
        parse_experiment(text, "fuzzed.yaml")
    except ExperimentError as exc:
        message = str(exc)
        assert message and "Traceback" not in message and "fuzzed.yaml" in message


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_as_an_experiment_file_is_a_clear_error(text: str) -> None:
    try:
        parse_experiment(text, "fuzzed.yaml")
    except ExperimentError as exc:
        assert "fuzzed.yaml" in str(exc)
