"""Load shapes as data: a list of stages, and the users wanted at any second.

`steady`, `ramp` and `labor-day` (a compressed sale day: quiet baseline, morning ramp,
a flash-sale spike at the top of the hour, a sustained peak, the evening decline). The
shape is pure data and one function, `users_at`, so a whole day is unit-tested without
Locust; the locustfile wraps it in a LoadTestShape.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILES = ("steady", "ramp", "labor-day")


@dataclass(frozen=True, slots=True)
class Stage:
    """Ends at `until` seconds with `users`; `ramp` moves there linearly from the last stage."""

    until: float
    users: int
    ramp: bool = False
    label: str = ""


def steady(users: int, duration: float) -> list[Stage]:
    """Constant users for the whole run."""
    return [Stage(duration, users, label="steady")]


def ramp(users: int, duration: float) -> list[Stage]:
    """From 0 to users over the first 80% of the run, then hold."""
    return [Stage(duration * 0.8, users, ramp=True, label="ramp"),
            Stage(duration, users, label="hold")]


# (fraction of the day at which the stage ends, fraction of peak users, ramp?, label)
LABOR_DAY = (
    (0.03, 0.15, True, "doors open"),
    (0.15, 0.15, False, "quiet baseline"),
    (0.40, 0.45, True, "morning ramp"),
    (0.45, 0.45, False, "before the hour"),
    (0.47, 1.00, True, "flash-sale spike"),
    (0.70, 1.00, False, "sustained peak"),
    (0.95, 0.20, True, "evening decline"),
    (1.00, 0.10, True, "closing"),
)


def labor_day(peak_users: int, day_seconds: float) -> list[Stage]:
    """A sale day compressed into day_seconds; the spike is ~6.7x the baseline."""
    return [Stage(day_seconds * end, max(1, round(peak_users * share)), ramp, label)
            for end, share, ramp, label in LABOR_DAY]


def build(profile: str, users: int, duration: float) -> list[Stage]:
    """The stages of a named profile; ValueError names what is wrong."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if profile == "steady":
        return steady(users, duration)
    if profile == "ramp":
        return ramp(users, duration)
    return labor_day(users, duration)


def users_at(stages: list[Stage], t: float) -> tuple[int, str] | None:
    """Users wanted t seconds into the run and the stage's label; None once it is over."""
    previous_until, previous_users = 0.0, 0
    for stage in stages:
        if t < stage.until:
            if not stage.ramp:
                return stage.users, stage.label
            span = stage.until - previous_until
            progress = (t - previous_until) / span if span > 0 else 1.0
            users = previous_users + (stage.users - previous_users) * progress
            return max(1, round(users)), stage.label
        previous_until, previous_users = stage.until, stage.users
    return None


class Ticker:
    """A LoadTestShape's tick() as a plain object: (users, spawn rate) at a run time, or None."""

    def __init__(self, profile: str, users: int, duration: float, spawn_rate: float,
                 hold: bool = False) -> None:
        self.stages = build(profile, users, duration)
        self.spawn_rate = spawn_rate
        self.label = ""
        self.hold = hold  # after the shape: keep its last users (the harness ends the run)

    def tick(self, run_time: float) -> tuple[int, float] | None:
        """Users and spawn rate wanted run_time seconds in; None ends the run."""
        wanted = users_at(self.stages, run_time)
        if wanted is None and self.hold and self.stages:
            wanted = self.stages[-1].users, "hold"
        if wanted is None:
            return None
        users, self.label = wanted
        return users, self.spawn_rate
