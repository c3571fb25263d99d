"""Score a round's unlabelled images, each score computed once per model.

A part of :class:`sid4ds.engine.rounds.SID4DSRounds` (a mixin): step 3 of
:meth:`~sid4ds.engine.rounds.SID4DSRounds.run_round`. E_msmr is computed with M, E_sdr
with S and G; every score is kept per image in the engine's
:class:`~sid4ds.ranking.score_cache.ScoreCache` under the fingerprint of the models (and
settings) that computed it, so an unchanged model never scores an image twice. Also the
tie scores (the cold-start E_msmr that breaks ties among equal scores) and a drifted
batch's order by E_msmr.
"""

from __future__ import annotations

import numpy as np

from sid4ds.datasets.pool import ImagePool
from sid4ds.engine._timing import timed
from sid4ds.estimators.base import is_fitted
from sid4ds.ranking.drift import DRIFT_CACHE_SCORE, MSMR_CACHE_SCORE
from sid4ds.ranking.score_cache import (
    lookup_scores,
    model_fingerprint,
    models_fingerprint,
    store_scores,
)
from sid4ds.ranking.scores import fuse_evidence, msmr_evidence, sdr_evidence
from sid4ds.ranking.selection import content_keys, rank_pool, tie_keys

__all__ = ["RoundScoring"]


class RoundScoring:
    """Scoring with the score cache (a part of ``SID4DSRounds``)."""

    def _scores(self, name: str, pool: ImagePool, unlabeled: np.ndarray, keys: np.ndarray,
                seconds: dict[str, float]) -> tuple[np.ndarray, int]:
        """The ``name`` score of the unlabelled images: kept ones reused, the rest computed.

        E_sdr is kept per image with S's mean probability (``"S_probability"``), both by
        the fingerprint of S, G and the region rule, so that ``fusion`` can rank by both.
        """
        if name == "E_msmr":
            fingerprint: str | None = model_fingerprint(self.msmr_scorer)
            columns = (MSMR_CACHE_SCORE, DRIFT_CACHE_SCORE)  # one pass of M: both scores
            what = f"E_msmr, {self.msmr_scorer.n_blocks} masked copies each"
            phase = "score_msmr"

            def compute(rows: np.ndarray) -> np.ndarray:
                return msmr_evidence(self.msmr_scorer, pool.subset(rows), n_jobs=self.n_jobs)

            def about(n_images: int) -> str:
                return self._about(self.msmr_scorer, n_images, pool, train=False,
                                   copies=self.msmr_scorer.n_blocks)
        else:
            fingerprint = models_fingerprint(self.segmenter, self.sdr_scorer,
                                             settings=(name, self.region, self.region_share))
            columns = ("E_sdr", "S_probability")
            what = "E_sdr: S's regions, reconstructed by G"
            phase = "score_sdr"

            def compute(rows: np.ndarray) -> np.ndarray:
                return sdr_evidence(self.segmenter, self.sdr_scorer, pool.subset(rows),
                                    region=self.region, region_share=self.region_share,
                                    n_jobs=self.n_jobs)

            def about(n_images: int) -> str:
                return self._about((self.segmenter, self.sdr_scorer), n_images, pool,
                                   train=False)
        values = lookup_scores(self.score_cache, fingerprint, columns, keys)
        missing = np.isnan(values).any(axis=1)
        n_missing = int(missing.sum())
        if n_missing == 0:
            models = "M" if name == "E_msmr" else "S and G"
            self.say(f"reusing the {name} of the unchanged {models} for {len(values)} images")
        else:
            kept = (f"; the other {len(values) - n_missing} kept from before"
                    if n_missing < len(values) else "")
            self.say(f"scoring {n_missing} unlabelled images ({what}{kept})"
                     + about(n_missing))
            values[missing] = timed(seconds, phase, lambda: compute(unlabeled[missing]))
            store_scores(self.score_cache, fingerprint, columns, keys[missing],
                         values[missing])
        if name == "E_msmr":
            return values[:, 0], n_missing
        return fuse_evidence(values, self.fusion), n_missing

    def _tie_scores(self, pool: ImagePool, unlabeled: np.ndarray, keys: np.ndarray,
                    iterative: bool, seconds: dict[str, float]) -> np.ndarray | None:
        """The E_msmr that breaks ties (``tie_break="msmr"``), NaN where M never scored an
        image; None when ties are broken by content alone."""
        if self.tie_break != "msmr" or not is_fitted(self.msmr_scorer):
            return None
        msmr = self.score_cache.lookup("E_msmr", model_fingerprint(self.msmr_scorer), keys)
        if iterative and np.isnan(msmr).any() and not np.isnan(msmr).all():
            # images that joined the pool after M scored it get their E_msmr too, so
            # that ties among them are broken as among the others
            msmr, _ = self._scores("E_msmr", pool, unlabeled, keys, seconds)
        return msmr

    def _batch_msmr(self, pool: ImagePool, unlabeled: np.ndarray, rows: np.ndarray,
                    keys: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        """Positions ``rows`` ordered by M's E_msmr, highest first (ties by content)."""
        msmr, _ = self._scores("E_msmr", pool, unlabeled[rows], keys[rows], seconds)
        by_msmr, _ = rank_pool(msmr, len(msmr), tie_keys=tie_keys(keys[rows]))
        return rows[by_msmr]

    def _keys(self, pool: ImagePool, keys: np.ndarray | None) -> np.ndarray:
        """The pool's content keys: ``keys`` when given, else computed once per pool."""
        if keys is not None:
            return np.asarray(keys)
        if self._content_keys is None or self._content_keys[0] is not pool:
            self._content_keys = (pool, content_keys(pool))
        return self._content_keys[1]
