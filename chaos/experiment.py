"""Experiment files: YAML, loaded safely and validated into typed objects before anything runs.

Every error is reported at once with its path and the line it is on, e.g.
``method[1].attributes.latency: must be >= 0 (line 14)``; unknown keys are rejected.
The vocabulary follows the Chaos Toolkit's: a steady-state hypothesis checked before and
after, a method (the `faults`, on a timeline while load runs), rollbacks that always run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from demo_shop.config import SAFEGUARDS

from .errors import HarnessError
from .validation import Seconds, Strict, one_of, problems_of
from .vocabulary import (
    APP_ERROR_STATUSES,
    APP_TOXICS,
    TARGETS,
    TOXIC_ATTRIBUTES,
)

EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
# One experiment per safeguard, each run against a shop without it (`checkout-chaos proof`).
SAFEGUARDS_DIR = EXPERIMENTS_DIR / "safeguards"


class ExperimentError(HarnessError):
    """An experiment file that cannot be run, with every problem listed."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        super().__init__(f"{path} is not a valid experiment:\n  " + "\n  ".join(problems))
        self.problems = problems


class Tolerance(Strict):
    """Exactly one of exact, min, max, range (the Chaos Toolkit's tolerance vocabulary)."""

    exact: float | None = None
    min: float | None = None
    max: float | None = None
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Tolerance:
        given = [k for k in ("exact", "min", "max", "range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of exact, min, max or range")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError("range must be [low, high] with low <= high")
        return self

    def holds(self, value: float | None) -> bool:
        """Whether a measured value meets the tolerance (nothing measured never holds)."""
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        if self.min is not None:
            return value >= self.min
        if self.max is not None:
            return value <= self.max
        assert self.range is not None
        return self.range[0] <= value <= self.range[1]

    def describe(self) -> str:
        """'max 0', 'range [1, 2]', ..."""
        if self.exact is not None:
            return f"exactly {self.exact:g}"
        if self.min is not None:
            return f"at least {self.min:g}"
        if self.max is not None:
            return f"at most {self.max:g}"
        assert self.range is not None
        return f"between {self.range[0]:g} and {self.range[1]:g}"


ProbeName = Literal[
    "success_ratio", "graceful_ratio", "error_ratio", "ungraceful", "latency",
    "request_rate", "time_to_communicate", "time_to_clear", "recovery_time",
    "shop_metric_rate", "time_to_page", "time_to_resolve", "unrelated_pages",
]
# Probes read from the pages a real Alertmanager sent the harness (chaos.paging).
PAGING_PROBES = ("time_to_page", "time_to_resolve", "unrelated_pages")


class Hypothesis(Strict):
    """A probe, what it measures over, and the tolerance it must meet."""

    name: str = Field(min_length=1)
    probe: ProbeName
    tolerance: Tolerance
    weight: float = Field(default=1.0, gt=0)
    scope: Literal["all", "checkout"] = "all"
    percentile: Literal[50, 95, 99] = 95
    dependency: Literal["payments", "inventory", "database", "cache", "mail"] | None = None
    metric: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs(self) -> Hypothesis:
        if self.probe in ("time_to_communicate", "time_to_clear", "time_to_page",
                          "time_to_resolve") and self.dependency is None:
            raise ValueError(f"probe {self.probe} needs a dependency "
                             "(payments, inventory, database or cache)")
        if self.probe == "shop_metric_rate" and not self.metric:
            raise ValueError("probe shop_metric_rate needs a metric (a counter's name)")
        return self


class Load(Strict):
    """The traffic that runs through the whole experiment."""

    profile: Literal["steady", "ramp", "labor-day"] = "steady"
    users: int = Field(default=20, ge=1, le=5000)
    spawn_rate: float = Field(default=20, gt=0)
    processes: int = Field(default=1, ge=1, le=64)
    warmup: Seconds = 5.0
    # The share of journeys made through the storefront's HTML pages (the rest use the
    # JSON API); every page is judged as a shopper sees it, banner included.
    storefront_share: float = Field(default=0.34, ge=0, le=1)
    # A shopper whose checkout never answered (the client gave up) presses "Place order"
    # again with the same idempotency key, as people do: the retry a shop must not charge
    # twice for.
    retry_given_up: bool = False


class Fault(Strict):
    """A toxic (or a proxy taken down, or an application fault in a service) on one or more
    targets, for a time."""

    name: str = Field(min_length=1)
    target: list[Annotated[str, AfterValidator(one_of(TARGETS))]]
    toxic: Annotated[str, AfterValidator(one_of(tuple(TOXIC_ATTRIBUTES)))]
    stream: Literal["upstream", "downstream"] = "downstream"
    attributes: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    toxicity: float = Field(default=1.0, ge=0, le=1)
    start: Seconds = 0.0
    duration: Seconds = Field(gt=0)

    @field_validator("target", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _attributes_fit_toxic(self) -> Fault:
        allowed = TOXIC_ATTRIBUTES[self.toxic]
        unknown = sorted(set(self.attributes) - set(allowed))
        if unknown:
            raise ValueError(f"{self.toxic} takes no attribute {', '.join(unknown)} "
                             f"(it takes: {', '.join(allowed) or 'none'})")
        missing = [k for k, required in allowed.items() if required and k not in self.attributes]
        if missing:
            raise ValueError(f"{self.toxic} needs attribute {', '.join(missing)}")
        if not self.target:
            raise ValueError("target must name at least one proxy")
        if self.is_app:
            allowed_targets = APP_TOXICS[self.toxic].targets
            wrong = [t for t in self.target if t not in allowed_targets]
            if wrong:
                raise ValueError(f"{self.toxic} is a fault inside a service and applies to "
                                 f"{' and '.join(allowed_targets)}, not {', '.join(wrong)}")
            if self.attributes.get("percent", 0) > 100:
                raise ValueError("percent must be from 0 to 100")
            if "status" in self.attributes and \
                    self.attributes["status"] not in APP_ERROR_STATUSES:
                raise ValueError("status must be one of "
                                 + ", ".join(map(str, APP_ERROR_STATUSES)))
            if self.toxicity != 1.0:
                raise ValueError(f"{self.toxic} takes no toxicity: use attributes.percent")
        return self

    @property
    def is_app(self) -> bool:
        """An application-level fault (set in the service), not a Toxiproxy toxic."""
        return self.toxic in APP_TOXICS

    @property
    def end(self) -> float:
        """Seconds after the method starts when this fault is rolled back."""
        return self.start + self.duration


class StopCondition(Strict):
    """Abort early, roll back and fail when the load shows this."""

    name: str = Field(min_length=1)
    probe: Literal["ungraceful", "error_ratio"]
    above: float = Field(ge=0)
    for_: Seconds = Field(default=0.0, alias="for")


class SteadyState(Strict):
    """Checked over a window before the method and again after recovery."""

    duration: Seconds = Field(default=10.0, gt=0)
    hypotheses: list[Hypothesis] = Field(min_length=1)


class Recovery(Strict):
    """How soon the steady state must come back after the last rollback: the first moment
    from which `window` seconds of answers in `scope` (checkouts by default: they are what
    a sale loses, and a few percent of all traffic) succeed at `success_ratio` or better.
    Every dependency the method touches is also judged on its status page clearing within
    `clear_within` seconds unless a hypothesis of the experiment already does."""

    deadline: Seconds = Field(default=30.0, gt=0)
    success_ratio: float = Field(default=0.95, gt=0, le=1)
    scope: Literal["all", "checkout"] = "checkout"
    window: Seconds = Field(default=5.0, gt=0)
    clear_within: Seconds = Field(default=15.0, gt=0)
    hypotheses: list[Hypothesis] = Field(default_factory=list)


class ShopProfile(Strict):
    """The shop the experiment runs against: every safeguard on (the default), some off
    (to show the gate finds which one is missing), or "all" off (a fragile shop)."""

    safeguards_off: list[str] | Literal["all"] = Field(default_factory=list)

    @field_validator("safeguards_off")
    @classmethod
    def _known(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            unknown = sorted(set(value) - set(SAFEGUARDS))
            if unknown:
                raise ValueError(f"unknown safeguard {', '.join(unknown)} "
                                 f"(known: {', '.join(SAFEGUARDS)}, or all)")
        return value

    @property
    def off(self) -> frozenset[str]:
        """The safeguards turned off."""
        return frozenset(SAFEGUARDS if self.safeguards_off == "all" else self.safeguards_off)

    def describe(self) -> str:
        """'resilient', 'fragile' or 'without payments_timeout'."""
        if not self.off:
            return "resilient"
        if self.off == frozenset(SAFEGUARDS):
            return "fragile"
        return "without " + ", ".join(sorted(self.off))

    @classmethod
    def parse(cls, text: str) -> ShopProfile:
        """'resilient', 'fragile' or 'without:a,b' (the CLI's --shop)."""
        if text == "resilient":
            return cls()
        if text == "fragile":
            return cls(safeguards_off="all")
        if text.startswith("without:"):
            return cls(safeguards_off=[s for s in text.removeprefix("without:").split(",") if s])
        raise ValueError(f"--shop must be resilient, fragile or without:<safeguard>[,...], "
                         f"got {text!r}")


class Checks(Strict):
    """Checks every experiment makes unless turned off."""

    audit: bool = True
    # How long the shop may take to settle before the audit: reconcile, and let the holds
    # of failed checkouts expire (the shop's reservations last 30 s).
    audit_settle: Seconds = 45.0
    metrics_agreement: bool = True
    max_metrics_disagreement: float = Field(default=0.01, ge=0, le=1)
    # Each other plotted series (revenue, error pages, latency counts) may be this far
    # off the load's record, relatively: answers a shopper gave up on are in the shop's.
    max_series_disagreement: float = Field(default=0.02, ge=0, le=1)


class Experiment(Strict):
    """A whole experiment file."""

    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    load: Load = Field(default_factory=Load)
    steady_state: SteadyState
    faults: list[Fault] = Field(min_length=1)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    recovery: Recovery = Field(default_factory=Recovery)
    stop_conditions: list[StopCondition] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)
    shop: ShopProfile = Field(default_factory=ShopProfile)

    @property
    def method_span(self) -> float:
        """Seconds from the method's start to its last rollback."""
        return max(f.end for f in self.faults)

    def planned_seconds(self) -> float:
        """The longest the load may run: warm-up, before, method, recovery, after."""
        ss = self.steady_state.duration
        return self.load.warmup + ss + self.method_span + self.recovery.deadline + ss + 5

    def load_seconds(self) -> float:
        """How long the load may run: the planned shape, then room for the longest the
        recovery may take (its deadline and window, or the status page's clear_within),
        a baseline that grew, and the after window's last rows. The runner stops the load
        as soon as it is done."""
        longest = max(self.recovery.deadline + self.recovery.window + 3,
                      self.recovery.clear_within) + 1
        grown = 2 * self.steady_state.duration  # the most a quiet baseline may grow
        return self.planned_seconds() + (longest - self.recovery.deadline) + 10 + grown

    def scaled(self, factor: float) -> Experiment:
        """The same experiment with its durations scaled (for a quick gate), within sane
        minima. Under the labor-day profile the load's shape spans the whole run, so the
        faults are moved to start at the same point of the sale day as unscaled: the
        fault planned for the flash-sale spike still meets it. A factor of 1 is the
        experiment as written."""
        if factor == 1.0:
            return self
        faults = [f.model_copy(update={"start": f.start * factor,
                                       "duration": max(8.0, f.duration * factor)})
                  for f in self.faults]
        steady = self.steady_state.model_copy(
            update={"duration": max(5.0, self.steady_state.duration * factor)})
        load = self.load.model_copy(update={"warmup": max(3.0, self.load.warmup * factor)})
        scaled = self.model_copy(update={"faults": faults, "steady_state": steady,
                                         "load": load})
        if self.load.profile != "labor-day":
            return scaled
        share = self.fault_at() / self.planned_seconds()  # of the sale day
        shift = (share * scaled.planned_seconds() - scaled.fault_at()) / (1 - share)
        shift = max(shift, -min(f.start for f in faults))
        return scaled.model_copy(update={"faults": [
            f.model_copy(update={"start": f.start + shift}) for f in faults]})

    def fault_at(self) -> float:
        """Seconds from the load's start to the first fault (as planned)."""
        return self.load.warmup + self.steady_state.duration + min(f.start for f in self.faults)

    def all_hypotheses(self) -> list[Hypothesis]:
        """Every hypothesis the experiment declares, in any phase."""
        return [*self.steady_state.hypotheses, *self.hypotheses, *self.recovery.hypotheses]

    def targets(self) -> list[str]:
        """Every proxy the method touches."""
        return sorted({t for fault in self.faults for t in fault.target})


# ---- loading with line numbers -----------------------------------------------------------

def parse_experiment(text: str, source: str = "<experiment>") -> Experiment:
    """Validate YAML text into an Experiment; ExperimentError lists every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExperimentError(source, [f"not valid YAML: {problem}{where}"]) from None
    if not isinstance(data, dict):
        raise ExperimentError(source, ["the file must be a mapping of keys (title, faults, ...)"])
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(source, problems_of(exc, text)) from None


def resolve(name_or_path: str) -> Path:
    """A file path, or the name of an experiment in the catalog (or its safeguards folder)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (EXPERIMENTS_DIR / f"{name_or_path}.yaml",
                      EXPERIMENTS_DIR / f"{name_or_path}.yml",
                      SAFEGUARDS_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))) or "none"
    raise HarnessError(f"no experiment file or catalog name {name_or_path!r} "
                       f"(the catalog has: {known})")


def load_experiment(name_or_path: str) -> tuple[Path, Experiment]:
    """Find and validate an experiment."""
    path = resolve(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror}") from exc
    return path, parse_experiment(text, str(path))


def catalog(folder: Path = EXPERIMENTS_DIR) -> list[tuple[Path, Experiment]]:
    """Every experiment in the catalog (or another folder), validated."""
    return [load_experiment(str(p)) for p in sorted(folder.glob("*.yaml"))]
