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

The order of these steps is written in one place, :meth:`SID4DSRounds.run_round`; their
parts are private modules of this folder, one concern each, that the class is built of:
training the models (``_training``, with :func:`configure_models`), scoring with the score
cache (``_scoring``), selection with its tie-breaks, fake normals and the drifted batch's
reserve (``_selecting``), the drifted batch's normal images (``_drift``), and the time of
each phase (``_timing``, with :func:`format_duration`). :class:`RoundResult` is in
``_result``. Every public name is imported from here.

So a session whose labeller answers like an oracle, a modAL learner taught the oracle's
masks and ``run_sid4ds`` pick the same images, round by round, by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sid4ds._core.validation import check_choice, check_float, check_int
from sid4ds.datasets.pool import ImagePool
from sid4ds.engine._drift import RoundDrift
from sid4ds.engine._result import RoundResult
from sid4ds.engine._scoring import RoundScoring
from sid4ds.engine._selecting import RoundSelection
from sid4ds.engine._timing import format_duration
from sid4ds.engine._training import RoundTraining, configure_models
from sid4ds.estimators.base import is_fitted
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows
from sid4ds.ranking.score_cache import MemoryScoreCache, ScoreCache, model_fingerprint
from sid4ds.ranking.scores import FUSION_RULES, REGION_RULES

__all__ = [
    "DEFAULT_DRIFT_RULE",
    "DRIFT_RULES",
    "FUSED_SCORE",
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
#: The name of the iterative stage's score with ``fusion="rank"`` (the default): E_sdr fused
#: with S's mean probability by rank (:func:`sid4ds.ranking.scores.fuse_ranks`).
FUSED_SCORE = "E_sdr+S"
#: The stages, in the order a campaign goes through them.
STAGES = tuple(STAGE_SCORES)
#: What the round after a drifted batch does (:class:`SID4DSRounds`, ``drift_rule``).
DRIFT_RULES = ("fake_normals", "fake_normals_msmr", "fake_normals_reserve", "refresh",
               "none")
#: The rule a round applies to a drifted batch unless told otherwise (``docs/method.md``).
DEFAULT_DRIFT_RULE = "fake_normals_msmr"


def drift_plan(rule: str, iterative: bool, drift_normal_share: float = 0.25,
               reserve_share: float = 0.5) -> str:
    """What a round does with a drifted batch under ``rule``, in plain words.

    Parameters
    ----------
    rule : {"fake_normals", "fake_normals_msmr", "fake_normals_reserve", "refresh", "none"}
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
    reserve = {"fake_normals_reserve": f", and {reserve_share:.0%} of the round's labels go "
                                       f"to the batch's top by the round's score",
               "fake_normals_msmr": ", and the batch's places in the ranking go to its "
                                    "images in the order of M's E_msmr"}.get(rule, "")
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


class SID4DSRounds(RoundTraining, RoundScoring, RoundDrift, RoundSelection):
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
    fusion : {"rank", None}, default="rank"
        The iterative score: E_sdr fused with S's mean probability by rank
        (:func:`sid4ds.ranking.scores.fuse_ranks`; ahead of E_sdr alone on the three
        benchmark sets, ``docs/method.md``), or E_sdr alone (None, the paper's).
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
    drift_rule : str, default="fake_normals_msmr"
        One of :data:`DRIFT_RULES`: what the round after a drifted batch does with it
        (only when :meth:`run_round` is given ``drifted``; ``docs/method.md`` has the
        measurements):

        - ``"fake_normals"``: the ``drift_normal_share`` of the batch that M reconstructs
          best (lowest E_msmr) trains S as normal images in that round, so that S learns
          the new surface before it ranks (in the iterative stage; the cold start trains
          no S);
        - ``"fake_normals_msmr"``: the same, and the places the round's ranking gives the
          batch are filled with its images in the order of M's E_msmr (kept from the
          drift check: no extra pass) rather than the round's score, which judges the new
          surface with an S and a G trained on the old one;
        - ``"fake_normals_reserve"``: ``"fake_normals"``, and ``reserve_share`` of K go to
          the batch's top by the round's own score;
        - ``"refresh"``: M is trained again on the grown pool and G made again from it,
          and ``reserve_share`` of K go to the batch's top by the new M's E_msmr;
        - ``"none"``: the round runs as if the batch had not drifted.

        With any rule but ``"none"`` the batch gives no fake normals in that round (the ranking is
        not trusted on images unlike the pool).
    drift_normal_share : float, default=0.25
        For the ``"fake_normals..."`` rules: the share of the drifted
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
        fusion: str | None = "rank",
        n_normal: int | str = "auto",
        expected_defect_ratio: float = 0.05,
        trained_for: dict[str, int] | None = None,
        score_cache: ScoreCache | None = None,
        n_jobs: int | None = None,
        drift_rule: str = DEFAULT_DRIFT_RULE,
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
        # 1. the stage
        ruled, reason = round_stage(y_train)
        if stage is None:
            stage = ruled
        elif check_choice(stage, "stage", STAGES) != ruled:
            reason = f"the {stage.replace('_', ' ')} stage was asked for ({reason})"
        iterative = stage == "iterative"
        if iterative and ruled == "iterative" and self.fusion is not None:
            reason += ", fused by rank with S's mean probability"
        self.say(f"round {round_index}, {stage.replace('_', ' ')} stage: {reason}")
        flagged = self._flagged(drifted, unlabeled)  # 5. drift: rows of the batch, if any
        if flagged.any():
            self.say(f"{int(flagged.sum())} unlabelled images of a batch that does not look "
                     f"like the pool: " + drift_plan(self.drift_rule, iterative,
                                                     self.drift_normal_share,
                                                     self.reserve_share))
            if self.drift_rule == "refresh":
                self._refresh(pool, round_index, seconds, trained)
        # 2. bring the models up to date: M when the cold start or G needs it, S and G
        if (not iterative or self.sdr_scorer is None) and not is_fitted(self.msmr_scorer):
            self._train_msmr(pool, round_index, seconds, trained)
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
        # 3. score the unlabelled images (kept scores reused), and the tie scores
        scores, n_scored = self._scores(STAGE_SCORES[stage], pool, unlabeled, unlabeled_keys,
                                        seconds)
        msmr = self._tie_scores(pool, unlabeled, unlabeled_keys, iterative, seconds)
        # 4. select: the top K to label, the bottom V fake normals (the batch's reserve)
        n_fake = resolve_n_normal(self.n_normal, n_label, len(unlabeled),
                                  self.expected_defect_ratio)
        top, bottom, order, reserved = self._select(pool, unlabeled, unlabeled_keys, scores,
                                                    msmr, n_label, n_fake, flagged, seconds)
        return RoundResult(round=round_index, stage=stage, score=self.score_name(stage),
                           reason=reason, scores=scores, selected=top, fake_normals=bottom,
                           order=order, tie_scores=msmr, trained=trained, n_scored=n_scored,
                           seconds=seconds, drift_normals=drift_normals, reserved=reserved)

    def score_name(self, stage: str) -> str:
        """The name of the score a round of ``stage`` ranks by.

        Parameters
        ----------
        stage : {"cold_start", "iterative"}

        Returns
        -------
        name : str
            ``"E_msmr"`` in the cold start; after it ``"E_sdr"``, or :data:`FUSED_SCORE`
            with ``fusion="rank"``.
        """
        if stage == "iterative" and self.fusion is not None:
            return FUSED_SCORE
        return STAGE_SCORES[stage]

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
