"""Bring a round's models up to date: M on the pool, S and G on the labelled set.

A part of :class:`sid4ds.engine.rounds.SID4DSRounds` (a mixin): step 2 of
:meth:`~sid4ds.engine.rounds.SID4DSRounds.run_round`, training what the labelled set allows.
M (self-supervised) is trained on the pool once, when the cold start or G needs it (again
under ``drift_rule="refresh"``); in the iterative stage S is trained on X_L ∪ X_FN (from its
previous weights after the first time) unless it already is for this round, and G once, a
copy of M trained label-guided. Every training is announced through ``say`` (with a time
estimate for someone who reads it), timed in the round's ``seconds`` and recorded in
``trained_for`` (and ``on_trained``). Before all that, :func:`configure_models` configures
S and M with the one seeding rule of a run (re-exported by :mod:`sid4ds.engine.rounds`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import draw_seed, make_rng
from sid4ds.datasets.pool import ImagePool
from sid4ds.engine._timing import estimate_note, timed
from sid4ds.estimators.base import is_fitted
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows

__all__ = ["RoundTraining", "configure_models"]


def configure_models(
    segmenter: SegmentationLearner | None,
    scorer: ReconstructionScorer | None,
    random_state: Any,
    **params: Any,
) -> tuple[SegmentationLearner, ReconstructionScorer]:
    """Unfitted clones of S and M, seeded from ``random_state`` where they have no seed.

    The one seeding rule of a SID4DS run: one Generator from ``random_state``
    (:func:`~sid4ds._core.random.make_rng`) draws S's seed, then M's (G is a copy of M). The
    labelling session seeds its models with the same rule from its ``seed``.

    Parameters
    ----------
    segmenter, scorer : estimator or None
        Configurations of S and M (cloned); None: the defaults.
    random_state : int, Generator, RandomState or None
        Seeds the models whose own ``random_state`` is None.
    **params
        Set on both (e.g. ``verbose=1``).

    Returns
    -------
    segmenter, scorer : SegmentationLearner, ReconstructionScorer
    """
    rng = make_rng(random_state)
    configured = []
    for estimator, default in ((segmenter, SegmentationLearner), (scorer, ReconstructionScorer)):
        model = clone(estimator) if estimator is not None else default()
        if model.get_params()["random_state"] is None:
            model.set_params(random_state=draw_seed(rng))
        configured.append(model.set_params(**params))
    return configured[0], configured[1]


class RoundTraining:
    """Training S, M and G for a round (a part of ``SID4DSRounds``)."""

    def _train_msmr(self, pool: ImagePool, round_index: int, seconds: dict[str, float],
                    trained: list[str]) -> None:
        """M on the whole pool: the cold start ranks by it; G starts from its weights (§3.3)."""
        self.say(f"training the self-supervised reconstruction learner M on {len(pool)} "
                 f"images{self._about(self.msmr_scorer, len(pool), pool, train=True)}")
        timed(seconds, "train_M", lambda: self.msmr_scorer.fit(pool))
        self._trained("M", self.msmr_scorer, round_index, trained)

    def _refresh(self, pool: ImagePool, round_index: int, seconds: dict[str, float],
                 trained: list[str]) -> None:
        """``drift_rule="refresh"``: M trained again on the grown pool, G to be made from it."""
        self.msmr_scorer = clone(self.msmr_scorer)
        self.say(f"training M again on all {len(pool)} images"
                 + self._about(self.msmr_scorer, len(pool), pool, train=True))
        timed(seconds, "train_M", lambda: self.msmr_scorer.fit(pool))
        self._trained("M", self.msmr_scorer, round_index, trained)
        self.sdr_scorer = None  # made again from the new M when the iterative stage needs it

    def _update_supervised(self, X_train: np.ndarray, y_train: np.ndarray, round_index: int,
                           seconds: dict[str, float], trained: list[str]) -> None:
        """S on X_L ∪ X_FN unless trained for this round; G made from M and trained once."""
        if not is_fitted(self.segmenter) or self.trained_for.get("S", -1) < round_index:
            self._fit_segmenter(X_train, y_train, round_index, seconds, trained)
        made = self.sdr_scorer is None
        if made:
            self.sdr_scorer = self.msmr_scorer.guided_copy(self.guided_epochs)
        guided = is_fitted(self.sdr_scorer) and getattr(
            self.sdr_scorer, "fit_mode_", None) == "label_guided"
        if made or not guided or (self.retrain_scorer
                                  and self.trained_for.get("G", -1) < round_index):
            self.say("training the label-guided reconstruction learner G"
                     + (" from M" if made else "")
                     + self._about(self.sdr_scorer, len(X_train), X_train, train=True))
            timed(seconds, "train_G", lambda: self.sdr_scorer.fit(X_train, y_train))
            self._trained("G", self.sdr_scorer, round_index, trained)

    def _fit_segmenter(self, X_train: np.ndarray, y_train: np.ndarray, round_index: int,
                       seconds: dict[str, float], trained: list[str]) -> None:
        n_defective = int(defective_rows(y_train).sum())
        self.say(f"training the segmentation learner S on {len(X_train)} images "
                 f"({n_defective} defective)"
                 + self._about(self.segmenter, len(X_train), X_train, train=True))
        # after the first fit S continues from its weights (the paper's iterative stage);
        # the user's own warm_start setting is left as it is
        continue_training = is_fitted(self.segmenter) and hasattr(self.segmenter, "partial_fit")
        train = self.segmenter.partial_fit if continue_training else self.segmenter.fit
        timed(seconds, "train_S", lambda: train(X_train, y_train))
        self._trained("S", self.segmenter, round_index, trained)

    def _about(self, models: Any, n_images: int, images: Any, *, train: bool,
               copies: int = 1) -> str:
        """``", about 3.2 min"`` from a measured warm-up, when someone reads the messages."""
        if not self._estimate:
            return ""
        return estimate_note(models, n_images, images, train=train, copies=copies)

    def _trained(self, kind: str, model: Any, round_index: int, trained: list[str]) -> None:
        self.trained_for[kind] = round_index
        trained.append(kind)
        if self.on_trained is not None:
            self.on_trained(kind, model, round_index)
