"""Typed, validated YAML for the harness's files (experiments, the matrix expectations):
strict models, durations in words, and every validation error said as what to fix, where,
on which line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def one_of(words: tuple[str, ...]) -> Callable[[str], str]:
    """A validator: the value is one of the vocabulary's words."""

    def check(value: str) -> str:
        if value not in words:
            raise ValueError(f"must be one of {', '.join(words)} (not {value!r})")
        return value

    return check


def to_seconds(value: Any) -> Any:
    """'90s', '1.5m', '250ms' or a number -> seconds; anything else is left for the type error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: use e.g. 30s, 2m or 500ms")
        number, unit = float(match.group(1)), match.group(2) or "s"
        return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    return value


Seconds = Annotated[float, BeforeValidator(to_seconds), Field(ge=0)]


class Strict(BaseModel):
    """Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    """Path (keys and indexes) -> 1-based line, from the YAML node tree."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
                lines[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _friendly(error: Any) -> str:
    """pydantic's message, said as what to fix."""
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key (remove it or check its spelling)"
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
                "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {sign} {bound}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    if kind == "too_short":
        return "must not be empty"
    return str(error["msg"]).removeprefix("Value error, ")


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line a key path of a YAML text is on (or its nearest parent's)."""
    return _nearest_line(_line_map(text), loc)


def problems_of(exc: ValidationError, text: str) -> list[str]:
    """Each validation error of a YAML file, as "where: what to fix (line n)"."""
    lines = _line_map(text)
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and (
            p.startswith(("function-", "literal")) or p == "[key]")))
        line = _nearest_line(lines, loc)
        problems.append(f"{_format_loc(loc)}: {_friendly(error)}"
                        + (f" (line {line})" if line else ""))
    return problems


