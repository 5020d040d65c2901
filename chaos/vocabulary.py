"""The words the harness, its load and its reports share, spelled once: what can be broken
(targets and the name the shop's status page gives each), how (toxics and their
attributes), the phases of a run, and the test cards every scripted shopper pays with.

Import-light on purpose: the Locust process and the benchmarks import it too.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every dependency a shop reaches through Toxiproxy, by its role: the reference shop's four,
# and the mail server a shop sends its order confirmations to (a target may have it).
REFERENCE_TARGETS = ("payments", "inventory", "postgres", "redis")
TARGETS = (*REFERENCE_TARGETS, "mail")
# What the shop calls each proxied dependency on /api/status and in its banner.
STATUS_NAME = {"payments": "payments", "inventory": "inventory", "postgres": "database",
               "redis": "cache", "mail": "mail"}
# What the reference shop's status page names.
DEPENDENCIES = tuple(STATUS_NAME[t] for t in REFERENCE_TARGETS)

# Toxiproxy's own toxics: attribute -> required.
NETWORK_TOXICS: dict[str, dict[str, bool]] = {
    "latency": {"latency": True, "jitter": False},
    "bandwidth": {"rate": True},
    "slow_close": {"delay": True},
    "timeout": {"timeout": True},
    "reset_peer": {"timeout": False},
    "slicer": {"average_size": True, "size_variation": False, "delay": False},
    "limit_data": {"bytes": True},
}
# The proxy disabled: the dependency refuses every connection.
PROXY_DOWN = "down"


@dataclass(frozen=True, slots=True)
class AppToxic:
    """A fault inside the payments or inventory service (its loopback admin endpoint)."""

    kind: str  # the service's name for it
    targets: tuple[str, ...]
    attributes: dict[str, bool]  # attribute -> required


APP_TOXICS: dict[str, AppToxic] = {
    "app_errors": AppToxic("errors", ("payments", "inventory"),
                           {"percent": True, "status": False}),
    "app_latency": AppToxic("latency", ("payments", "inventory"),
                            {"latency": True, "jitter": False}),
    "app_declines": AppToxic("declines", ("payments",), {"percent": True}),
    "app_capture_lost": AppToxic("capture_lost", ("payments",), {"percent": True}),
}
APP_ERROR_STATUSES = (429, 500, 502, 503, 504)
# Every toxic an experiment may name, with its attributes (attribute -> required).
TOXIC_ATTRIBUTES: dict[str, dict[str, bool]] = {
    **NETWORK_TOXICS, PROXY_DOWN: {},
    **{name: toxic.attributes for name, toxic in APP_TOXICS.items()},
}

# The steps of a run, in order, as the journal and the harness's metrics name them.
RUN_PHASES = ("shop", "preflight", "steady-state-before", "method", "rollback", "recovery",
              "teardown", "judge", "audit")
# The phases hypotheses are judged in, in report order.
JUDGED_PHASES = ("baseline", "fault", "recovery", "audit")

# The processor simulator's test cards: one that pays, one the bank refuses.
GOOD_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
DECLINED_CARD = {**GOOD_CARD, "number": "4000000000000002"}


def card_form(card: dict[str, object]) -> dict[str, str]:
    """A card as the storefront's checkout form posts it."""
    return {"card_number": str(card["number"]), "exp_month": str(card["exp_month"]),
            "exp_year": str(card["exp_year"]), "cvc": str(card["cvc"])}
