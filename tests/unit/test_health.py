"""The health board: states from a window of outcomes, and clearing after recovery."""

from __future__ import annotations

from demo_shop.health import DEGRADED, DOWN, OPERATIONAL, HealthBoard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_failures_in_a_row_is_down_and_says_so_in_plain_words() -> None:
    clock = Clock()
    board = HealthBoard(window_seconds=5, clock=clock)
    for _ in range(3):
        board.record("payments", ok=False, duration=0.01)
    status = board.snapshot()["payments"]
    assert status.state == DOWN and "Card payments" in status.message
    assert HealthBoard.overall(board.snapshot()) == "major_outage"


def test_an_occasional_failure_is_degraded_not_down() -> None:
    board = HealthBoard(window_seconds=5, clock=Clock())
    for ok in (True, True, True, False, True):
        board.record("inventory", ok=ok, duration=0.01)
    assert board.snapshot()["inventory"].state == DEGRADED


def test_slow_calls_are_degraded() -> None:
    board = HealthBoard(window_seconds=5, slow_seconds=1.0, clock=Clock())
    for _ in range(4):
        board.record("database", ok=True, duration=1.5)
    assert board.snapshot()["database"].state == DEGRADED


def test_state_clears_once_failures_leave_the_window() -> None:
    clock = Clock()
    board = HealthBoard(window_seconds=5, clock=clock)
    for _ in range(3):
        board.record("cache", ok=False, duration=0.01)
    went_down = board.snapshot()["cache"].since
    clock.now += 6
    board.record("cache", ok=True, duration=0.01)
    status = board.snapshot()["cache"]
    assert status.state == OPERATIONAL and status.since > went_down


def test_other_dependencies_are_untouched() -> None:
    board = HealthBoard(clock=Clock())
    for _ in range(3):
        board.record("payments", ok=False, duration=0.01)
    snapshot = board.snapshot()
    assert {d: s.state for d, s in snapshot.items() if d != "payments"} == {
        "inventory": OPERATIONAL, "database": OPERATIONAL, "cache": OPERATIONAL}


def test_slow_is_judged_per_dependency() -> None:
    board = HealthBoard(window_seconds=5, slow_seconds={"database": 0.25, "payments": 1.0},
                        clock=Clock())
    for _ in range(4):
        board.record("database", True, 0.4)
        board.record("payments", True, 0.4)
    snapshot = board.snapshot()
    assert snapshot["database"].state == DEGRADED
    assert snapshot["payments"].state == OPERATIONAL
