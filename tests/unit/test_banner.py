"""The banner's judge: a page is held until the status after it is known, then found right,
wrong (missing or stuck) or not judged while the status was changing."""

from __future__ import annotations

from loadtests.banner import Seen, StatusWatch


def watch_with(samples: list[bool | None]) -> tuple[StatusWatch, list[tuple[str, str]]]:
    wrong: list[tuple[str, str]] = []
    watch = StatusWatch("http://127.0.0.1:1", before=3.0,
                        on_wrong=lambda seen, reason: wrong.append((seen.name, reason)))
    watch.samples.extend((100.0 + i * 0.5, troubled) for i, troubled in enumerate(samples))
    return watch, wrong


def seen(at: float, banner: bool, name: str) -> Seen:
    return Seen(at, banner, name, "ok", False)


def test_pages_are_judged_only_once_the_look_ahead_has_passed() -> None:
    watch, wrong = watch_with([True] * 20)  # 100.0 .. 109.5: down throughout
    watch.observe(seen(105.0, False, "/"))
    assert watch.judge_due(now=106.0) == 0 and len(watch.pending) == 1  # too early
    assert watch.judge_due(now=107.5) == 1
    assert wrong == [("/", "banner_missing")] and not watch.pending


def test_a_stuck_banner_is_found_and_a_right_one_is_not() -> None:
    watch, wrong = watch_with([False] * 20)
    watch.observe(seen(104.0, True, "/cart (page)"))
    watch.observe(seen(104.5, False, "/"))
    assert watch.judge_due(now=110.0) == 1
    assert wrong == [("/cart (page)", "banner_stuck")]


def test_a_page_rendered_while_the_status_changed_is_not_judged() -> None:
    watch, wrong = watch_with([False] * 10 + [True] * 10)  # the fault starts at 105.0
    watch.observe(seen(104.8, True, "/"))
    watch.observe(seen(105.2, False, "/"))
    assert watch.judge_due(now=110.0) == 0 and wrong == []


def test_an_unanswered_status_judges_nothing() -> None:
    watch, wrong = watch_with([True] * 8 + [None] + [True] * 11)
    watch.observe(seen(105.0, False, "/"))
    assert watch.judge_due(now=110.0) == 0 and wrong == []


def test_a_banner_that_does_not_name_the_troubled_dependency_is_wrong() -> None:
    wrong: list[tuple[str, str]] = []
    watch = StatusWatch("http://127.0.0.1:1", before=3.0,
                        on_wrong=lambda seen, reason: wrong.append((seen.name, reason)),
                        says={"payments": "card payments", "cache": r"\bcarts\b"})
    for i in range(20):  # payments down throughout, the carts fine
        at = 100.0 + i * 0.5
        watch.samples.append((at, True))
        watch.by_dependency["payments"].append((at, True))
        watch.by_dependency["cache"].append((at, False))
    told = "Card payments are not going through right now. Your cart is saved."
    watch.observe(Seen(105.0, True, "/", "ok", False, told))
    watch.observe(Seen(105.0, True, "/cart (page)", "ok", False,
                       "Some parts of the shop are having trouble."))  # names nothing
    watch.observe(Seen(105.0, True, "/products/x (page)", "ok", False,
                       f"{told} Shopping carts are having trouble."))  # names the carts too
    assert watch.judge_due(now=110.0) == 2
    assert wrong == [("/cart (page)", "banner_misnames"),
                     ("/products/x (page)", "banner_misnames")]
