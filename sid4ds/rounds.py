"""One SID4DS round (Algorithm 1): the only place the method's round logic lives.

A round, wherever it runs (:func:`~sid4ds.run_sid4ds`, a
:class:`~sid4ds.LabelingSession`, the benchmark), is :meth:`SID4DSRounds.run_round`:

1. **bring the models up to date** with what is labelled: M (self-supervised) is trained on
   the pool once; once the labelled set (X_L plus the previous round's fake normals X_FN)
   holds a defective and a normal image, S is trained on it (from its previous weights
   after the first time) and G once (a copy of M, trained label-guided);
2. **score** the unlabelled images: E_sdr with S and G once they exist (the iterative
   stage), E_msmr with M before (the cold start; the scores of an unchanged M are reused,
   never computed twice);
3. **select** with the one rule of :mod:`sid4ds.selection`: the top K are to be labelled,
   the bottom V become this round's fake normals (:func:`resolve_n_normal`), ties broken by
   the cold-start E_msmr when it was computed, then by image content.

So a session whose labeller answers like an oracle picks what ``run_sid4ds`` picks, by
construction. :func:`label_rounds` is the skeleton every active-learning loop of sid4ds
shares (select, ask the labeller, record), SID4DS's and the benchmark's baselines'.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._random import draw_seed, make_rng
from sid4ds._torch import is_fitted
from sid4ds._validation import check_choice, check_float, check_int, check_masks
from sid4ds.metrics import defective_rows
from sid4ds.pool import ImagePool
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.segmentation import SegmentationLearner
from sid4ds.selection import content_keys, rank_pool, tie_keys
from sid4ds.strategies import FUSION_RULES, REGION_RULES, msmr_scores, sdr_scores

__all__ = [
    "LabelledRound",
    "RoundResult",
    "SID4DSRounds",
    "ask_oracle",
    "configure_models",
    "format_duration",
    "label_rounds",
    "labels_per_round",
    "model_fingerprint",
    "remaining_estimate",
    "resolve_n_normal",
    "scores_key",
]

#: The stages of a round and the score each ranks by.
STAGE_SCORES = {"cold_start": "E_msmr", "iterative": "E_sdr"}


def labels_per_round(label_share: float, n_pool: int) -> int:
    """K, the number of images labelled per round, from its share of the pool.

    The paper labels 10% of the pool per round (§4.2): ``K = round(label_share · n_pool)``,
    at least one image. Every caller of sid4ds that turns a share into K (the demo, the
    benchmark, a labelling session) uses this one rule.

    Parameters
    ----------
    label_share : float
        Share of the pool labelled per round, in (0, 1].
    n_pool : int
        Images in the whole pool (labelled or not), at least 1.

    Returns
    -------
    n_label : int
        K, between 1 and ``n_pool``.

    Examples
    --------
    >>> from sid4ds.rounds import labels_per_round
    >>> labels_per_round(0.1, 805), labels_per_round(0.1, 4)
    (80, 1)
    """
    share = check_float(label_share, "label_share", low=0.0, high=1.0, include_low=False)
    n_pool = check_int(n_pool, "n_pool", minimum=1)
    return min(n_pool, max(1, int(round(share * n_pool))))


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
    >>> from sid4ds.rounds import resolve_n_normal
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


#: Parameters that never change what a fitted estimator computes.
_NOT_SCORING = frozenset({"verbose", "n_jobs", "warm_start", "device", "inference_batch_size"})


def model_fingerprint(estimator: Any) -> str:
    """A hex digest of what a fitted estimator computes: weights, fitted statistics, settings.

    Equal digests mean equal scores for equal images: the network's weights, the fitted
    attributes (e.g. M's pixel mean and standard deviation) and every parameter that can
    change an output (e.g. ``n_blocks``, ``error_region``; not ``verbose``, ``n_jobs``,
    ``warm_start``, ``device`` or ``inference_batch_size``) go into it.

    Parameters
    ----------
    estimator : fitted sid4ds estimator
        Anything with :meth:`~sid4ds._torch.TorchEstimator.get_state`.

    Returns
    -------
    fingerprint : str
        A hex digest.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.rounds import model_fingerprint
    >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0).fit(X)
    >>> before = model_fingerprint(M)
    >>> before == model_fingerprint(M.set_params(verbose=1))
    True
    >>> before == model_fingerprint(M.set_params(error_region="image"))
    False
    """
    state = estimator.get_state()
    digest = hashlib.sha256()
    settings = {key: value for key, value in state["params"].items() if key not in _NOT_SCORING}
    digest.update(repr(sorted(settings.items())).encode())
    for group in ("fitted", "module"):
        for name, value in sorted(state[group].items()):
            digest.update(name.encode())
            if hasattr(value, "detach"):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()


def scores_key(estimator: Any, pool_keys: np.ndarray) -> str:
    """The key of the scores a fitted estimator gave a pool: its fingerprint and the pool's.

    ``pool_keys`` are the pool's :func:`~sid4ds.selection.content_keys`, so the same model
    on another pool (or on the same images in another order) never reuses scores.

    Parameters
    ----------
    estimator : fitted estimator
        The model that scored the pool.
    pool_keys : ndarray of shape (n_pool,)
        The pool's content keys.

    Returns
    -------
    key : str
        A hex digest.
    """
    digest = hashlib.sha256(model_fingerprint(estimator).encode())
    digest.update(np.ascontiguousarray(pool_keys).tobytes())
    return digest.hexdigest()


def configure_models(
    segmenter: SegmentationLearner | None,
    scorer: ReconstructionScorer | None,
    random_state: Any,
    **params: Any,
) -> tuple[SegmentationLearner, ReconstructionScorer]:
    """Unfitted clones of S and M, seeded from ``random_state`` where they have no seed.

    The one seeding rule of a SID4DS run: one Generator from ``random_state``
    (:func:`~sid4ds._random.make_rng`) draws S's seed, then M's (G is a copy of M). The
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


