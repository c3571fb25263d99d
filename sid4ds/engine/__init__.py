"""The round engine: one SID4DS round (:mod:`~sid4ds.engine.rounds`) and the loop that
runs it with an oracle (:mod:`~sid4ds.engine.loop`). Every door of sid4ds runs this
round."""

from sid4ds.engine.loop import RoundSummary, SID4DSRun, run_sid4ds
from sid4ds.engine.rounds import SID4DSRounds, labels_per_round, resolve_n_normal

__all__ = ["RoundSummary", "SID4DSRounds", "SID4DSRun", "labels_per_round", "resolve_n_normal",
           "run_sid4ds"]
