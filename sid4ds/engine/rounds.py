"""One SID4DS round (Algorithm 1): the method's round, its rules and its models, in one place.

Every door of sid4ds runs its rounds here: :func:`~sid4ds.run_sid4ds`, a
:class:`~sid4ds.LabelingSession`, the benchmark and the modAL strategies
(:func:`~sid4ds.msmr_sampling`, :func:`~sid4ds.sdr_sampling`,
:func:`~sid4ds.sid4ds_sampling`, and so :class:`~sid4ds.DefectActiveLearner`) all call
:meth:`SID4DSRounds.run_round`:

1. **the stage** (:func:`round_stage`): the iterative stage once the labelled set X_L ∪ X_FN
   (:func:`training_set`) holds a defective and a normal image, the cold start before;
2. **bring the models up to date**: M (self-supervised) is trained on the pool once, when
   the cold start or G needs it; in the iterative stage S is trained on the labelled set
   (from its previous weights after the first time) unless it already is, and G once (a
   copy of M, trained label-guided);
3. **score** the unlabelled images: E_sdr with S and G, E_msmr with M; every score is kept
   per image in a :class:`~sid4ds.ranking.score_cache.ScoreCache` by what computed it, so an
   unchanged model never scores an image twice;
4. **select** with the one rule of :mod:`sid4ds.ranking.selection`: the top K are to be labelled,
   the bottom V become this round's fake normals (:func:`resolve_n_normal`), ties broken by
   the cold-start E_msmr when it is known, then by image content.

5. **drift** (only when the caller passes ``drifted``, the rows of a new batch that
   :func:`sid4ds.ranking.drift.check_drift` flagged): the round applies ``drift_rule`` to them
   (:data:`DRIFT_RULES`); without ``drifted`` nothing of it runs.

So a session whose labeller answers like an oracle, a modAL learner taught the oracle's
masks and ``run_sid4ds`` pick the same images, round by round, by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import draw_seed, make_rng
from sid4ds._core.validation import check_choice, check_float, check_int
from sid4ds.datasets.pool import ImagePool
from sid4ds.estimators.base import is_fitted
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows
from sid4ds.ranking.drift import DRIFT_CACHE_SCORE, reserve_order
from sid4ds.ranking.score_cache import (
    MemoryScoreCache,
    ScoreCache,
    model_fingerprint,
    models_fingerprint,
)
from sid4ds.ranking.scores import (
    FUSION_RULES,
    REGION_RULES,
    fuse_evidence,
    msmr_evidence,
    sdr_evidence,
)
from sid4ds.ranking.selection import content_keys, rank_pool, tie_keys

__all__ = [
    "DRIFT_RULES",
    "STAGES",
    "RoundResult",
    "SID4DSRounds",
    "configure_models",
    "drift_plan",
    "format_duration",
    "labels_per_round",
    "resolve_n_normal",
    "round_stage",
    "training_set",
]

#: The stages of a round and the score each ranks by.
STAGE_SCORES = {"cold_start": "E_msmr", "iterative": "E_sdr"}
#: The stages, in the order a campaign goes through them.
STAGES = tuple(STAGE_SCORES)
#: What the round after a drifted batch does (:class:`SID4DSRounds`, ``drift_rule``).
DRIFT_RULES = ("fake_normals", "fake_normals_reserve", "refresh", "none")


def drift_plan(rule: str, iterative: bool, drift_normal_share: float = 0.25,
               reserve_share: float = 0.5) -> str:
    """What a round does with a drifted batch under ``rule``, in plain words.

    Parameters
    ----------
    rule : {"fake_normals", "fake_normals_reserve", "refresh", "none"}
        :class:`SID4DSRounds`'s ``drift_rule``.
    iterative : bool
        Whether the round is in the iterative stage (S trained) or the cold start.
    drift_normal_share, reserve_share : float
        The rule's settings (:class:`SID4DSRounds`).

    Returns
    -------
    plan : str

    Examples
    --------
    >>> from sid4ds.engine.rounds import drift_plan
    >>> drift_plan("none", iterative=True)
    'nothing (drift_rule="none"): it is ranked with the rest'
    """
    rule = check_choice(rule, "rule", DRIFT_RULES)
    if rule == "none":
        return 'nothing (drift_rule="none"): it is ranked with the rest'
    if rule == "refresh":
        return (f"M is trained again on the grown pool (and G made again from it), and "
                f"{reserve_share:.0%} of the round's labels go to the batch's top by the new "
                f"M's E_msmr; none of the batch becomes a fake normal")
    reserve = (f", and {reserve_share:.0%} of the round's labels go to the batch's top by "
               f"the round's score" if rule == "fake_normals_reserve" else "")
    if iterative:
        return (f"the {drift_normal_share:.0%} of the batch M reconstructs best train S as "
                f"normal images first, so that S learns the new surface before it ranks"
                f"{reserve}; none of the batch becomes a fake normal")
    return ("none of the batch becomes a fake normal (the cold start trains no S; the "
            "iterative stage would first teach S the new surface)")


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
    >>> from sid4ds.engine.rounds import labels_per_round
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
    >>> from sid4ds.engine.rounds import resolve_n_normal
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


def training_set(X_labeled: np.ndarray, y_labeled: np.ndarray,
                 X_fake_normal: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """X_L ∪ X_FN: the labelled images with their masks, then the fake normals with zeros.

    The one place the training set of a round is put together (Algorithm 1, lines 5 and 12):
    ``run_sid4ds``, :class:`~sid4ds.DefectActiveLearner` and a labelling session all call
    it, so S and G train on the same images in the same order whichever door is used.

    Parameters
    ----------
    X_labeled : ndarray of shape (n_labeled, n_channels, height, width)
        X_L, in labelling order.
    y_labeled : ndarray of shape (n_labeled, height, width)
        Their masks.
    X_fake_normal : ndarray of shape (n_fake, n_channels, height, width), optional
        X_FN, the fake normals of the last selection (they get all-zero masks).

    Returns
    -------
    X : ndarray of shape (n_labeled + n_fake, n_channels, height, width)
    y : ndarray of shape (n_labeled + n_fake, height, width), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.engine.rounds import training_set
    >>> X, y = training_set(np.ones((2, 1, 4, 4)), np.ones((2, 4, 4), np.uint8),
    ...                     np.zeros((3, 1, 4, 4)))
    >>> X.shape, y.reshape(5, -1).max(axis=1).tolist()
    ((5, 1, 4, 4), [1, 1, 0, 0, 0])
    """
    masks = np.asarray(y_labeled, dtype=np.uint8)
    if X_fake_normal is None or len(X_fake_normal) == 0:
        return X_labeled, masks
    zeros = np.zeros((len(X_fake_normal), *masks.shape[1:]), np.uint8)
    return np.concatenate([X_labeled, X_fake_normal]), np.concatenate([masks, zeros])


def round_stage(y_train: Any) -> tuple[str, str]:
    """The stage of a round from the masks of its labelled set, and why, in words.

    The iterative stage needs a defective image (for S) and a normal one (G's normal image
    I0, eq. 5) in X_L ∪ X_FN; until then the round stays in the cold start (E_msmr).

    Parameters
    ----------
    y_train : array-like of shape (n_train, height, width)
        The masks of X_L ∪ X_FN (all zero for fake normals); may be empty.

    Returns
    -------
    stage : {"cold_start", "iterative"}
    reason : str

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.engine.rounds import round_stage
    >>> round_stage(np.zeros((0, 4, 4)))[0]
    'cold_start'
    >>> round_stage(np.array([np.ones((4, 4)), np.zeros((4, 4))]))[0]
    'iterative'
    """
    masks = np.asarray(y_train)
    n_train = len(masks)
    defective = defective_rows(masks) if n_train else np.zeros(0, bool)
    n_defective, n_normal = int(defective.sum()), int((~defective).sum())
    if n_train == 0:
        return "cold_start", ("no image is labelled yet: ranking by E_msmr, the "
                              "self-supervised cold start")
    if n_defective == 0:
        return "cold_start", (f"none of the {n_train} labelled images (and fake normals) is "
                              f"defective yet: ranking by E_msmr again")
    if n_normal == 0:
        return "cold_start", (f"all {n_train} labelled images are defective and there are no "
                              f"fake normals: G needs a normal image, ranking by E_msmr again")
    return "iterative", (f"{n_defective} defective and {n_normal} normal images labelled (fake "
                         f"normals included): ranking by E_sdr, S's suspected defects "
                         f"reconstructed by G")


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
    tie_scores : ndarray of shape (n_unlabelled,) or None
        The cold-start E_msmr that broke ties among equal scores (NaN where M never scored
        the image); None when ties were broken by image content alone.
    trained : list of str
        The models trained in this round (``"M"``, ``"S"``, ``"G"``).
    n_scored : int
        Images scored in this round; the others' scores were kept from an earlier round
        whose models were the same.
    seconds : dict of str to float
        Wall time of each phase: ``train_M``, ``train_S``, ``train_G``, ``score_msmr`` or
        ``score_sdr``.
    drift_normals : ndarray of int
        Positions of the drifted batch's images that trained S as normal images in this
        round (``drift_rule="fake_normals"`` or ``"fake_normals_reserve"``); empty
        otherwise.
    reserved : ndarray of int
        Positions put among the top K for the drifted batch (``drift_rule="refresh"`` or
        ``"fake_normals_reserve"``); empty otherwise.
    """

    round: int
    stage: str
    score: str
    reason: str
    scores: np.ndarray
    selected: np.ndarray
    fake_normals: np.ndarray
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tie_scores: np.ndarray | None = None
    trained: list[str] = field(default_factory=list)
    n_scored: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    drift_normals: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    reserved: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def reused_scores(self) -> bool:
        """True when every score came from an earlier round (unchanged models)."""
        return self.n_scored == 0 and len(self.scores) > 0

    @property
    def n_reused(self) -> int:
        """Images whose score was kept from an earlier round (unchanged models)."""
        return len(self.scores) - self.n_scored