@dataclass
class RoundResult:
    """What one round chose, and why.

    Attributes
    ----------
    round : int
        Its index (0 is the first round).
    stage : {"cold_start", "iterative"}
    score : {"E_msmr", "E_sdr"}
        What the unlabelled images were ranked by.
    reason : str
        Why the round is in its stage, in words for the user.
    scores : ndarray of shape (n_unlabelled,)
        The score of every unlabelled image, in the order they were given.
    selected : ndarray of int
        Positions (into the unlabelled images given) of the top K, best first.
    fake_normals : ndarray of int
        Positions of the bottom V, lowest first; disjoint from ``selected``.
    order : ndarray of int
        Every position, best first, by the same rule (ties included) as ``selected``: its
        first K are ``selected``.
    trained : list of str
        The models trained in this round (``"M"``, ``"S"``, ``"G"``).
    reused_scores : bool
        True when the scores came from an earlier round (an unchanged M).
    seconds : dict of str to float
        Wall time of each phase: ``train_M``, ``train_S``, ``train_G``, ``score_msmr`` or
        ``score_sdr``.
    """

    round: int
    stage: str
    score: str
    reason: str
    scores: np.ndarray
    selected: np.ndarray
    fake_normals: np.ndarray
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    trained: list[str] = field(default_factory=list)
    reused_scores: bool = False
    seconds: dict[str, float] = field(default_factory=dict)


