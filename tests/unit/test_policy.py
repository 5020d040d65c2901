"""The resilience policy: breaker transitions, bulkheads, the retry budget, fragile mode."""

from __future__ import annotations

import circuitbreaker
import pytest

from demo_shop.calls import GuardedCalls
from demo_shop.config import settings_from_env
from demo_shop.errors import DependencyUnavailable, OutcomeUnknown, PaymentDeclined
from demo_shop.health import HealthBoard
from demo_shop.resilience import (
    Deadline,
    DependencyGuard,
    GuardSettings,
    RetryBudget,
    build_guards,
    call_retried,
    retrying,
)

from .fakes import FakeClock

Clock = FakeClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(circuitbreaker, "monotonic", fake)
    return fake


def guarded_calls(threshold: int = 3, concurrency: int = 4) -> GuardedCalls:
    guards = build_guards({"payments": GuardSettings(threshold, 5.0, concurrency)})
    return GuardedCalls(HealthBoard(), guards)


def fail(obs: GuardedCalls, error: Exception | None = None) -> None:
    with pytest.raises(DependencyUnavailable), obs.call("payments", "authorize", lambda e: None):
        raise error or DependencyUnavailable("payments", "refused")


def succeed(obs: GuardedCalls) -> None:
    with obs.call("payments", "authorize", lambda e: None):
        pass


def test_breaker_opens_after_the_threshold_and_then_fails_fast(clock: Clock) -> None:
    obs = guarded_calls(threshold=3)
    for _ in range(3):
        fail(obs)
    guard = obs.guard("payments")
    assert guard is not None and guard.breaker.state == "open"
    with pytest.raises(DependencyUnavailable) as info, obs.call("payments", "x", lambda e: None):
        raise AssertionError("an open breaker must not let the call run")
    assert info.value.kind == "breaker_open"


def test_breaker_half_opens_after_the_reset_time_and_closes_on_success(clock: Clock) -> None:
    obs = guarded_calls(threshold=2)
    fail(obs)
    fail(obs)
    guard = obs.guard("payments")
    assert guard is not None
    clock.now += 6
    assert guard.breaker.state == "half_open"
    succeed(obs)
    assert guard.breaker.state == "closed" and guard.breaker.failure_count == 0


def test_a_failed_trial_opens_the_breaker_again(clock: Clock) -> None:
    obs = guarded_calls(threshold=2)
    fail(obs)
    fail(obs)
    clock.now += 6
    fail(obs)
    guard = obs.guard("payments")
    assert guard is not None and guard.breaker.state == "open"


def test_business_answers_do_not_count_as_failures(clock: Clock) -> None:
    obs = guarded_calls(threshold=2)
    for _ in range(5):
        with pytest.raises(PaymentDeclined), obs.call("payments", "authorize", lambda e: None):
            raise PaymentDeclined("card_declined")
    guard = obs.guard("payments")
    assert guard is not None and guard.breaker.state == "closed"


def test_calls_cut_short_by_the_shoppers_deadline_do_not_open_the_breaker(clock: Clock) -> None:
    obs = guarded_calls(threshold=2)
    for _ in range(5):
        fail(obs, OutcomeUnknown("payments", "deadline", "no answer in time"))
    guard = obs.guard("payments")
    assert guard is not None and guard.breaker.state == "closed"
    fail(obs, OutcomeUnknown("payments", "timeout", "no answer in time"))
    fail(obs, OutcomeUnknown("payments", "timeout", "no answer in time"))
    assert guard.breaker.state == "open"


def test_a_probe_that_answers_closes_an_open_breaker_and_one_that_fails_does_not_count(
    clock: Clock,
) -> None:
    obs = guarded_calls(threshold=2)
    guard = obs.guard("payments")
    assert guard is not None
    for _ in range(3):
        with pytest.raises(DependencyUnavailable), obs.call("payments", "health",
                                                            lambda e: None, probe=True):
            raise DependencyUnavailable("payments", "refused")
    assert guard.breaker.state == "closed"
    fail(obs)
    fail(obs)
    assert guard.breaker.state == "open"
    with obs.call("payments", "health", lambda e: None, probe=True):
        pass  # a probe is let through an open breaker
    assert guard.breaker.state == "closed"


def test_bulkhead_refuses_calls_beyond_its_slots_and_frees_them(clock: Clock) -> None:
    obs = guarded_calls(concurrency=1)
    with obs.call("payments", "authorize", lambda e: None):
        with pytest.raises(DependencyUnavailable) as info, obs.call("payments", "x",
                                                                     lambda e: None):
            pass
        assert info.value.kind == "bulkhead_full"
    succeed(obs)  # the slot is free again


def test_retry_budget_limits_retries_to_a_share_of_calls() -> None:
    budget = RetryBudget(ratio=0.1, burst=2)
    assert [budget.spend() for _ in range(3)] == [True, True, False]
    for _ in range(10):
        budget.earn()
    assert budget.spend() and not budget.spend()


