"""The fake normals of a :class:`~sid4ds.DefectActiveLearner` query (X_FN).

A part of :mod:`sid4ds.modal.learner`. With a SID4DS strategy the fake normals are the
bottom V of the engine's round (:attr:`~sid4ds.engine.rounds.RoundResult.fake_normals`);
with another strategy that scores the whole pool they are the V lowest-scored images of
the pool outside the selected ones, by the one ranking rule
(:func:`~sid4ds.ranking.selection.rank_pool`); with a strategy that scores nothing, none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds.engine.rounds import resolve_n_normal
from sid4ds.ranking.selection import QueryState, rank_pool

__all__ = ["fake_normal_indices"]


def fake_normal_indices(state: QueryState, indices: np.ndarray, n_pool: int,
                        n_normal: int | str, expected_defect_ratio: float,
                        ) -> np.ndarray | None:
    """Positions of the fake normals of the query that selected ``indices``, or None.

    None: this query keeps no fake normals (``n_normal`` resolves to 0, or the strategy
    scored nothing); an empty array is possible only from the engine's round.

    ``state`` is the learner's query state after the strategy ran; ``n_normal`` and
    ``expected_defect_ratio`` the learner's settings (:func:`resolve_n_normal`).
    """
    if state.last_round is not None:  # a SID4DS strategy: the engine's bottom V
        return state.last_round.fake_normals
    n_instances = len(indices)
    wanted = resolve_n_normal(n_normal, n_instances, n_pool, expected_defect_ratio)
    scores: Any = state.pool_scores
    if wanted == 0 or scores is None:
        if wanted > 0 and n_normal != "auto":
            raise ValueError(
                f"n_normal={n_normal} needs a query strategy that scores the whole "
                f"pool (the SID4DS strategies, most baselines); set n_normal=0 with other "
                f"strategies"
            )
        return None
    # the selected images go to the top whatever the strategy's own order, so the
    # fake normals are the lowest-ranked of the rest
    finite = np.minimum(np.asarray(scores, dtype=np.float64), np.finfo(np.float64).max)
    ranked = np.where(np.isin(np.arange(n_pool), indices), np.inf, finite)
    _, bottom = rank_pool(ranked, n_instances, wanted, tie_keys=state.pool_tie_keys)
    return bottom
