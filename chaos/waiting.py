"""Waiting for a condition with a deadline: the one poll loop the harness, the benchmarks
and the tests use (never a bare sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], within: float, every: float = 0.1,
         ignore: tuple[type[BaseException], ...] = ()) -> T | None:
    """The first value other than None or False that `condition` returns within `within`
    seconds (a measured 0.0 counts), asked every `every` seconds and once more at the
    deadline; None when there was none. Errors of the `ignore` types count as "not yet" (a
    server still starting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = condition()
        except ignore:
            value = None  # type: ignore[assignment]
        if value is not None and value is not False:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(every, left))


def eventually(condition: Callable[[], T], within: float, what: str, every: float = 0.1,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """As `poll`, but a condition never met raises TimeoutError naming `what`."""
    value = poll(condition, within, every, ignore)
    if value is None:
        raise TimeoutError(f"not within {within:g} s: {what}")
    return value