def run_with_retries(guard: DependencyGuard | None, errors: list[Exception]) -> int:
    calls = 0
    for attempt in retrying(guard, Deadline(5.0)):
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
    return calls


def test_an_idempotent_call_is_retried_once_after_a_failure() -> None:
    guard = DependencyGuard("payments", 5, 5.0, 4)
    assert run_with_retries(guard, [OutcomeUnknown("payments", "reset")]) == 2


def test_no_retry_for_an_open_breaker_or_without_a_policy() -> None:
    guard = DependencyGuard("payments", 5, 5.0, 4)
    with pytest.raises(DependencyUnavailable):
        run_with_retries(guard, [DependencyUnavailable("payments", "breaker_open")])
    with pytest.raises(DependencyUnavailable):
        run_with_retries(None, [DependencyUnavailable("payments", "refused")])


def test_a_retry_refused_after_an_unknown_outcome_still_reports_it_unknown() -> None:
    """The first attempt may have reserved stock; the breaker then refuses the retry. The
    caller must hear "maybe done", or it gives nothing back."""
    guard = DependencyGuard("inventory", 5, 5.0, 4)
    errors: list[Exception] = [OutcomeUnknown("inventory", "timeout", "no answer in time"),
                               DependencyUnavailable("inventory", "breaker_open")]

    def call() -> None:
        raise errors.pop(0)

    with pytest.raises(OutcomeUnknown) as raised:
        call_retried(call, guard, Deadline(5.0))
    assert raised.value.kind == "timeout" and "breaker_open" in str(raised.value)
    assert not errors  # both attempts ran


def test_a_call_never_sent_stays_certainly_undone() -> None:
    guard = DependencyGuard("inventory", 5, 5.0, 4)
    errors: list[Exception] = [DependencyUnavailable("inventory", "refused"),
                               DependencyUnavailable("inventory", "refused")]

    def call() -> None:
        raise errors.pop(0)

    with pytest.raises(DependencyUnavailable) as raised:
        call_retried(call, guard, Deadline(5.0))
    assert not isinstance(raised.value, OutcomeUnknown)


def test_fragile_mode_turns_the_safeguards_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_RESILIENCE", "off")
    fragile = settings_from_env()
    assert not fragile["SAFEGUARDS"].all_on and fragile["RECONCILE_INTERVAL"] == 0.0
    assert fragile["TIMEOUTS"]["cache"].read >= 3600 and fragile["CHECKOUT_DEADLINE"] >= 3600
    monkeypatch.setenv("SHOP_RESILIENCE", "on")
    resilient = settings_from_env()
    assert resilient["SAFEGUARDS"].all_on and resilient["TIMEOUTS"]["cache"].read <= 1
    assert resilient["GUARDS"]["payments"].concurrency < 8  # fewer than a worker's threads


def test_one_safeguard_can_be_turned_off_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_SAFEGUARDS_OFF", "payments_timeout, breakers")
    settings = settings_from_env()
    assert settings["SAFEGUARDS"].off == {"payments_timeout", "breakers"}
    assert not settings["TIMEOUTS"]["payments"].within_deadline
    assert settings["TIMEOUTS"]["inventory"].within_deadline
    assert settings["CHECKOUT_DEADLINE"] == 5.0  # the other calls still keep the deadline
    assert not settings["GUARDS"]["payments"].breaker and settings["GUARDS"]["cache"].bulkhead
    assert settings["SAFEGUARDS"].on("fallbacks") and not settings["SAFEGUARDS"].all_on


def test_an_unknown_safeguard_is_refused_with_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_SAFEGUARDS_OFF", "seatbelts")
    with pytest.raises(ValueError, match=r"unknown safeguards seatbelts \(known: payments_timeout"):
        settings_from_env()


def test_a_guard_without_breaker_or_bulkhead_lets_every_call_through(clock: Clock) -> None:
    guard = DependencyGuard("payments", 1, 5.0, 1, breaker=False, bulkhead=False,
                            retries=False)
    obs = GuardedCalls(HealthBoard(), {"payments": guard})
    for _ in range(3):
        fail(obs)
    assert guard.breaker.state == "closed"
    with obs.call("payments", "a", lambda e: None), obs.call("payments", "b", lambda e: None):
        pass  # two at once through a "bulkhead" of one
    assert not guard.budget.spend()


def test_a_bad_resilience_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_RESILIENCE", "maybe")
    with pytest.raises(ValueError, match="SHOP_RESILIENCE must be on or off"):
        settings_from_env()


def test_a_read_timeout_cut_short_by_the_deadline_is_named_so() -> None:
    import httpx

    from demo_shop.adapters.http import http_translator

    own = http_translator("payments")(httpx.ReadTimeout("slow"))
    cut = http_translator("payments", deadline_bound=True)(httpx.ReadTimeout("slow"))
    refused = http_translator("payments", deadline_bound=True)(httpx.ConnectError("no"))
    assert own is not None and own.kind == "timeout"
    assert cut is not None and cut.kind == "deadline" and isinstance(cut, OutcomeUnknown)
    assert refused is not None and refused.kind == "refused"
