"""One experiment run, by stage (the Chaos Toolkit's shape, typed):

- journal: what a run records (steps, hypotheses judged, the result, the live figures)
- safety: signals, the one-run-per-stack lock, a killed run's leftovers
- load: the Locust process and the feed of its timeline
- method: faults on their timeline through fault drivers (where a fault is injected and
  rolled back), stop conditions
- judge: hypotheses judged per phase (where a hypothesis is judged)
- recovery: when the shop and its status page came back
- audit: the ledgers and the metrics, once the load stopped
- runner: the sequence, over collaborators handed in
"""

from .journal import HypothesisResult, JournalEntry, Live, RunResult, View
from .runner import Collaborators, Runner, RunObserver, SteadyStateNotMet, ViewObserver
from .safety import Interrupted, interruptible, run_lock, signals_held

__all__ = ["Collaborators", "HypothesisResult", "Interrupted", "JournalEntry", "Live",
           "RunObserver", "RunResult", "Runner", "SteadyStateNotMet", "View", "ViewObserver",
           "interruptible", "run_lock", "signals_held"]
