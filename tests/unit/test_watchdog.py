"""The shop's one watchdog thread: what is armed runs when due, what is disarmed never."""

from __future__ import annotations

import threading

from demo_shop.watchdog import Watchdog


def test_an_armed_callback_runs_and_a_disarmed_one_never_does() -> None:
    dog = Watchdog()
    ran = threading.Event()
    cancelled = threading.Event()
    token = dog.arm(0.05, cancelled.set)
    dog.arm(0.1, ran.set)
    assert dog.disarm(token)
    assert ran.wait(5)
    assert not cancelled.is_set()
    assert not dog.disarm(token)  # gone either way
    assert dog.armed == 0


def test_a_sooner_deadline_is_not_kept_waiting_by_a_later_one() -> None:
    dog = Watchdog()
    late, soon = threading.Event(), threading.Event()
    dog.arm(60, late.set)  # the thread now sleeps towards this one
    dog.arm(0.01, soon.set)
    assert soon.wait(5)
    assert not late.is_set()


def test_many_guards_share_one_thread() -> None:
    dog = Watchdog("one-thread-test")
    ran: list[int] = []
    all_ran = threading.Event()

    def count(n: int) -> None:
        ran.append(n)
        if len(ran) == 50:
            all_ran.set()

    for n in range(50):
        dog.arm(0.01, lambda n=n: count(n))  # type: ignore[misc]
    waiting = [dog.arm(30, lambda: None) for _ in range(200)]
    assert [t.name for t in threading.enumerate()].count("one-thread-test") == 1
    assert all_ran.wait(5) and sorted(ran) == list(range(50))
    assert all(dog.disarm(token) for token in waiting) and dog.armed == 0
