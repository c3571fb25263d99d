"""From fitted models to a ranking: the scores of SID4DS (:mod:`~sid4ds.ranking.scores`),
scores kept per image (:mod:`~sid4ds.ranking.score_cache`) and the one selection rule
(:mod:`~sid4ds.ranking.selection`)."""

from sid4ds.ranking.scores import msmr_scores, sdr_scores
from sid4ds.ranking.selection import rank_pool

__all__ = ["msmr_scores", "rank_pool", "sdr_scores"]
