"""The audit stage: once the load has stopped, the ledgers of the shop, the processor and
the inventory checked against what every shopper was told (chaos.audit), and the shop's
own checkout counters against the load's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..audit import CHECKS as AUDIT_CHECKS
from ..audit import EVENTUAL_RULES, AuditResult
from ..experiment import Checks
from ..waiting import poll
from .journal import HypothesisResult

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
AuditOnce = Callable[[list[dict[str, Any]]], AuditResult]


@dataclass(slots=True)
class AuditOutcome:
    """What the stage found: the judged results, the audit itself, and the journal's
    output."""

    results: list[HypothesisResult]
    audit: AuditResult | None
    output: dict[str, Any]
    not_judged: list[str]  # checks not made for want of a source: never passed


def audit_run(checks: Checks, evidence: list[dict[str, Any]], audit_once: AuditOnce,
              metrics_at_start: Samples, metrics_at_end: Samples,
              shop_has_metrics: bool = True) -> AuditOutcome:
    """The ledger audit and the metrics agreement, as the experiment's checks ask; what
    the target gives no source for is listed as not judged."""
    results: list[HypothesisResult] = []
    output: dict[str, Any] = {}
    not_judged: list[str] = []
    audit = None
    if checks.audit:
        audit = audit_settled(evidence, audit_once, checks.audit_settle)
        output["audit"] = audit.as_json()
        not_judged += [f"ledger audit: {name}" for name in audit.not_judged]
        if len(audit.not_judged) < len(AUDIT_CHECKS):
            results.append(HypothesisResult(
                "audit", "ledger audit: nothing lost", "audit_violations", "at most 0",
                float(len(audit.violations)), audit.clean, 1.0,
                f"{len(audit.not_judged)} checks not judged" if audit.not_judged else ""))
    if checks.metrics_agreement and not shop_has_metrics:
        not_judged.append("shop metrics agree with what shoppers saw (the target gives no "
                          "metrics route)")
    elif checks.metrics_agreement:
        disagreement, detail = metrics_disagreement(evidence, metrics_at_start,
                                                    metrics_at_end)
        output["metrics_agreement"] = detail
        limit = checks.max_metrics_disagreement
        results.append(HypothesisResult(
            "audit", "shop metrics agree with what shoppers saw", "metrics_agreement",
            f"at most {limit:g}", disagreement,
            disagreement is not None and disagreement <= limit, 1.0))
    return AuditOutcome(results, audit, output, not_judged)


def audit_settled(evidence: list[dict[str, Any]], audit_once: AuditOnce,
                  settle_seconds: float) -> AuditResult:
    """The audit, repeated while only 'not yet' violations remain (a paid order's stock
    not committed yet, an order not settled yet) and the settling time lasts: the
    shop reconciles those in the background, the rest are final at once."""
    last: list[AuditResult] = []

    def final() -> bool:
        last.append(audit_once(evidence))
        return last[-1].clean or bool({v.rule for v in last[-1].violations} - EVENTUAL_RULES)

    poll(final, settle_seconds, every=1.0)
    return last[-1]


def metrics_disagreement(evidence: list[dict[str, Any]], start: Samples,
                         end: Samples) -> tuple[float | None, Any]:
    """Largest relative difference between the shop's checkout counters and the load's."""
    if not start or not end:
        return None, "the shop's /metrics could not be read"

    def shop(outcome: str) -> float:
        key = ("shop_checkout_outcomes_total", frozenset({("outcome", outcome)}))
        return end.get(key, 0.0) - start.get(key, 0.0)

    answered = [e for e in evidence if e.get("status")]
    seen = {"total": float(len(answered)),
            "success": float(sum(1 for e in answered if e["status"] == 201)),
            "declined": float(sum(1 for e in answered if e["status"] == 402))}
    counted = {"total": sum(shop(o) for o in ("success", "pending_payment", "declined",
                                              "graceful_error", "error")),
               "success": shop("success") + shop("pending_payment"),
               "declined": shop("declined")}
    worst = max(abs(counted[k] - seen[k]) / max(seen[k], 1.0) for k in seen)
    return round(worst, 4), {"shop": counted, "load": seen}