class SID4DSRounds:
    """The three learners of SID4DS and the rule of a round (see the module docstring).

    Not an estimator: a plain object that holds the models of a campaign and its settings
    (public attributes, checked at every :meth:`run_round`).

    Parameters
    ----------
    segmenter : SegmentationLearner
        S, configured (unfitted) or fitted by an earlier round (``trained_for["S"]`` says
        for which).
    scorer : ReconstructionScorer
        M, configured or fitted.
    sdr_scorer : ReconstructionScorer, optional
        G: fitted label-guided (a resumed session), or configured to be fitted on the
        labelled set; by default it is made from M the first time it is needed.
    guided_epochs : int, optional
        Epochs of G made from M; default M's ``max_epochs``.
    retrain_scorer : bool, default=False
        Retrain G (from its weights) in every iterative round, not only the first.
    tie_break : {"msmr", "content"}, default="msmr"
        ``"msmr"``: equal scores are ordered by their cold-start E_msmr when it is known
        (an addition to the paper), then by content; ``"content"``: by content only.
    region : {"adaptive", "threshold"}, default="adaptive"
        How S's probabilities become E_sdr's regions
        (:func:`sid4ds.ranking.scores.pseudo_label_regions`); ``"threshold"`` is the paper's.
    region_share : float, default=0.01
        The share of pixels of the adaptive rule.
    fusion : {None, "rank"}, default=None
        The iterative score: E_sdr alone (None, the paper's), or E_sdr fused with S's mean
        probability by rank (:func:`sid4ds.ranking.scores.fuse_ranks`; an option, not measured
        to win yet).
    n_normal : int or "auto", default="auto"
        V per round (:func:`resolve_n_normal`).
    expected_defect_ratio : float, default=0.05
        For ``n_normal="auto"``.
    trained_for : dict of str to int, optional
        For a resumed run: the round each given model was last trained for.
    score_cache : ScoreCache, optional
        Where scores are kept per image (:mod:`sid4ds.ranking.score_cache`): in memory by default,
        the session's store on disk for a session.
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; None: the models' own ``n_jobs``.
    drift_rule : str, default="fake_normals"
        One of :data:`DRIFT_RULES`: what the round after a drifted batch does with it
        (only when :meth:`run_round` is given ``drifted``; ``docs/method.md`` has the
        measurements):

        - ``"fake_normals"``: the ``drift_normal_share`` of the batch that M reconstructs
          best (lowest E_msmr) trains S as normal images in that round, so that S learns
          the new surface before it ranks (in the iterative stage; the cold start trains
          no S);
        - ``"fake_normals_reserve"``: the same, and ``reserve_share`` of K go to the
          batch's top by the round's own score;
        - ``"refresh"``: M is trained again on the grown pool and G made again from it,
          and ``reserve_share`` of K go to the batch's top by the new M's E_msmr;
        - ``"none"``: the round runs as if the batch had not drifted.

        With any rule but ``"none"`` the batch gives no fake normals in that round (the ranking is
        not trusted on images unlike the pool).
    drift_normal_share : float, default=0.25
        For ``"fake_normals"`` and ``"fake_normals_reserve"``: the share of the drifted
        batch that trains S as normal.
    reserve_share : float, default=0.5
        For ``"fake_normals_reserve"`` and ``"refresh"``: the share of K reserved for the
        drifted batch.
    on_trained : callable, optional
        ``on_trained(kind, model, round_index)`` right after a model is trained (the
        session saves it there, so a killed round resumes).
    say : callable, optional
        ``say(message)`` for progress messages (and time estimates, measured only for
        someone who reads them).

    Attributes
    ----------
    segmenter, msmr_scorer, sdr_scorer : estimators
        S, M and G (``sdr_scorer`` is None until it is first needed).
    trained_for : dict of str to int
        The round each model was last trained for.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner, SID4DSRounds
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.datasets.pool import as_pool
    >>> X, masks = make_defect_images(n_samples=32, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> engine = SID4DSRounds(
    ...     SegmentationLearner(base_channels=4, depth=2, max_steps=2, random_state=0),
    ...     ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0))
    >>> pool, no_labels = as_pool(X), np.zeros((0, 16, 16), np.uint8)
    >>> first = engine.run_round(pool, np.arange(32), X[:0], no_labels, 0, n_label=4)
    >>> first.stage, len(first.selected), first.trained
    ('cold_start', 4, ['M'])
    >>> labelled = np.arange(8)
    >>> later = engine.run_round(pool, np.arange(8, 32), X[labelled], masks[labelled], 1, 4)
    >>> later.stage, later.trained
    ('iterative', ['S', 'G'])
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
        region_share: float = 0.01,
        fusion: str | None = None,
        n_normal: int | str = "auto",
        expected_defect_ratio: float = 0.05,
        trained_for: dict[str, int] | None = None,
        score_cache: ScoreCache | None = None,
        n_jobs: int | None = None,
        drift_rule: str = "fake_normals",
        drift_normal_share: float = 0.25,
        reserve_share: float = 0.5,
        on_trained: Callable[[str, Any, int], None] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.msmr_scorer = scorer
        self.sdr_scorer = sdr_scorer
        self.guided_epochs = guided_epochs
        self.retrain_scorer = retrain_scorer
        self.tie_break = tie_break
        self.region = region
        self.region_share = region_share
        self.fusion = fusion
        self.n_normal = n_normal
        self.expected_defect_ratio = expected_defect_ratio
        self.trained_for = dict(trained_for or {})
        self.score_cache: ScoreCache = MemoryScoreCache() if score_cache is None else score_cache
        self.n_jobs = n_jobs
        self.drift_rule = drift_rule
        self.drift_normal_share = drift_normal_share
        self.reserve_share = reserve_share
        self.on_trained = on_trained
        self.say = say or (lambda message: None)
        self._estimate = say is not None  # time estimates only for someone who reads them
        self._content_keys: tuple[ImagePool, np.ndarray] | None = None
        self.check_settings()

    def check_settings(self) -> None:
        """Check the settings (they are public attributes); raise naming the bad one."""
        check_choice(self.tie_break, "tie_break", ("msmr", "content"))
        check_choice(self.region, "region", REGION_RULES)
        check_float(self.region_share, "region_share", low=0.0, high=1.0, include_low=False)
        check_choice(self.fusion, "fusion", FUSION_RULES)
        if self.guided_epochs is not None:
            check_int(self.guided_epochs, "guided_epochs", minimum=1)
        if self.n_normal != "auto":
            check_int(self.n_normal, "n_normal", minimum=0)
        check_float(self.expected_defect_ratio, "expected_defect_ratio", low=0.0, high=1.0)
        check_choice(self.drift_rule, "drift_rule", DRIFT_RULES)
        check_float(self.drift_normal_share, "drift_normal_share", low=0.0, high=1.0)
        check_float(self.reserve_share, "reserve_share", low=0.0, high=1.0)
        if not isinstance(self.score_cache, ScoreCache):
            raise TypeError(f"score_cache must have lookup() and store() (a "
                            f"sid4ds.ranking.score_cache.ScoreCache); got "
                            f"{type(self.score_cache).__name__}")

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
        stage: str | None = None,
        drifted: np.ndarray | None = None,
    ) -> RoundResult:
        """Train what the labelled set allows, score the unlabelled images, select.

        Parameters
        ----------
        pool : ImagePool
            The pool: M is trained on it when it is first needed.
        unlabeled : ndarray of int
            Rows of ``pool`` to rank (neither labelled nor waiting for a label).
        X_train : ndarray of shape (n_train, n_channels, height, width)
            X_L ∪ X_FN (:func:`training_set`): the labelled images, then the previous
            round's fake normals.
        y_train : ndarray of shape (n_train, height, width)
            Their masks (all zero for the fake normals).
        round_index : int
            This round's index.
        n_label : int
            K.
        keys : ndarray of shape (n_pool,), optional
            :func:`~sid4ds.ranking.selection.content_keys` of the pool, when known (computed once
            otherwise).
        stage : {"cold_start", "iterative"}, optional
            Run this stage whatever the labelled set (the explicit modAL strategies);
            default: the stage :func:`round_stage` gives.
        drifted : ndarray of int, optional
            Rows of ``pool`` of a new batch that :func:`sid4ds.ranking.drift.check_drift` flagged:
            this round applies ``drift_rule`` to those still unlabelled. Pass them to the
            first round after the batch arrived, once. None (the default) or empty: the
            round is the round without drift, image for image.

        Returns
        -------
        result : RoundResult
        """
        self.check_settings()
        n_label = check_int(n_label, "n_label", minimum=1)
        unlabeled = np.asarray(unlabeled, dtype=np.int64)
        seconds: dict[str, float] = {}
        trained: list[str] = []
        ruled, reason = round_stage(y_train)
        if stage is None:
            stage = ruled
        elif check_choice(stage, "stage", STAGES) != ruled:
            reason = f"the {stage.replace('_', ' ')} stage was asked for ({reason})"
        self.say(f"round {round_index}, {stage.replace('_', ' ')} stage: {reason}")
        iterative = stage == "iterative"
        flagged = self._flagged(drifted, unlabeled)
        if flagged.any():
            self.say(self._drift_plan(int(flagged.sum()), iterative))
            if self.drift_rule == "refresh":
                self._refresh(pool, round_index, seconds, trained)
        if (not iterative or self.sdr_scorer is None) and not is_fitted(self.msmr_scorer):
            # the cold start ranks by M; G starts from M's weights (the paper's §3.3)
            self.say(f"training the self-supervised reconstruction learner M on {len(pool)} "
                     f"images{self._about(self.msmr_scorer, len(pool), pool, train=True)}")
            self._timed(seconds, "train_M", lambda: self.msmr_scorer.fit(pool))
            self._trained("M", self.msmr_scorer, round_index, trained)
        unlabeled_keys = self._keys(pool, keys)[unlabeled]
        drift_normals = np.zeros(0, np.int64)
        if iterative:
            if flagged.any() and self.drift_rule.startswith("fake_normals"):
                drift_normals = self._drift_normals(pool, unlabeled, flagged, unlabeled_keys,
                                                    seconds)
                X_train, y_train = training_set(X_train, y_train,
                                                pool[unlabeled[drift_normals]])
                if len(drift_normals):  # S learns them now, even with no new label
                    self.trained_for.pop("S", None)
            self._update_supervised(X_train, y_train, round_index, seconds, trained)
        scores, n_scored = self._scores(STAGE_SCORES[stage], pool, unlabeled, unlabeled_keys,
                                        seconds)
        msmr = None
        if self.tie_break == "msmr" and is_fitted(self.msmr_scorer):
            msmr = self.score_cache.lookup("E_msmr", model_fingerprint(self.msmr_scorer),
                                           unlabeled_keys)
            if iterative and np.isnan(msmr).any() and not np.isnan(msmr).all():
                # images that joined the pool after M scored it get their E_msmr too, so
                # that ties among them are broken as among the others
                msmr, _ = self._scores("E_msmr", pool, unlabeled, unlabeled_keys, seconds)
        keys_of_unlabeled = tie_keys(unlabeled_keys, msmr)
        n_fake = resolve_n_normal(self.n_normal, n_label, len(unlabeled),
                                  self.expected_defect_ratio)
        top, bottom = rank_pool(scores, n_label, n_fake, tie_keys=keys_of_unlabeled)
        order, _ = rank_pool(scores, len(scores), tie_keys=keys_of_unlabeled)
        reserved = np.zeros(0, np.int64)
        if flagged.any():
            if self.drift_rule == "refresh":
                reserved = self._reserved(pool, unlabeled, flagged, unlabeled_keys, len(top),
                                          seconds)
                order = reserve_order(order, reserved, len(top))
            elif self.drift_rule == "fake_normals_reserve":  # the batch's top by this score
                in_batch = order[flagged[order]]
                reserved = in_batch[: min(len(in_batch),
                                          int(round(self.reserve_share * len(top))))]
                order = reserve_order(order, reserved, len(top))
            top = order[: len(top)]
            rest = order[len(top):][::-1]  # lowest first, as rank_pool's bottom
            bottom = rest[~flagged[rest]][:n_fake]
        return RoundResult(round=round_index, stage=stage, score=STAGE_SCORES[stage],
                           reason=reason, scores=scores, selected=top, fake_normals=bottom,
                           order=order, tie_scores=msmr, trained=trained, n_scored=n_scored,
                           seconds=seconds, drift_normals=drift_normals, reserved=reserved)

    def msmr_of(self, pool: ImagePool, keys: np.ndarray | None = None) -> np.ndarray | None:
        """The E_msmr M gave the images of ``pool`` in earlier rounds, or None.

        Parameters
        ----------
        pool : ImagePool
            Images.
        keys : ndarray of shape (n_pool,), optional
            Their content keys, when known.

        Returns
        -------
        scores : ndarray of shape (n_pool,) or None
            NaN for images M did not score (those labelled before it scored them); None
            while M is not fitted.
        """
        if not is_fitted(self.msmr_scorer):
            return None
        return self.score_cache.lookup("E_msmr", model_fingerprint(self.msmr_scorer),
                                       self._keys(pool, keys))

    def fit_segmenter(self, X_train: np.ndarray, y_train: np.ndarray,
                      round_index: int) -> SegmentationLearner:
        """Train S on a labelled set (from its previous weights), e.g. after the last round.

        Parameters
        ----------
        X_train : ndarray of shape (n_train, n_channels, height, width)
            X_L ∪ X_FN (:func:`training_set`).
        y_train : ndarray of shape (n_train, height, width)
            Their masks.
        round_index : int
            The round S is trained for (recorded in :attr:`trained_for`).

        Returns
        -------
        segmenter : SegmentationLearner
            S, trained.
        """
        self._fit_segmenter(X_train, y_train, round_index, {}, [])
        return self.segmenter

    # ------------------------------------------------------------------ drift
    def _flagged(self, drifted: np.ndarray | None, unlabeled: np.ndarray) -> np.ndarray:
        """Which unlabelled positions belong to the drifted batch the rule acts on."""
        if drifted is None or self.drift_rule == "none":
            return np.zeros(len(unlabeled), dtype=bool)
        return np.isin(unlabeled, np.asarray(drifted, dtype=np.int64))

    def _drift_plan(self, n_flagged: int, iterative: bool) -> str:
        return (f"{n_flagged} unlabelled images of a batch that does not look like the pool: "
                + drift_plan(self.drift_rule, iterative, self.drift_normal_share,
                             self.reserve_share))

    def _refresh(self, pool: ImagePool, round_index: int, seconds: dict[str, float],
                 trained: list[str]) -> None:
        """``drift_rule="refresh"``: M trained again on the grown pool, G to be made from it."""
        self.msmr_scorer = clone(self.msmr_scorer)
        self.say(f"training M again on all {len(pool)} images"
                 + self._about(self.msmr_scorer, len(pool), pool, train=True))
        self._timed(seconds, "train_M", lambda: self.msmr_scorer.fit(pool))
        self._trained("M", self.msmr_scorer, round_index, trained)
        self.sdr_scorer = None  # made again from the new M when the iterative stage needs it

    def _batch_msmr(self, pool: ImagePool, unlabeled: np.ndarray, rows: np.ndarray,
                    keys: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        """Positions ``rows`` ordered by M's E_msmr, highest first (ties by content)."""
        msmr, _ = self._scores("E_msmr", pool, unlabeled[rows], keys[rows], seconds)
        by_msmr, _ = rank_pool(msmr, len(msmr), tie_keys=tie_keys(keys[rows]))
        return rows[by_msmr]

    def _drift_normals(self, pool: ImagePool, unlabeled: np.ndarray, flagged: np.ndarray,
                       keys: np.ndarray, seconds: dict[str, float]) -> np.ndarray:
        """``"fake_normals"``: the drifted batch's share with the lowest E_msmr."""
        rows = np.flatnonzero(flagged)
        n_normal = int(round(self.drift_normal_share * len(rows)))
        if n_normal == 0 or not is_fitted(self.msmr_scorer):
            return np.zeros(0, np.int64)
        return self._batch_msmr(pool, unlabeled, rows, keys, seconds)[::-1][:n_normal]

    def _reserved(self, pool: ImagePool, unlabeled: np.ndarray, flagged: np.ndarray,
                  keys: np.ndarray, n_label: int, seconds: dict[str, float]) -> np.ndarray:
        """``"refresh"``: the drifted batch's top by the new M's E_msmr, its share of K."""
        rows = np.flatnonzero(flagged)
        n_reserved = min(len(rows), int(round(self.reserve_share * n_label)))
        if n_reserved == 0:
            return np.zeros(0, np.int64)
        return self._batch_msmr(pool, unlabeled, rows, keys, seconds)[:n_reserved]

    # ------------------------------------------------------------------ parts
    def _scores(self, name: str, pool: ImagePool, unlabeled: np.ndarray, keys: np.ndarray,
                seconds: dict[str, float]) -> tuple[np.ndarray, int]:
        """The ``name`` score of the unlabelled images: kept ones reused, the rest computed.

        E_sdr is kept per image with S's mean probability (``"S_probability"``), both by
        the fingerprint of S, G and the region rule, so that ``fusion`` can rank by both.
        """
        if name == "E_msmr":
            fingerprint: str | None = model_fingerprint(self.msmr_scorer)
            columns = ("E_msmr", DRIFT_CACHE_SCORE)  # one pass: E_msmr and the drift score
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
        values = np.full((len(unlabeled), len(columns)), np.nan)
        if fingerprint is not None:
            for column, score in enumerate(columns):
                values[:, column] = self.score_cache.lookup(score, fingerprint, keys)
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
            values[missing] = self._timed(seconds, phase, lambda: compute(unlabeled[missing]))
            if fingerprint is not None:
                for column, score in enumerate(columns):
                    self.score_cache.store(score, fingerprint, keys[missing],
                                           values[missing, column])
        if name == "E_msmr":
            return values[:, 0], n_missing
        return fuse_evidence(values, self.fusion), n_missing

    def _update_supervised(self, X_train: np.ndarray, y_train: np.ndarray, round_index: int,
                           seconds: dict[str, float], trained: list[str]) -> None:
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
            self._timed(seconds, "train_G", lambda: self.sdr_scorer.fit(X_train, y_train))
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
        self._timed(seconds, "train_S", lambda: train(X_train, y_train))
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


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"3.2 min"`` or ``"1.5 h"``.

    Examples
    --------
    >>> from sid4ds.engine.rounds import format_duration
    >>> format_duration(40.2), format_duration(190), format_duration(5400)
    ('40 s', '3.2 min', '1.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400 - 1:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
