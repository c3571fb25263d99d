"""Select in a round: the top K to label, the bottom V fake normals, and the full order.

A part of :class:`sid4ds.engine.rounds.SID4DSRounds` (a mixin): step 4 of
:meth:`~sid4ds.engine.rounds.SID4DSRounds.run_round`, with the one rule of
:mod:`sid4ds.ranking.selection` (:func:`~sid4ds.ranking.selection.rank_pool`): ties are
broken by the cold-start E_msmr when it is known, then by image content. After a drifted
batch, ``"refresh"`` and ``"fake_normals_reserve"`` put a share of K on the batch's top
(:func:`sid4ds.ranking.drift.reserve_order`), ``"fake_normals_msmr"`` ranks the batch by
M's E_msmr within the places the ranking gave it, and no image of the batch becomes a
fake normal.
"""

from __future__ import annotations

import numpy as np

from sid4ds.datasets.pool import ImagePool
from sid4ds.ranking.drift import reserve_order
from sid4ds.ranking.selection import rank_pool, tie_keys

__all__ = ["RoundSelection"]


class RoundSelection:
    """The selection of a round (a part of ``SID4DSRounds``)."""

    def _select(self, pool: ImagePool, unlabeled: np.ndarray, keys: np.ndarray,
                scores: np.ndarray, msmr: np.ndarray | None, n_label: int, n_fake: int,
                flagged: np.ndarray, seconds: dict[str, float],
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(top, bottom, order, reserved)``: positions into ``unlabeled``."""
        keys_of_unlabeled = tie_keys(keys, msmr)
        top, bottom = rank_pool(scores, n_label, n_fake, tie_keys=keys_of_unlabeled)
        order, _ = rank_pool(scores, len(scores), tie_keys=keys_of_unlabeled)
        reserved = np.zeros(0, np.int64)
        if flagged.any():
            if self.drift_rule == "refresh":
                reserved = self._reserved(pool, unlabeled, flagged, keys, len(top), seconds)
                order = reserve_order(order, reserved, len(top))
            elif self.drift_rule == "fake_normals_reserve":  # the batch's top by this score
                in_batch = order[flagged[order]]
                reserved = in_batch[: min(len(in_batch),
                                          int(round(self.reserve_share * len(top))))]
                order = reserve_order(order, reserved, len(top))
            elif self.drift_rule == "fake_normals_msmr":  # the batch's places, by M
                order = order.copy()
                order[flagged[order]] = self._batch_msmr(pool, unlabeled,
                                                         np.flatnonzero(flagged), keys, seconds)
            top = order[: len(top)]
            rest = order[len(top):][::-1]  # lowest first, as rank_pool's bottom
            bottom = rest[~flagged[rest]][:n_fake]
        return top, bottom, order, reserved

    def _reserved(self, pool: ImagePool, unlabeled: np.ndarray, flagged: np.ndarray,
                  keys: np.ndarray, n_label: int, seconds: dict[str, float]) -> np.ndarray:
        """``"refresh"``: the drifted batch's top by the new M's E_msmr, its share of K."""
        rows = np.flatnonzero(flagged)
        n_reserved = min(len(rows), int(round(self.reserve_share * n_label)))
        if n_reserved == 0:
            return np.zeros(0, np.int64)
        return self._batch_msmr(pool, unlabeled, rows, keys, seconds)[:n_reserved]
