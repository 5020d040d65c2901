"""The shop's app factory: `create_app()` builds a fresh app; importing starts nothing."""

from __future__ import annotations

import copy
from typing import Any

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from flask_openapi3 import Info, OpenAPI
from flask_wtf.csrf import CSRFProtect

from .config import SafeguardPolicy, check_secrets, settings_from_env
from .health import HealthBoard
from .hosts import LoopbackHosts, also_ports
from .metrics import render_latest
from .resilience import Deadline
from .web import api, pages
from .web.errors import register_error_handlers
from .web.fallbacks import CheckoutGate, mark_degraded
from .web.requestlog import configure_logging, init_request_log
from .web.schemas import Problem, problem_content, validation_problem
from .web.shopping import remember_cart, shop
from .wiring import Shop, build_shop


class BoundedJSON(DefaultJSONProvider):
    """Flask's JSON, where a body nested deeper than the parser goes is unreadable JSON
    (400), not a RecursionError (500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError as exc:
            raise ValueError("the JSON is nested too deeply") from exc


def described(app: OpenAPI) -> dict[str, Any]:
    """flask-openapi3's document, made valid and true: no empty security schemes, and the
    400 it adds to every operation is the problem+json the shop answers."""
    doc = copy.deepcopy(app.api_doc)
    components = doc.get("components", {})
    if not components.get("securitySchemes"):
        components.pop("securitySchemes", None)
    for operations in doc["paths"].values():
        for operation in operations.values():
            bad = operation.get("responses", {}).get("400")
            if bad is not None and "application/json" in bad.get("content", {}):
                bad["content"] = problem_content()
    return doc


def safeguards(app: Flask) -> SafeguardPolicy:
    """The app's safeguard policy (every safeguard on unless the settings say otherwise)."""
    policy: SafeguardPolicy = app.config.get("SAFEGUARDS") or SafeguardPolicy()
    return policy


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the shop. test_config overrides settings; a "SHOP" entry replaces the wiring."""
    app = OpenAPI(
        __name__, info=Info(title="checkout-chaos reference shop", version="1.0.0"),
        doc_ui=False,
        validation_error_status=400, validation_error_model=Problem,
        validation_error_callback=validation_problem)
    app.json = BoundedJSON(app)
    app.config.from_mapping(settings_from_env())
    if test_config:
        app.config.update(test_config)
    check_secrets(app.config)
    configure_logging()

    wired: Shop = app.config.get("SHOP") or build_shop(app.config)
    app.extensions["shop"] = wired
    # Only a loopback Host of the shop's port: a page elsewhere reaching it by a name of
    # its own (DNS rebinding) is refused before any handler runs.
    app.wsgi_app = LoopbackHosts(app.wsgi_app, also_ports())  # type: ignore[method-assign]

    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)  # the API takes JSON only, which a cross-site form cannot send
    init_request_log(app)
    app.register_api(api.bp)

    @app.get("/api/openapi.json", doc_ui=False)
    def openapi_document() -> Response:
        """The API described by the models that validate it (OpenAPI 3.1), made once."""
        if "openapi" not in app.extensions:
            app.extensions["openapi"] = described(app)
        return jsonify(app.extensions["openapi"])

    app.register_blueprint(pages.bp)
    pages.register_filters(app)
    register_error_handlers(app)
    app.after_request(remember_cart)
    app.after_request(mark_degraded)
    if safeguards(app).on("shedding"):
        app.extensions["checkout_gate"] = CheckoutGate(
            app.config["CHECKOUT_SLOTS"], app.config["CHECKOUT_QUEUE_SECONDS"])

    @app.before_request
    def _start_background() -> None:
        shop().start_background()

    @app.context_processor
    def _banner() -> dict[str, Any]:
        snapshot = shop().board.snapshot()
        troubled = [s for s in snapshot.values() if s.state != "operational"]
        return {"banner": troubled, "overall": HealthBoard.overall(snapshot)}

    @app.get("/metrics", doc_ui=False)
    def metrics() -> Response:
        body, content_type = render_latest()
        return Response(body, content_type=content_type)

    @app.get("/healthz", doc_ui=False)
    def healthz() -> Response:
        """Alive, and which safeguards are off (the harness checks it runs the shop asked)."""
        return jsonify(status="ok", safeguards_off=sorted(safeguards(app).off))

    @app.get("/readyz", doc_ui=False)
    def readyz() -> Response | tuple[Response, int]:
        """Ready when the orders database answers: the one thing no page can do without."""
        try:
            shop().orders.products(Deadline(1.0))
        except Exception:  # any failure means not ready; the reason is on /status
            return jsonify(status="not ready"), 503
        return jsonify(status="ready")

    return app
