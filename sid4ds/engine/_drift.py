"""A drifted batch in a round: which rows it is, and the images of it S learns as normal.

A part of :class:`sid4ds.engine.rounds.SID4DSRounds` (a mixin), run only when
:meth:`~sid4ds.engine.rounds.SID4DSRounds.run_round` is given ``drifted`` (the rows
:func:`sid4ds.ranking.drift.check_drift` flagged) and ``drift_rule`` is not ``"none"``.
Under the ``"fake_normals..."`` rules the ``drift_normal_share`` of the
batch that M reconstructs best (lowest E_msmr) trains S as normal images in that round.
The selection's part of the rules (the reserve of K) is in
:mod:`sid4ds.engine._selecting`; ``"refresh"``'s training of M in
:mod:`sid4ds.engine._training`.
"""

from __future__ import annotations

import numpy as np

from sid4ds.datasets.pool import ImagePool
from sid4ds.estimators.base import is_fitted

__all__ = ["RoundDrift"]


class RoundDrift:
    """The drifted batch of a round (a part of ``SID4DSRounds``)."""

    def _flagged(self, drifted: np.ndarray | None, unlabeled: np.ndarray) -> np.ndarray:
        """Which unlabelled positions belong to the drifted batch the rule acts on."""
        if drifted is None or self.drift_rule == "none":
            return np.zeros(len(unlabeled), dtype=bool)
        return np.isin(unlabeled, np.asarray(drifted, dtype=np.int64))

    def _drift_normals(self, pool: ImagePool, unlabeled: np.ndarray, flagged: np.ndarray,
                       keys: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        """The ``"fake_normals..."`` rules: the drifted batch's share with the lowest E_msmr."""
        rows = np.flatnonzero(flagged)
        n_normal = int(round(self.drift_normal_share * len(rows)))
        if n_normal == 0 or not is_fitted(self.msmr_scorer):
            return np.zeros(0, np.int64)
        return self._batch_msmr(pool, unlabeled, rows, keys, seconds)[::-1][:n_normal]