class SID4DSRounds:
    """The three learners of SID4DS and the rule of a round (see the module docstring).

    Parameters
    ----------
    segmenter : SegmentationLearner
        S, configured (unfitted) or fitted by an earlier round (``trained_for["S"]`` says
        for which).
    scorer : ReconstructionScorer
        M, configured or fitted.
    sdr_scorer : ReconstructionScorer, optional
        G when it exists already (a resumed session); otherwise it is made from M.
    guided_epochs : int, optional
        Epochs of G; default M's ``max_epochs``.
    retrain_scorer : bool, default=False
        Retrain G (from its weights) in every iterative round, not only the first.
    tie_break : {"msmr", "content"}, default="msmr"
        ``"msmr"``: equal scores are ordered by their cold-start E_msmr when it was computed
        (an addition to the paper), then by content; ``"content"``: by content only.
    region : {"adaptive", "threshold"}, default="adaptive"
        How S's probabilities become E_sdr's regions
        (:func:`sid4ds.strategies.pseudo_label_regions`); ``"threshold"`` is the paper's.
    fusion : {None, "rank"}, default=None
        The iterative score: E_sdr alone (None, the paper's), or E_sdr fused with S's mean
        probability by rank (:func:`sid4ds.strategies.fuse_ranks`).
    n_normal : int or "auto", default="auto"
        V per round (:func:`resolve_n_normal`).
    expected_defect_ratio : float, default=0.05
        For ``n_normal="auto"``.
    trained_for : dict of str to int, optional
        For a resumed run: the round each given model was last trained for.
    msmr_cache : mutable mapping, optional
        Where E_msmr scores are kept, by :func:`scores_key` of M and the pool: a dict (the
        default) or a store on disk (the session's). Values are arrays of shape (n_pool,)
        with NaN for images not scored.
    on_trained : callable, optional
        ``on_trained(kind, model, round_index)`` right after a model is trained (the
        session saves it there, so a killed round resumes).
    say : callable, optional
        ``say(message)`` for progress messages.

    Attributes
    ----------
    segmenter, msmr_scorer, sdr_scorer : estimators
        S, M and G (``sdr_scorer`` is None until the first iterative round).
    trained_for : dict of str to int
        The round each model was last trained for.
    """

    def __init__(
        self,
        segmenter: SegmentationLearner,
        scorer: ReconstructionScorer,
        *,
        sdr_scorer: ReconstructionScorer | None = None,
        guided_epochs: int | None = None,
        retrain_scorer: bool = False,
        tie_break: str = "msmr",
        region: str = "adaptive",
        fusion: str | None = None,
        n_normal: int | str = "auto",
        expected_defect_ratio: float = 0.05,
        trained_for: dict[str, int] | None = None,
        msmr_cache: MutableMapping[str, np.ndarray] | None = None,
        on_trained: Callable[[str, Any, int], None] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        check_choice(tie_break, "tie_break", ("msmr", "content"))
        check_choice(region, "region", REGION_RULES)
        check_choice(fusion, "fusion", FUSION_RULES)
        if guided_epochs is not None:
            guided_epochs = check_int(guided_epochs, "guided_epochs", minimum=1)
        if n_normal != "auto":
            check_int(n_normal, "n_normal", minimum=0)
        check_float(expected_defect_ratio, "expected_defect_ratio", low=0.0, high=1.0)
        self.segmenter = segmenter
        self.msmr_scorer = scorer
        self.sdr_scorer = sdr_scorer
        self.guided_epochs = guided_epochs
        self.retrain_scorer = bool(retrain_scorer)
        self.tie_break = tie_break
        self.region = region
        self.fusion = fusion
        self.n_normal = n_normal
        self.expected_defect_ratio = float(expected_defect_ratio)
        self.trained_for = dict(trained_for or {})
        self.msmr_cache: MutableMapping[str, np.ndarray] = (
            {} if msmr_cache is None else msmr_cache)
        self.on_trained = on_trained
        self.say = say or (lambda message: None)
        self._estimate = say is not None  # time estimates only for someone who reads them
        self._content_keys: tuple[ImagePool, np.ndarray] | None = None

    # ------------------------------------------------------------------ the round
    def run_round(
        self,
        pool: ImagePool,
        unlabeled: np.ndarray,
        X_train: np.ndarray,
        y_train: np.ndarray,
        round_index: int,
        n_label: int,
        *,
        keys: np.ndarray | None = None,
    ) -> RoundResult:
        """Train what the labelled set allows, score the unlabelled images, select.

        Parameters
        ----------
        pool : ImagePool
            The whole pool.
        unlabeled : ndarray of int
            Rows of ``pool`` to rank (neither labelled nor waiting for a label).
        X_train : ndarray of shape (n_train, n_channels, height, width)
            X_L ∪ X_FN: the labelled images, then the previous round's fake normals.
        y_train : ndarray of shape (n_train, height, width)
            Their masks (all zero for the fake normals).
        round_index : int
            This round's index.
        n_label : int
            K.
        keys : ndarray of shape (n_pool,), optional
            :func:`~sid4ds.selection.content_keys` of the pool, when known (computed once
            otherwise).

        Returns
        -------
        result : RoundResult
        """
        n_label = check_int(n_label, "n_label", minimum=1)
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        seconds: dict[str, float] = {}
        trained: list[str] = []
        defective = defective_rows(y_train)
        n_defective, n_normal = int(defective.sum()), int((~defective).sum())
        iterative = n_defective > 0 and n_normal > 0
        stage = "iterative" if iterative else "cold_start"
        reason = self._reason(len(y_train), n_defective, n_normal)
        self.say(f"round {round_index}, {stage.replace('_', ' ')} stage: {reason}")
        if not is_fitted(self.msmr_scorer):
            self.say(f"training the self-supervised reconstruction learner M on {len(pool)} "
                     f"images{self._about(self.msmr_scorer, len(pool), pool, train=True)}")
            self._timed(seconds, "train_M", lambda: self.msmr_scorer.fit(pool))
            self._trained("M", self.msmr_scorer, round_index, trained)
        pool_keys = self._keys(pool, keys)
        fingerprint = scores_key(self.msmr_scorer, pool_keys)
        reused = False
        if iterative:
            self._update_supervised(X_train, y_train, round_index, seconds, trained)
            self.say(f"scoring {len(unlabeled)} unlabelled images (E_sdr: S's regions, "
                     f"reconstructed by G)"
                     + self._about((self.segmenter, self.sdr_scorer), len(unlabeled), pool,
                                   train=False))
            scores = self._timed(seconds, "score_sdr", lambda: sdr_scores(
                self.segmenter, self.sdr_scorer, pool.subset(unlabeled), region=self.region,
                fusion=self.fusion))
        else:
            cached = self.msmr_cache.get(fingerprint)
            if cached is not None and not np.isnan(cached[unlabeled]).any():
                self.say(f"reusing the E_msmr of the unchanged M for {len(unlabeled)} images")
                scores, reused = np.asarray(cached[unlabeled], dtype=np.float64), True
            else:
                self.say(f"scoring {len(unlabeled)} unlabelled images (E_msmr, "
                         f"{self.msmr_scorer.n_blocks} masked copies each)"
                         + self._about(self.msmr_scorer, len(unlabeled), pool, train=False,
                                       copies=self.msmr_scorer.n_blocks))
                scores = self._timed(seconds, "score_msmr", lambda: msmr_scores(
                    self.msmr_scorer, pool.subset(unlabeled)))
                known = (np.full(len(pool), np.nan) if cached is None
                         else np.array(cached, dtype=np.float64))
                known[unlabeled] = scores
                self.msmr_cache[fingerprint] = known
        msmr = self.msmr_cache.get(fingerprint) if self.tie_break == "msmr" else None
        keys_of_unlabeled = tie_keys(pool_keys[unlabeled],
                                     None if msmr is None else msmr[unlabeled])
        n_fake = resolve_n_normal(self.n_normal, n_label, len(unlabeled),
                                  self.expected_defect_ratio)
        top, bottom = rank_pool(scores, n_label, n_fake, tie_keys=keys_of_unlabeled)
        order, _ = rank_pool(scores, len(scores), tie_keys=keys_of_unlabeled)
        return RoundResult(round=round_index, stage=stage, score=STAGE_SCORES[stage],
                           reason=reason, scores=scores, selected=top, fake_normals=bottom,
                           order=order, trained=trained, reused_scores=reused,
                           seconds=seconds)

    def cached_msmr(self, pool: ImagePool) -> np.ndarray | None:
        """The E_msmr M gave ``pool`` in an earlier round, or None.

        Parameters
        ----------
        pool : ImagePool
            The pool the rounds ran on.

        Returns
        -------
        scores : ndarray of shape (n_pool,) or None
            NaN for images not scored (those labelled before M scored them); None before M
            scored this pool, or after M changed.
        """
        if not is_fitted(self.msmr_scorer):
            return None
        return self.msmr_cache.get(scores_key(self.msmr_scorer, self._keys(pool, None)))

    def fit_segmenter(self, X_train: np.ndarray, y_train: np.ndarray,
                      round_index: int) -> SegmentationLearner:
        """Train S on a labelled set (from its previous weights), e.g. after the last round."""
        trained: list[str] = []
        self._fit_segmenter(X_train, y_train, round_index, {}, trained)
        return self.segmenter

    # ------------------------------------------------------------------ parts
    @staticmethod
    def _reason(n_train: int, n_defective: int, n_normal: int) -> str:
        if n_train == 0:
            return "no image is labelled yet: ranking by E_msmr, the self-supervised cold start"
        if n_defective == 0:
            return (f"none of the {n_train} labelled images (and fake normals) is defective "
                    f"yet: ranking by E_msmr again")
        if n_normal == 0:
            return (f"all {n_train} labelled images are defective and there are no fake "
                    f"normals: G needs a normal image, ranking by E_msmr again")
        return (f"{n_defective} defective and {n_normal} normal images labelled (fake "
                f"normals included): ranking by E_sdr, S's suspected defects reconstructed "
                f"by G")

    def _update_supervised(self, X_train: np.ndarray, y_train: np.ndarray, round_index: int,
                           seconds: dict[str, float], trained: list[str]) -> None:
        if not is_fitted(self.segmenter) or self.trained_for.get("S", -1) < round_index:
            self._fit_segmenter(X_train, y_train, round_index, seconds, trained)
        first_guided = self.sdr_scorer is None
        if first_guided or (self.retrain_scorer and self.trained_for.get("G", -1) < round_index):
            if first_guided:
                self.sdr_scorer = self.msmr_scorer.guided_copy(self.guided_epochs)
            self.say("training the label-guided reconstruction learner G"
                     + (" from M" if first_guided else "")
                     + self._about(self.sdr_scorer, len(X_train), X_train, train=True))
            self._timed(seconds, "train_G", lambda: self.sdr_scorer.fit(X_train, y_train))
            self._trained("G", self.sdr_scorer, round_index, trained)

    def _fit_segmenter(self, X_train: np.ndarray, y_train: np.ndarray, round_index: int,
                       seconds: dict[str, float], trained: list[str]) -> None:
        n_defective = int(defective_rows(y_train).sum())
        self.say(f"training the segmentation learner S on {len(X_train)} images "
                 f"({n_defective} defective)"
                 + self._about(self.segmenter, len(X_train), X_train, train=True))
        if is_fitted(self.segmenter):
            self.segmenter.set_params(warm_start=True)
        self._timed(seconds, "train_S", lambda: self.segmenter.fit(X_train, y_train))
        self._trained("S", self.segmenter, round_index, trained)

    def _about(self, models: Any, n_images: int, images: Any, *, train: bool,
               copies: int = 1) -> str:
        """``", about 3.2 min"`` from a measured warm-up, when someone reads the messages.

        ``models`` is one model or a tuple of models that each pass over the images.
        """
        models = models if isinstance(models, tuple) else (models,)
        if not self._estimate or not all(hasattr(model, "estimate_seconds")
                                         for model in models):
            return ""
        shape = (images.image_shape if isinstance(images, ImagePool)
                 else tuple(np.asarray(images).shape[1:]))
        seconds = sum(model.estimate_seconds(n_images, shape, train=train, copies=copies)
                      for model in models)
        return f" (about {format_duration(seconds)} here, from a short warm-up)"

    def _trained(self, kind: str, model: Any, round_index: int, trained: list[str]) -> None:
        self.trained_for[kind] = round_index
        trained.append(kind)
        if self.on_trained is not None:
            self.on_trained(kind, model, round_index)

    def _keys(self, pool: ImagePool, keys: np.ndarray | None) -> np.ndarray:
        if keys is not None:
            return np.asarray(keys)
        if self._content_keys is None or self._content_keys[0] is not pool:
            self._content_keys = (pool, content_keys(pool))
        return self._content_keys[1]

    @staticmethod
    def _timed(seconds: dict[str, float], phase: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        seconds[phase] = time.perf_counter() - started
        return result


def remaining_estimate(n_pool: int, n_labeled: int, found: int, found_last: int,
                       n_last: int, expected_defect_ratio: float) -> dict[str, float]:
    """An estimate of the defective images still unlabelled, to tell when to stop labelling.

    Two plain numbers, each with its assumption:

    - ``expected``: ``expected_defect_ratio · n_pool − found`` (at least 0): the defective
      images the pool should hold if ``expected_defect_ratio`` is its true share, minus
      those found. Wrong by as much as the ratio is.
    - ``at_most``: ``(found_last / n_last) · (n_pool − n_labeled)``: the last round's
      defect rate applied to the unlabelled rest. The ranking puts the likeliest defects
      first, so the rest should be no richer than the last batch: an upper bound as long
      as the ranking is better than random.

    When ``at_most`` falls below ``expected``, the ranking has run dry before the prior says
    it should: label a random sample to check. When both are near 0, another round no
    longer pays.

    Parameters
    ----------
    n_pool, n_labeled, found : int
        Pool size, images labelled so far, defective images among them.
    found_last, n_last : int
        Defective images among the last round's ``n_last`` labelled images.
    expected_defect_ratio : float
        The share of defective images the user expects.

    Returns
    -------
    estimate : dict
        ``expected`` and ``at_most`` (floats, rounded to one decimal).

    Examples
    --------
    >>> from sid4ds.rounds import remaining_estimate
    >>> remaining_estimate(1000, 300, 41, 6, 100, 0.05)
    {'expected': 9.0, 'at_most': 42.0}
    """
    expected = max(0.0, expected_defect_ratio * n_pool - found)
    rate = found_last / n_last if n_last else 0.0
    return {"expected": round(expected, 1), "at_most": round(rate * (n_pool - n_labeled), 1)}


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"3.2 min"`` or ``"1.5 h"``.

    Examples
    --------
    >>> from sid4ds.rounds import format_duration
    >>> format_duration(40.2), format_duration(190), format_duration(5400)
    ('40 s', '3.2 min', '1.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400 - 1:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------- the loop skeleton
def ask_oracle(oracle: Callable[[np.ndarray], Any], indices: np.ndarray,
               height: int, width: int) -> np.ndarray:
    """``oracle(indices)`` checked as masks of shape (len(indices), height, width)."""
    if not callable(oracle):
        raise TypeError(f"oracle must be callable as oracle(indices) -> masks; got {oracle!r}")
    masks = oracle(np.array(indices, dtype=np.int64))
    return check_masks(masks, name="oracle(indices)", n_samples=len(indices), height=height,
                       width=width)


@dataclass
class LabelledRound:
    """One round of :func:`label_rounds`: what was chosen, the labeller's masks, timings.

    Attributes
    ----------
    round : int
    chosen : ndarray of int
        Pool rows labelled, best first.
    masks : ndarray of shape (len(chosen), height, width), uint8
        The labeller's masks.
    info : object
        What ``select`` returned besides the rows (e.g. a :class:`RoundResult`).
    seconds : dict of str to float
        ``selection`` (training included) and ``oracle`` wall times.
    """

    round: int
    chosen: np.ndarray
    masks: np.ndarray
    info: Any = None
    seconds: dict[str, float] = field(default_factory=dict)


def label_rounds(
    n_pool: int,
    image_shape: tuple[int, int],
    oracle: Callable[[np.ndarray], Any],
    select: Callable[[int, np.ndarray, list[LabelledRound]], tuple[np.ndarray, Any]],
    *,
    n_rounds: int,
    on_round: Callable[[LabelledRound], None] | None = None,
) -> list[LabelledRound]:
    """The skeleton of every active-learning loop of sid4ds: select, ask, repeat.

    ``select`` trains on what is labelled before it selects (as a SID4DS round does), so
    nothing is trained after the last selection.

    Parameters
    ----------
    n_pool : int
        Images in the pool.
    image_shape : (int, int)
        (height, width), to check the labeller's masks.
    oracle : callable
        ``oracle(indices) -> masks``: the labeller, given pool rows.
    select : callable
        ``select(round_index, unlabeled, history) -> (rows, info)``: the pool rows to label
        (a subset of ``unlabeled``) and anything to keep with them; ``history`` holds the
        rounds so far, with the labeller's masks.
    n_rounds : int
        Rounds after the first (the loop stops early when the pool is used up).
    on_round : callable, optional
        ``on_round(labelled_round)`` at the end of each round (progress).

    Returns
    -------
    history : list of LabelledRound
    """
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    height, width = image_shape
    unlabeled = np.arange(n_pool, dtype=np.int64)
    history: list[LabelledRound] = []
    for round_index in range(n_rounds + 1):
        if len(unlabeled) == 0:
            break
        started = time.perf_counter()
        chosen, info = select(round_index, unlabeled, history)
        chosen = np.asarray(chosen, dtype=np.int64)
        seconds = {"selection": time.perf_counter() - started}
        started = time.perf_counter()
        masks = ask_oracle(oracle, chosen, height, width)
        seconds["oracle"] = time.perf_counter() - started
        labelled = LabelledRound(round=round_index, chosen=chosen, masks=masks, info=info,
                                 seconds=seconds)
        history.append(labelled)
        unlabeled = np.setdiff1d(unlabeled, chosen)
        if on_round is not None:
            on_round(labelled)
    return history
