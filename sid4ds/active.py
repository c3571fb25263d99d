"""modAL on images and masks (DefectActiveLearner) and the whole SID4DS loop (run_sid4ds)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from modAL.models import ActiveLearner
from sklearn.base import clone

from sid4ds._validation import (
    check_choice,
    check_float,
    check_images,
    check_int,
    check_masks,
    make_rng,
)
from sid4ds.pool import ImagePool, as_pool
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.segmentation import SegmentationLearner
from sid4ds.strategies import content_keys, msmr_sampling, msmr_scores, rank_pool, sdr_scores

__all__ = ["DefectActiveLearner", "SID4DSRun", "resolve_n_normal", "run_sid4ds"]


def resolve_n_normal(
    n_normal: int | str, n_instances: int, n_pool: int, expected_defect_ratio: float = 0.05
) -> int:
    """V, the number of fake normals per round.

    The paper ties the ratio of K and V to the product qualification rate (§3.1.3).
    ``"auto"`` takes ``V = round(K · (1 − expected_defect_ratio))``: as many fake normals as
    the labelled batch would hold normal images if it were drawn at random. An int is used
    as given; 0 turns fake normals off. V never exceeds what the pool has left after the
    top K.

    Parameters
    ----------
    n_normal : int or "auto"
        V, or ``"auto"``.
    n_instances : int
        K, images selected for labelling this round.
    n_pool : int
        Images in the pool this round.
    expected_defect_ratio : float, default=0.05
        Expected share of defective images in the pool (1 − qualification rate).

    Returns
    -------
    n_normal : int

    Examples
    --------
    >>> from sid4ds.active import resolve_n_normal
    >>> resolve_n_normal("auto", n_instances=100, n_pool=1000, expected_defect_ratio=0.05)
    95
    >>> resolve_n_normal(500, n_instances=100, n_pool=300)
    200
    """
    ratio = check_float(expected_defect_ratio, "expected_defect_ratio", low=0.0, high=1.0)
    if n_normal == "auto":
        wanted = int(round(n_instances * (1.0 - ratio)))
    else:
        wanted = check_int(n_normal, "n_normal", minimum=0)
    return max(0, min(wanted, n_pool - min(n_instances, n_pool)))


class DefectActiveLearner(ActiveLearner):
    """modAL's ActiveLearner for images and pixel masks, with SID4DS fake normals.

    modAL-python 0.4.2.1 validates training data with ``check_X_y(force_all_finite=...)``,
    which scikit-learn ≥ 1.8 removed, and rejects masks of shape (n, H, W). This subclass
    validates images and masks with sid4ds's own checks instead, so ``fit``, ``teach``,
    ``query`` and ``score`` work on current scikit-learn and numpy.

    With a sid4ds strategy, ``query`` also picks the bottom V of the ranking as fake normals
    (X_FN, Algorithm 1 lines 4 and 11): they get all-zero masks, join the training set of the
    next ``teach`` only, stay in the caller's pool, and are forgotten after that ``teach``.

    Parameters
    ----------
    estimator : SegmentationLearner
        The segmentation learner S (any estimator with ``fit(X, masks)`` works).
    query_strategy : callable, default=msmr_sampling
        ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)``.
    X_training : array-like of shape (n_samples, n_channels, height, width), optional
        Initial labelled images; the estimator is fitted on them at construction.
    y_training : array-like of shape (n_samples, height, width), optional
        Their masks.
    n_normal : int or "auto", default="auto"
        V, fake normals per query (see :func:`resolve_n_normal`); 0 turns them off. Needs a
        strategy that scores the whole pool (the sid4ds strategies do); with other
        strategies ``"auto"`` picks none and a positive int is an error.
    expected_defect_ratio : float, default=0.05
        Used by ``n_normal="auto"``.
    warm_start : bool, default=True
        After the first training, retrain the estimator from its current weights
        (``partial_fit``), as the paper does from round 2 on; False refits from scratch.
    bootstrap_init : bool, default=False
        As in modAL: bootstrap the initial training set.
    random_state : int or None, default=None
        Seeds bootstrapping (modAL uses numpy's global RNG for it; this class does not).
    **fit_kwargs
        Passed to the estimator's ``fit``.

    Attributes
    ----------
    X_training, y_training : ndarray
        Labelled images (n, C, H, W) float32 and masks (n, H, W) uint8 (X_L).
    X_fake_normal : ndarray or None
        Fake normals picked by the last ``query`` (X_FN); emptied by ``teach``.
    fake_normal_indices_ : ndarray of int
        Their indices in the last queried pool.
    msmr_scorer, sdr_scorer : ReconstructionScorer
        Kept here by the strategies (see :mod:`sid4ds.strategies`).

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, ReconstructionScorer, SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     n_normal=5)
    >>> learner.msmr_scorer = ReconstructionScorer(base_channels=4, depth=2, patch_size=4,
    ...                                            n_blocks=4, max_epochs=1, random_state=0)
    >>> indices, X_query, fake_normals = learner.query(X, n_instances=4,
    ...                                                return_fake_normals=True)
    >>> len(indices), len(fake_normals), bool(set(indices) & set(fake_normals))
    (4, 5, False)
    >>> learner.teach(X_query, masks[indices])
    >>> learner.X_training.shape, learner.X_fake_normal is None
    ((4, 1, 16, 16), True)
    """

    def __init__(
        self,
        estimator: Any,
        query_strategy: Callable[..., Any] = msmr_sampling,
        X_training: Any = None,
        y_training: Any = None,
        *,
        n_normal: int | str = "auto",
        expected_defect_ratio: float = 0.05,
        warm_start: bool = True,
        bootstrap_init: bool = False,
        random_state: Any = None,
        **fit_kwargs: Any,
    ) -> None:
        self.n_normal = n_normal
        self.expected_defect_ratio = expected_defect_ratio
        self.warm_start = warm_start
        self.random_state = random_state
        self._rng = make_rng(random_state)
        self.X_fake_normal: np.ndarray | None = None
        self.fake_normal_indices_ = np.empty(0, dtype=np.int64)
        self._trained = False
        if X_training is not None:
            X_training, y_training = self._check_labeled(X_training, y_training)
        super().__init__(estimator, query_strategy, X_training, y_training,
                         bootstrap_init=bootstrap_init, **fit_kwargs)

    # ------------------------------------------------------------------ data
    def _check_labeled(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        channels = None if getattr(self, "X_training", None) is None else self.X_training.shape[1]
        shape = None if channels is None else self.X_training.shape[2:]
        images = check_images(X, n_channels=channels, image_shape=shape)
        masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                            width=images.shape[3])
        return images, masks

    def _add_training_data(self, X: Any, y: Any) -> None:
        images, masks = self._check_labeled(X, y)
        if self.X_training is None:
            self.X_training, self.y_training = images, masks
        else:
            self.X_training = np.concatenate([self.X_training, images])
            self.y_training = np.concatenate([self.y_training, masks])

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """X_L ∪ X_FN with their masks (all-zero for the fake normals).

        Returns
        -------
        X : ndarray of shape (n_labeled + n_fake_normal, n_channels, height, width)
        y : ndarray of shape (n_labeled + n_fake_normal, height, width), uint8
        """
        if self.X_training is None:
            raise ValueError("the learner has no labelled images yet; teach it first")
        if self.X_fake_normal is None or len(self.X_fake_normal) == 0:
            return self.X_training, self.y_training
        zeros = np.zeros((len(self.X_fake_normal), *self.y_training.shape[1:]), np.uint8)
        return (np.concatenate([self.X_training, self.X_fake_normal]),
                np.concatenate([self.y_training, zeros]))

    # ------------------------------------------------------------------ training
    def _fit_estimator(self, X: np.ndarray, y: np.ndarray, bootstrap: bool,
                       **fit_kwargs: Any) -> None:
        if bootstrap:
            rows = self._rng.integers(0, len(X), size=len(X))
            X, y = X[rows], y[rows]
        if self.warm_start and self._trained and hasattr(self.estimator, "partial_fit"):
            self.estimator.partial_fit(X, y, **fit_kwargs)
        else:
            self.estimator.fit(X, y, **fit_kwargs)
        self._trained = True

    def _fit_to_known(self, bootstrap: bool = False, **fit_kwargs: Any) -> DefectActiveLearner:
        X, y = self.training_data()
        self._fit_estimator(X, y, bootstrap, **fit_kwargs)
        return self

    def _fit_on_new(self, X: Any, y: Any, bootstrap: bool = False,
                    **fit_kwargs: Any) -> DefectActiveLearner:
        images, masks = self._check_labeled(X, y)
        if self.X_fake_normal is not None and len(self.X_fake_normal):
            zeros = np.zeros((len(self.X_fake_normal), *masks.shape[1:]), np.uint8)
            images = np.concatenate([images, self.X_fake_normal])
            masks = np.concatenate([masks, zeros])
        self._fit_estimator(images, masks, bootstrap, **fit_kwargs)
        return self

    def fit(self, X: Any, y: Any, bootstrap: bool = False,
            **fit_kwargs: Any) -> DefectActiveLearner:
        """Forget the labelled set, replace it with ``X``/``y`` and train from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images.
        y : array-like of shape (n_samples, height, width)
            Masks.
        bootstrap : bool, default=False
            Train on a bootstrap sample of ``X``.
        **fit_kwargs
            Passed to the estimator's ``fit``.

        Returns
        -------
        self : DefectActiveLearner
        """
        self.X_training, self.y_training = None, None
        self.X_training, self.y_training = self._check_labeled(X, y)
        self._trained = False
        return self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    def teach(self, X: Any, y: Any, bootstrap: bool = False, only_new: bool = False,
              **fit_kwargs: Any) -> None:
        """Add labelled images, retrain on X_L ∪ X_FN, then empty X_FN.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Newly labelled images.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Their masks.
        bootstrap : bool, default=False
            Train on a bootstrap sample.
        only_new : bool, default=False
            Train on the new images (and the fake normals) only, as in modAL.
        **fit_kwargs
            Passed to the estimator's ``fit`` (or ``partial_fit``).
        """
        self._add_training_data(X, y)
        if only_new:
            self._fit_on_new(X, y, bootstrap=bootstrap, **fit_kwargs)
        else:
            self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)
        self.X_fake_normal = None
        self.fake_normal_indices_ = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ querying
    def query(self, X_pool: Any, *query_args: Any, return_metrics: bool = False,
              return_fake_normals: bool = False, **query_kwargs: Any) -> tuple[Any, ...]:
        """Rank the pool with the query strategy; keep the bottom V as fake normals.

        Parameters
        ----------
        X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
            Unlabelled images; or a memmap, a sequence of image paths, a torch Dataset or an
            :class:`~sid4ds.pool.ImagePool`, read in chunks (``X_query`` is then read from
            it as float32 images).
        *query_args, **query_kwargs
            Passed to the strategy (``n_instances=K`` among them).
        return_metrics : bool, default=False
            Also return the selected images' scores (modAL's convention).
        return_fake_normals : bool, default=False
            Also return the indices of the fake normals chosen in this query.

        Returns
        -------
        indices : ndarray of int
            Selected pool indices, best first.
        X_query : ndarray
            ``X_pool[indices]``.
        metrics : ndarray
            Only with ``return_metrics``.
        fake_normal_indices : ndarray of int
            Only with ``return_fake_normals``; disjoint from ``indices``.
        """
        images = as_pool(X_pool, name="X_pool")
        self.__dict__.pop("pool_scores_", None)
        result = super().query(images, *query_args, return_metrics=return_metrics,
                               **query_kwargs)
        indices = np.asarray(result[0])
        self._pick_fake_normals(images, indices, n_instances=len(indices))
        if return_fake_normals:
            return (*result, self.fake_normal_indices_)
        return result

    def _pick_fake_normals(self, images: ImagePool, indices: np.ndarray,
                           n_instances: int) -> None:
        n_normal = resolve_n_normal(self.n_normal, n_instances, len(images),
                                    self.expected_defect_ratio)
        scores = self.__dict__.get("pool_scores_")
        if n_normal == 0 or scores is None:
            if n_normal > 0 and self.n_normal != "auto":
                raise ValueError(
                    f"n_normal={self.n_normal} needs a query strategy that scores the whole "
                    f"pool (msmr_sampling, sdr_sampling); set n_normal=0 with other strategies"
                )
            self.X_fake_normal = None
            self.fake_normal_indices_ = np.empty(0, dtype=np.int64)
            return
        # the selected images go to the top whatever the strategy's own order, so the
        # fake normals are the lowest-ranked of the rest
        finite = np.minimum(np.asarray(scores, dtype=np.float64), np.finfo(np.float64).max)
        ranked = np.where(np.isin(np.arange(len(images)), indices), np.inf, finite)
        _, bottom = rank_pool(ranked, n_instances, n_normal,
                              tie_keys=self.__dict__.get("pool_keys_"))
        self.fake_normal_indices_ = bottom
        self.X_fake_normal = images[bottom]


@dataclass
class SID4DSRun:
    """What :func:`run_sid4ds` did, round by round, and the models it trained.

    Attributes
    ----------
    rounds : list of dict
        One plain record per round (round 0 is the cold start): ``round``, ``stage``
        (``"cold_start"`` or ``"iterative"``), ``selected`` (pool indices, best first),
        ``scores`` (their scores), ``fake_normals`` (pool indices), ``n_defective`` (how many
        selected images have a defect pixel in the oracle's masks), ``n_labeled`` (labelled
        so far), ``cumulative_defective``, and ``seconds`` (wall time per phase).
    labeled_indices : ndarray of int
        All labelled pool indices, in labelling order.
    labeled_masks : ndarray of shape (n_labeled, height, width)
        The oracle's masks for them.
    segmenter : SegmentationLearner
        S after the last round.
    msmr_scorer, sdr_scorer : ReconstructionScorer
        M and G.

    Examples
    --------
    >>> from sid4ds import SID4DSRun
    >>> run = SID4DSRun(rounds=[{"round": 0, "stage": "cold_start", "n_labeled": 10,
    ...                          "n_defective": 3, "cumulative_defective": 3,
    ...                          "seconds": {"train_M": 1.5}}])
    >>> print(run.table(n_defective_total=4).splitlines()[2])
    | 0 | cold_start | 10 | 3 | 3 | 75% | 1.5 |
    """

    rounds: list[dict[str, Any]] = field(default_factory=list)
    labeled_indices: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    labeled_masks: np.ndarray | None = None
    segmenter: SegmentationLearner | None = None
    msmr_scorer: ReconstructionScorer | None = None
    sdr_scorer: ReconstructionScorer | None = None

    def table(self, n_defective_total: int | None = None) -> str:
        """The per-round record as a markdown table.

        Parameters
        ----------
        n_defective_total : int, optional
            Defective images in the whole pool; adds the share found so far.
        """
        header = ["round", "stage", "labeled", "defective selected", "defective so far"]
        if n_defective_total:
            header.append("share found")
        header.append("seconds")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for record in self.rounds:
            cells = [str(record["round"]), record["stage"], str(record["n_labeled"]),
                     str(record["n_defective"]), str(record["cumulative_defective"])]
            if n_defective_total:
                cells.append(f"{record['cumulative_defective'] / n_defective_total:.0%}")
            cells.append(f"{sum(record['seconds'].values()):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _ask_oracle(oracle: Callable[[np.ndarray], Any], indices: np.ndarray,
                height: int, width: int) -> np.ndarray:
    masks = oracle(indices.copy())
    return check_masks(masks, name="oracle(indices)", n_samples=len(indices), height=height,
                       width=width)


def _n_defective(masks: np.ndarray) -> int:
    return int(masks.reshape(len(masks), -1).any(axis=1).sum())


def run_sid4ds(
    X_pool: Any,
    oracle: Callable[[np.ndarray], Any],
    *,
    n_rounds: int = 2,
    n_label: int,
    n_normal: int | str = "auto",
    expected_defect_ratio: float = 0.05,
    segmenter: SegmentationLearner | None = None,
    scorer: ReconstructionScorer | None = None,
    guided_epochs: int | None = None,
    retrain_scorer: bool = False,
    tie_break: str = "msmr",
    random_state: Any = None,
    verbose: int = 0,
) -> SID4DSRun:
    """Algorithm 1 of the SID4DS paper, end to end, with ``oracle`` as the human.

    Cold start: train the self-supervised scorer M on the pool, rank by E_msmr, ask the
    oracle for the top K masks, make the bottom V fake normals, train S and G (G starts from
    M's weights) on X_L ∪ X_FN. Then ``n_rounds`` times: S predicts pseudolabels on the
    unlabelled pool, G gives E_sdr inside them, the top K are labelled, the bottom V become
    this round's fake normals, S is retrained from its previous weights on X_L ∪ X_FN. G is
    trained once, as in the paper (§4.2), unless ``retrain_scorer``.

    Parameters
    ----------
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        The unlabelled pool; or a memmap, a sequence of image paths, a torch Dataset or an
        :class:`~sid4ds.pool.ImagePool` (scored in chunks; M trains on batches read as
        drawn; only the labelled images and fake normals are held in memory).
    oracle : callable
        ``oracle(indices) -> masks`` of shape (len(indices), height, width): the human
        labeller, given pool indices.
    n_rounds : int, default=2
        Iterations T after the cold start.
    n_label : int
        K, images labelled per round (the paper: 10% of the pool).
    n_normal : int or "auto", default="auto"
        V, fake normals per round (:func:`resolve_n_normal`); 0 turns them off.
    expected_defect_ratio : float, default=0.05
        For ``n_normal="auto"``.
    segmenter : SegmentationLearner, optional
        Configuration of S (cloned); default ``SegmentationLearner()``.
    scorer : ReconstructionScorer, optional
        Configuration of M (cloned; G is a copy of the fitted M); default
        ``ReconstructionScorer()``.
    guided_epochs : int, optional
        Epochs for G; defaults to M's ``max_epochs``.
    retrain_scorer : bool, default=False
        Retrain G (from its weights) after every round, not only at the cold start.
    tie_break : {"msmr", "content"}, default="msmr"
        How images with equal E_sdr are ordered in the iterative stage. E_sdr is 0 for
        every image in which S predicts no defect pixel, often most of the pool;
        ``"msmr"`` orders those by their cold-start E_msmr (an addition to the paper),
        ``"content"`` by a hash of their pixels (an arbitrary but reproducible order, as
        the paper leaves ties unspecified).
    random_state : int, RandomState, Generator or None, default=None
        Seeds S, M and G when their own ``random_state`` is None.
    verbose : int, default=0
        Print each phase and show training progress bars.

    Returns
    -------
    run : SID4DSRun
        The per-round records and the trained models.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.1,
    ...                               random_state=0)
    >>> run = run_sid4ds(
    ...     X, lambda indices: masks[indices], n_rounds=1, n_label=4,
    ...     segmenter=SegmentationLearner(base_channels=4, depth=2, max_epochs=1),
    ...     scorer=ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                                 max_epochs=1),
    ...     random_state=0)
    >>> [record["n_labeled"] for record in run.rounds]
    [4, 8]
    """
    images = as_pool(X_pool, name="X_pool")
    n_pool, (_, height, width) = len(images), images.image_shape
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    n_label = check_int(n_label, "n_label", minimum=1)
    check_choice(tie_break, "tie_break", ("msmr", "content"))
    if guided_epochs is not None:
        guided_epochs = check_int(guided_epochs, "guided_epochs", minimum=1)
    if not callable(oracle):
        raise TypeError(f"oracle must be callable as oracle(indices) -> masks; got {oracle!r}")
    rng = make_rng(random_state)

    def configured(estimator: Any, default: Any) -> Any:
        model = clone(estimator) if estimator is not None else default
        if model.get_params()["random_state"] is None:
            model.set_params(random_state=int(rng.integers(2**31)))
        return model.set_params(verbose=verbose)

    segmenter = configured(segmenter, SegmentationLearner())
    msmr_scorer = configured(scorer, ReconstructionScorer())
    tie_keys: np.ndarray = content_keys(images)
    run = SID4DSRun(segmenter=segmenter, msmr_scorer=msmr_scorer)
    unlabeled = np.arange(n_pool)
    labeled: list[np.ndarray] = []
    labeled_masks: list[np.ndarray] = []

    def say(message: str) -> None:
        if verbose:
            print(f"[sid4ds] {message}", flush=True)

    def label_round(stage: str, scores: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        """Rank the unlabelled pool, ask the oracle, return this round's fake normals."""
        nonlocal unlabeled
        n_fake = resolve_n_normal(n_normal, n_label, len(unlabeled), expected_defect_ratio)
        top, bottom = rank_pool(scores, n_label, n_fake, tie_keys=tie_keys[unlabeled])
        selected, fake_normals = unlabeled[top], unlabeled[bottom]
        started = time.perf_counter()
        masks = _ask_oracle(oracle, selected, height, width)
        seconds["oracle"] = time.perf_counter() - started
        labeled.append(selected)
        labeled_masks.append(masks)
        unlabeled = np.setdiff1d(unlabeled, selected)
        previous = run.rounds[-1]["cumulative_defective"] if run.rounds else 0
        found = _n_defective(masks)
        run.rounds.append({
            "round": len(run.rounds), "stage": stage, "selected": selected,
            "scores": scores[top], "fake_normals": fake_normals, "n_defective": found,
            "n_labeled": sum(len(part) for part in labeled),
            "cumulative_defective": previous + found, "seconds": seconds,
        })
        say(f"round {len(run.rounds) - 1} ({stage}): labelled {len(selected)}, "
            f"{found} defective, {len(fake_normals)} fake normals")
        return fake_normals

    def training_set(fake_normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.concatenate([*labeled, fake_normals])
        zeros = np.zeros((len(fake_normals), height, width), np.uint8)
        return images[indices], np.concatenate([*labeled_masks, zeros])

    # ---------------------------------------------------------------- cold start
    seconds: dict[str, float] = {}
    say("training the self-supervised reconstruction learner M on the pool")
    started = time.perf_counter()
    msmr_scorer.fit(images)
    seconds["train_M"] = time.perf_counter() - started
    started = time.perf_counter()
    msmr = msmr_scores(msmr_scorer, images)
    seconds["score_msmr"] = time.perf_counter() - started
    if tie_break == "msmr":
        tie_keys = msmr  # images that S flags nowhere (E_sdr = 0) keep their E_msmr order
    fake_normals = label_round("cold_start", msmr, seconds)
    X_train, y_train = training_set(fake_normals)
    say("training the segmentation learner S and the label-guided learner G")
    started = time.perf_counter()
    segmenter.fit(X_train, y_train)
    seconds["train_S"] = time.perf_counter() - started
    started = time.perf_counter()
    sdr_scorer = copy.deepcopy(msmr_scorer).set_params(warm_start=True)
    if guided_epochs is not None:
        sdr_scorer.set_params(max_epochs=guided_epochs)
    sdr_scorer.fit(X_train, y_train)
    seconds["train_G"] = time.perf_counter() - started
    run.sdr_scorer = sdr_scorer
    segmenter.set_params(warm_start=True)

    # ---------------------------------------------------------------- iterative stage
    for _ in range(n_rounds):
        if len(unlabeled) == 0:
            break
        seconds = {}
        started = time.perf_counter()
        sdr = sdr_scores(segmenter, sdr_scorer, images.subset(unlabeled))
        seconds["score_sdr"] = time.perf_counter() - started
        fake_normals = label_round("iterative", sdr, seconds)
        X_train, y_train = training_set(fake_normals)
        started = time.perf_counter()
        segmenter.fit(X_train, y_train)
        seconds["train_S"] = time.perf_counter() - started
        if retrain_scorer:
            started = time.perf_counter()
            sdr_scorer.fit(X_train, y_train)
            seconds["train_G"] = time.perf_counter() - started

    run.labeled_indices = np.concatenate(labeled)
    run.labeled_masks = np.concatenate(labeled_masks)
    return run
