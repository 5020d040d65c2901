"""Fill the resiliency matrix: for each dependency and condition (latency, down), break the
dependency through Toxiproxy, drive each shopper-facing feature a few times with a scripted
shopper, and grade what it saw: works, degraded, graceful error or broken. Each cell is the
worst of its tries, set next to what `expected.yaml` declares.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, create_model

from loadtests.classify import DEGRADED, GRACEFUL, OK, classify

from ..errors import HarnessError
from ..faults import FaultInjector
from ..run.safety import interruptible, signals_held
from ..shop import ShopClient
from ..shopper import Answer, ScriptedShopper
from ..validation import Strict, one_of, problems_of
from ..vocabulary import NETWORK_TOXICS, PROXY_DOWN, REFERENCE_TARGETS, STATUS_NAME
from ..waiting import poll

EXPECTED_FILE = Path(__file__).with_name("expected.yaml")
FEATURES = ("browse", "cart", "checkout", "order_status", "status_page")
LEVELS = ("works", "degraded", "graceful error", "broken")
CONDITIONS = ("degraded", "down")
SLOW_SECONDS = 1.0  # an answer that took longer works, but degraded
DEADLINE = 6.0  # past this an answer is broken (the shop's checkout deadline is 5 s)


def grade(status: int | None, headers: Any, body: str, elapsed: float,
          error: str | None = None) -> str:
    """One answer as a matrix level."""
    return level_of(classify(status, headers or {}, body, elapsed, DEADLINE, error).cls,
                    elapsed)


def level_of(cls: str, elapsed: float) -> str:
    """A response class (and how long the answer took) as a matrix level."""
    if cls == OK:
        return "degraded" if elapsed > SLOW_SECONDS else "works"
    if cls == DEGRADED:
        return "degraded"
    if cls == GRACEFUL:
        return "graceful error"
    return "broken"


def worst(levels: list[str]) -> str:
    """The worst level seen (broken over graceful error over degraded over works)."""
    return max(levels, key=LEVELS.index) if levels else "broken"


@dataclass(slots=True)
class Cell:
    """One feature under one condition of one dependency."""

    observed: str
    expected: str
    tries: list[str] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        """Observed worse than expected."""
        return LEVELS.index(self.observed) > LEVELS.index(self.expected)


@dataclass(slots=True)
class MatrixResult:
    """Every cell, by dependency, condition and feature."""

    shop: str
    cells: dict[str, dict[str, dict[str, Cell]]] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        """'payments down: checkout broken (expected degraded)' for each cell worse."""
        return [f"{dep} {cond}: {feat} {cell.observed} (expected {cell.expected})"
                for dep, conds in self.cells.items() for cond, feats in conds.items()
                for feat, cell in feats.items() if cell.worse]

    def as_json(self) -> dict[str, Any]:
        """For matrix.json."""
        return {"shop": self.shop, "failures": self.failures, "cells": {
            dep: {cond: {feat: {"observed": c.observed, "expected": c.expected,
                                "tries": c.tries} for feat, c in feats.items()}
                  for cond, feats in conds.items()}
            for dep, conds in self.cells.items()}}


Level = Annotated[str, AfterValidator(one_of(LEVELS))]


class Condition(Strict):
    """How a dependency is broken for a column of the matrix."""

    toxic: Annotated[str, AfterValidator(one_of((*NETWORK_TOXICS, PROXY_DOWN)))]
    attributes: dict[str, int] = Field(default_factory=dict)


def _every(name: str, keys: tuple[str, ...], value: Any) -> type[BaseModel]:
    """A model with one required field per key (the vocabulary's words, spelled once)."""
    fields: dict[str, Any] = {key: (value, ...) for key in keys}
    return create_model(name, __base__=Strict, **fields)


Conditions = _every("Conditions", CONDITIONS, Condition)
Features = _every("Features", FEATURES, Level)
Row = _every("Row", CONDITIONS, Features)
Rows = _every("Rows", REFERENCE_TARGETS, Row)


class Expectations(Strict):
    """The expected file: how each condition is made, and the level every feature should
    keep under it, for every dependency."""

    conditions: Conditions  # type: ignore[valid-type]
    expected: Rows  # type: ignore[valid-type]

    def condition(self, cond: str) -> Condition:
        """How to make one condition."""
        made: Condition = getattr(self.conditions, cond)
        return made

    def level(self, dep: str, cond: str, feature: str) -> str:
        """The level a feature should keep."""
        return str(getattr(getattr(getattr(self.expected, dep), cond), feature))


def load_expected(path: Path = EXPECTED_FILE) -> Expectations:
    """The expected file, checked: every dependency, condition and feature, known levels."""
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise HarnessError(f"cannot read the matrix expectations {path}: {exc}") from exc
    try:
        return Expectations.model_validate(data)
    except ValidationError as exc:
        raise HarnessError(f"{path} is not a valid matrix file:\n  "
                           + "\n  ".join(problems_of(exc, text))) from None


# ---- the features, as a shopper uses them ------------------------------------------------------

class Shopper(ScriptedShopper):
    """The scripted shopper, each feature it uses graded as a matrix level."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, DEADLINE)

    def _try(self, method: str, path: str, **kwargs: Any) -> tuple[str, Answer]:
        answer = self.request(method, path, **kwargs)
        return level(answer), answer

    def browse(self, sku: str) -> str:
        """The catalog page and a product page."""
        return worst([self._try("GET", "/")[0], self._try("GET", f"/products/{sku}")[0]])

    def cart(self, sku: str) -> str:
        """Add to the cart and look at it."""
        added = level(self.add(sku))
        return worst([added, self._try("GET", "/api/cart")[0]])

    def buy(self, sku: str) -> str:
        """The checkout feature: fill a fresh cart and check out."""
        self.new_cart()
        added = level(self.add(sku))
        if added in ("graceful error", "broken"):
            return added
        return level(self.pay())

    def order_status(self, order_id: str) -> str:
        """Read back an order placed before the fault."""
        return self._try("GET", f"/api/orders/{order_id}")[0]

    def status_page(self, dependency: str) -> str:
        """The status page answers and names the dependency as not operational."""
        level, page = self._try("GET", "/status")
        if page.response is None or level in ("graceful error", "broken"):
            return level
        api_level, api = self._try("GET", "/api/status")
        if api.response is None or api_level in ("graceful error", "broken"):
            return api_level
        state = api.json()["dependencies"][dependency]["state"]
        return level if state != "operational" else "degraded"  # answers, but says nothing

    def place_order(self, sku: str) -> str | None:
        """An order to read back later (before any fault); None if the shop cannot take one
        (a shop that did not recover from the previous cell)."""
        self.add(sku)
        answer = self.pay()
        return str(answer.json()["order_id"]) if answer.status == 201 else None


def level(answer: Answer) -> str:
    """A shopper's answer as a matrix level."""
    return level_of(answer.verdict.cls, answer.elapsed)


# ---- running it ---------------------------------------------------------------------------------

Progress = Callable[[str], None]


def _wait(condition: Callable[[], bool], seconds: float, step: float = 0.25) -> bool:
    return bool(poll(condition, seconds, step, ignore=(httpx.HTTPError, ValueError, KeyError)))


def run(base_url: str, toxiproxy: FaultInjector, expected: Expectations, shop: str,
        tries: int = 3, progress: Progress = print) -> MatrixResult:
    """Every dependency x condition x feature; faults are rolled back whatever happens."""
    result = MatrixResult(shop)
    sku = "LAMP-001"
    if ShopClient(base_url).wait_ready(60) is None:
        raise HarnessError(f"the shop at {base_url} is not ready (see `make status`)")
    first = Shopper(base_url)
    order_id = first.place_order(sku)
    first.close()
    if order_id is None:
        raise HarnessError("the shop could not take an order before the matrix; is it healthy?")
    with interruptible():
        for dep in REFERENCE_TARGETS:
            result.cells[dep] = {}
            for cond in CONDITIONS:
                result.cells[dep][cond] = _one(base_url, toxiproxy, expected, dep, cond, sku,
                                               order_id, tries, progress)
    return result


def _one(base_url: str, toxiproxy: FaultInjector, expected: Expectations, dep: str,
         cond: str, sku: str, order_id: str, tries: int,
         progress: Progress) -> dict[str, Cell]:
    name = STATUS_NAME[dep]
    spec = expected.condition(cond)
    shopper, shop = Shopper(base_url), ShopClient(base_url)
    try:
        # A shop that did not come back from the previous cell is judged as it is.
        shop.wait_ready(30)
        progress(f"{dep} {cond}: injecting")
        try:
            if spec.toxic == PROXY_DOWN:
                toxiproxy.disable(dep)
            else:
                toxiproxy.inject(dep, spec.toxic, name="matrix", stream="downstream",
                                 attributes=dict(spec.attributes))
            # Let the shop notice (breakers, status) before judging, as a shopper would.
            _wait(lambda: shop.state(name) != "operational", 10)
            seen: dict[str, list[str]] = {f: [] for f in FEATURES}
            for _ in range(tries):
                seen["browse"].append(shopper.browse(sku))
                seen["cart"].append(shopper.cart(sku))
                seen["checkout"].append(shopper.buy(sku))
                seen["order_status"].append(shopper.order_status(order_id))
                seen["status_page"].append(shopper.status_page(name))
        finally:
            with signals_held():
                toxiproxy.sweep()
        progress(f"{dep} {cond}: rolled back, waiting for recovery")
        _wait(lambda: shop.state(name) == "operational", 30)
        return {f: Cell(worst(seen[f]), expected.level(dep, cond, f), seen[f])
                for f in FEATURES}
    finally:
        shopper.close()


# ---- rendering ---------------------------------------------------------------------------------

_MARK = {"works": "✅ works", "degraded": "🟡 degraded", "graceful error": "🟠 graceful error",
         "broken": "❌ broken"}


def render_markdown(result: MatrixResult) -> str:
    """The matrix as a Markdown table, observed (expected when it differs)."""
    lines = [f"# Resiliency matrix — {result.shop} shop", "",
             "| dependency | condition | " + " | ".join(FEATURES) + " |",
             "|---|---|" + "---|" * len(FEATURES)]
    for dep, conds in result.cells.items():
        for cond, feats in conds.items():
            cells = []
            for feat in FEATURES:
                c = feats[feat]
                text = _MARK[c.observed]
                if c.observed != c.expected:
                    text += f" (expected {c.expected}{' — WORSE' if c.worse else ''})"
                cells.append(text)
            lines.append(f"| {dep} | {cond} | " + " | ".join(cells) + " |")
    lines += ["", f"{len(result.failures)} cells worse than expected."]
    lines += [f"- {f}" for f in result.failures]
    return "\n".join(lines) + "\n"


_COLOURS = {"works": "#d8f5d0", "degraded": "#fff3b0", "graceful error": "#ffd8a8",
            "broken": "#ffb3b3"}


def render_html(result: MatrixResult) -> str:
    """The matrix as a coloured HTML table."""
    head = "".join(f"<th>{html.escape(f.replace('_', ' '))}</th>" for f in FEATURES)
    rows = []
    for dep, conds in result.cells.items():
        for cond, feats in conds.items():
            tds = []
            for feat in FEATURES:
                c = feats[feat]
                note = "" if c.observed == c.expected else \
                    f"<br><small>expected {html.escape(c.expected)}</small>"
                border = "outline:3px solid #c00;" if c.worse else ""
                tds.append(f'<td style="background:{_COLOURS[c.observed]};{border}" '
                           f'title="tries: {html.escape(", ".join(c.tries))}">'
                           f"{html.escape(c.observed)}{note}</td>")
            rows.append(f"<tr><th>{dep}</th><td>{cond}</td>{''.join(tds)}</tr>")
    failures = "".join(f"<li>{html.escape(f)}</li>" for f in result.failures)
    return (f"<!doctype html><meta charset='utf-8'><title>Resiliency matrix</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{padding:6px 10px;border:1px solid #ccc}}"
            f"table{{border-collapse:collapse}}</style>"
            f"<h1>Resiliency matrix — {html.escape(result.shop)} shop</h1>"
            f"<table><tr><th>dependency</th><th>condition</th>{head}</tr>{''.join(rows)}</table>"
            f"<p>{len(result.failures)} cells worse than expected.</p><ul>{failures}</ul>")


def write(result: MatrixResult, out: Path) -> dict[str, Path]:
    """matrix.md, matrix.html and matrix.json in out."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "matrix.md", "html": out / "matrix.html",
             "json": out / "matrix.json"}
    paths["markdown"].write_text(render_markdown(result))
    paths["html"].write_text(render_html(result))
    paths["json"].write_text(json.dumps(result.as_json(), indent=2))
    return paths
