"""The health board: states from a window of outcomes, and clearing after recovery."""

from __future__ import annotations

from demo_shop.health import DEGRADED, DOWN, OPERATIONAL, HealthBoard, SharedStates


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


def test_every_worker_tells_the_worst_state_any_live_worker_sees(tmp_path) -> None:
    """Workers that share a folder agree: one that saw payments fail makes every other
    one show it too, until it clears; a worker gone quiet is not listened to."""
    clock = Clock()
    saw = HealthBoard(window_seconds=5, clock=clock,
                      shared=SharedStates(tmp_path, clock=clock, worker="a"))
    idle = HealthBoard(window_seconds=5, clock=clock,
                       shared=SharedStates(tmp_path, clock=clock, worker="b"))
    for _ in range(3):
        saw.record("payments", ok=False, duration=0.01)
    told = idle.snapshot()["payments"]
    assert told.state == DOWN and "Card payments" in told.message
    assert idle.snapshot()["inventory"].state == OPERATIONAL
    clock.now += 6  # the failures leave the window
    saw.record("payments", ok=True, duration=0.01)
    assert idle.snapshot()["payments"].state == OPERATIONAL


def test_a_worker_that_stopped_publishing_is_ignored(tmp_path) -> None:
    clock = Clock()
    dead = HealthBoard(window_seconds=5, clock=clock,
                       shared=SharedStates(tmp_path, clock=clock, worker="dead"))
    for _ in range(3):
        dead.record("cache", ok=False, duration=0.01)
    alive = HealthBoard(window_seconds=5, clock=clock,
                        shared=SharedStates(tmp_path, clock=clock, worker="alive"))
    assert alive.snapshot()["cache"].state == DOWN
    clock.now += 11  # its file is older than stale_after
    assert alive.snapshot()["cache"].state == OPERATIONAL
