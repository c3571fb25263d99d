"""Algorithm 1 end to end with an oracle as the labeller: :func:`run_sid4ds`.

Each round is :meth:`sid4ds.engine.rounds.SID4DSRounds.run_round` (the method's one round),
driven by the loop skeleton :func:`label_rounds` (select, ask the labeller, record), which
the benchmark's baselines share; :class:`SID4DSRun` is what the run did, round by round
(:class:`RoundSummary`), and the models it trained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_audit_size, check_groups, check_int, check_masks
from sid4ds.datasets.pool import as_pool
from sid4ds.engine.rounds import (
    RoundResult,
    SID4DSRounds,
    configure_models,
    training_set,
)
from sid4ds.estimators.final_model import CrossValidation, check_final_settings, train_final_model
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows
from sid4ds.stopping import RecallBound, audit_recall_bound, audit_weights, draw_audit

__all__ = ["LabelledRound", "PoolSelection", "RoundSummary", "SID4DSRun", "ask_oracle",
           "label_rounds", "run_sid4ds"]

#: What a loop's ``select`` keeps with the rows it chose (see :class:`LabelledRound`).
InfoT = TypeVar("InfoT")


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
class LabelledRound(Generic[InfoT]):
    """One round of :func:`label_rounds`: what was chosen, the labeller's masks, timings.

    Attributes
    ----------
    round : int
    chosen : ndarray of int
        Pool rows labelled, best first.
    masks : ndarray of shape (len(chosen), height, width), uint8
        The labeller's masks.
    info : InfoT
        What ``select`` returned besides the rows: a :class:`PoolSelection` for SID4DS,
        the benchmark's own record for its baselines.
    seconds : dict of str to float
        ``selection`` (training included) and ``oracle`` wall times.
    """

    round: int
    chosen: np.ndarray
    masks: np.ndarray
    info: InfoT
    seconds: dict[str, float] = field(default_factory=dict)


def label_rounds(
    n_pool: int,
    image_shape: tuple[int, int],
    oracle: Callable[[np.ndarray], Any],
    select: Callable[[int, np.ndarray, list[LabelledRound[InfoT]]],
                     tuple[np.ndarray, InfoT]],
    *,
    n_rounds: int,
    on_round: Callable[[LabelledRound[InfoT]], None] | None = None,
) -> list[LabelledRound[InfoT]]:
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
    history: list[LabelledRound[InfoT]] = []
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


# ---------------------------------------------------------------------- a run's records
@dataclass(frozen=True)
class PoolSelection:
    """What a SID4DS round chose, in pool rows (the ``info`` of its :class:`LabelledRound`).

    Attributes
    ----------
    result : RoundResult
        The round as the engine ran it (positions into the unlabelled images of the round).
    fake_normals : ndarray of int
        Pool rows of the round's fake normals (X_FN of the next round).
    audit : ndarray of int
        Pool rows of the round's random audit (labelled after the ranked rows).
    audit_population : int
        Images the audit was drawn from: the unlabelled ones less the ranked rows.
    """

    result: RoundResult
    fake_normals: np.ndarray
    audit: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    audit_population: int = 0


@dataclass(frozen=True)
class RoundSummary:
    """One round of :func:`run_sid4ds`, as :attr:`SID4DSRun.rounds` keeps it.

    Attributes
    ----------
    round : int
        Its index (0 is the first round).
    stage : {"cold_start", "iterative"}
    reason : str
        Why that stage, in words.
    selected : ndarray of int
        Pool indices labelled, best first.
    scores : ndarray of float
        Their scores.
    fake_normals : ndarray of int
        Pool indices of the round's fake normals.
    n_defective : int
        Selected images with a defect pixel in the oracle's masks.
    n_labeled : int
        Images labelled so far (audit images included).
    cumulative_defective : int
        Defective images labelled so far (audit images included).
    defect_rate : float
        ``n_defective`` / images selected.
    recall : RecallBound or None
        With ``run_sid4ds(audit=N)``: the share of the pool's defective images labelled
        after this round, with a one-sided lower bound at 95% confidence from this
        round's audit and its plain-words statement
        (:func:`sid4ds.stopping.audit_recall_bound`); None without an audit.
    seconds : dict of str to float
        Wall time per phase: ``train_M``, ``train_S``, ``train_G``, ``score_msmr`` /
        ``score_sdr``, ``oracle``.
    audit : ndarray of int
        Pool indices of the round's random audit, in the order drawn (empty without one).
    audit_defective : int
        Audit images with a defect pixel in the oracle's masks.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.1,
    ...                               random_state=0)
    >>> run = run_sid4ds(
    ...     X, lambda indices: masks[indices], n_rounds=0, n_label=4,
    ...     scorer=ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                                 max_epochs=1),
    ...     random_state=0)
    >>> record = run.rounds[0]
    >>> record.stage, record.n_labeled, len(record.selected)
    ('cold_start', 4, 4)
    """

    round: int
    stage: str
    reason: str
    selected: np.ndarray
    scores: np.ndarray
    fake_normals: np.ndarray
    n_defective: int
    n_labeled: int
    cumulative_defective: int
    defect_rate: float
    recall: RecallBound | None
    seconds: dict[str, float]
    audit: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    audit_defective: int = 0


@dataclass
class SID4DSRun:
    """What :func:`run_sid4ds` did, round by round, and the models it trained.

    Attributes
    ----------
    rounds : list of RoundSummary
        One record per round (round 0 is the first).
    labeled_indices : ndarray of int
        All labelled pool indices, in labelling order.
    labeled_masks : ndarray of shape (n_labeled, height, width)
        The oracle's masks for them.
    segmenter : SegmentationLearner
        S of the rounds: trained on everything labelled before the last round (the S that
        scored it); unfitted when no round reached the iterative stage.
    final_model : SegmentationLearner or None
        The model to take home, with ``run_sid4ds(fit_final=True)``: trained on every
        labelled image (and the last round's fake normals), its threshold and training
        length chosen by cross-validation (:func:`sid4ds.estimators.final_model.train_final_model`).
    cross_validation : CrossValidation or None
        Its cross-validation: the estimate of how well it does on new images.
    msmr_scorer, sdr_scorer : ReconstructionScorer
        M and G (G is None when no round reached the iterative stage).
    msmr_scores : ndarray of shape (n_pool,) or None
        M's E_msmr of every pool image, as round 0 ranked them.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds import RoundSummary, SID4DSRun
    >>> record = RoundSummary(
    ...     round=0, stage="cold_start", reason="", selected=np.arange(10),
    ...     scores=np.ones(10), fake_normals=np.arange(10, 19), n_defective=3, n_labeled=10,
    ...     cumulative_defective=3, defect_rate=0.3, recall=None,
    ...     seconds={"train_M": 1.5})
    >>> print(SID4DSRun(rounds=[record]).table(n_defective_total=4).splitlines()[2])
    | 0 | cold_start | 10 | 3 | 3 | 75% | 1.5 |
    """

    rounds: list[RoundSummary] = field(default_factory=list)
    labeled_indices: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    labeled_masks: np.ndarray | None = None
    segmenter: SegmentationLearner | None = None
    final_model: SegmentationLearner | None = None
    cross_validation: CrossValidation | None = None
    msmr_scorer: ReconstructionScorer | None = None
    sdr_scorer: ReconstructionScorer | None = None
    msmr_scores: np.ndarray | None = None

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
        audited = any(record.recall is not None for record in self.rounds)
        if audited:
            header.append("share found ≥ (95%, audit)")
        header.append("seconds")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for record in self.rounds:
            cells = [str(record.round), record.stage, str(record.n_labeled),
                     str(record.n_defective), str(record.cumulative_defective)]
            if n_defective_total:
                cells.append(f"{record.cumulative_defective / n_defective_total:.0%}")
            if audited:
                cells.append("–" if record.recall is None  # rounded down, as a bound
                             else f"{math.floor(record.recall.lower * 100)}%")
            cells.append(f"{sum(record.seconds.values()):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


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
    region: str = "adaptive",
    fusion: str | None = "rank",
    fit_final: bool = False,
    final_params: dict[str, Any] | None = None,
    groups: Any = None,
    audit: int = 0,
    random_state: Any = None,
    verbose: int = 0,
) -> SID4DSRun:
    """Algorithm 1 of the SID4DS paper, end to end, with ``oracle`` as the human.

    Round 0 trains the self-supervised scorer M on the pool, ranks by E_msmr, asks the
    oracle for the top K masks and makes the bottom V fake normals. Each of the next
    ``n_rounds`` rounds first trains S (from its previous weights after the first time) and,
    once, G (starting from M's weights) on the labelled images plus the previous round's
    fake normals, then ranks the unlabelled pool by E_sdr: S's pseudolabels are where G's
    reconstruction error counts. A round whose labelled set holds no defective image yet
    stays in the cold start and reuses M's E_msmr. Every round is
    :meth:`sid4ds.engine.rounds.SID4DSRounds.run_round`, the same round a labelling session runs.

    Parameters
    ----------
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        The unlabelled pool; or a memmap, a sequence of image paths, a torch Dataset or an
        :class:`~sid4ds.datasets.pool.ImagePool` (scored in chunks; M trains on batches read as
        drawn; only the labelled images and fake normals are held in memory).
    oracle : callable
        ``oracle(indices) -> masks`` of shape (len(indices), height, width): the human
        labeller, given pool indices.
    n_rounds : int, default=2
        Iterations T after the cold start.
    n_label : int
        K, images labelled per round (the paper: 10% of the pool).
    n_normal : int or "auto", default="auto"
        V, fake normals per round (:func:`~sid4ds.resolve_n_normal`); 0 turns them off.
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
        Retrain G (from its weights) in every iterative round, not only the first.
    tie_break : {"msmr", "content"}, default="msmr"
        How images with equal scores are ordered. With ``region="threshold"``, E_sdr is 0 for
        every image in which S predicts no defect pixel, often most of the pool; ``"msmr"``
        orders those (and any other ties) by their cold-start E_msmr (an addition to the
        paper), then by a hash of their pixels; ``"content"`` by the hash alone (an
        arbitrary but reproducible order, as the paper leaves ties unspecified).
    region : {"adaptive", "threshold"}, default="adaptive"
        How S's probabilities become E_sdr's regions
        (:func:`sid4ds.ranking.scores.pseudo_label_regions`): ``"threshold"`` is the paper's
        S ≥ 0.5; ``"adaptive"`` also takes the most probable 1% of the pixels of an image S
        marks nowhere and ranks those images below every image S marks
        (:func:`sid4ds.ranking.scores.rank_below_marked`; an addition to the paper, measured in
        ``docs/benchmarks.md``).
    fusion : {"rank", None}, default="rank"
        The iterative score: E_sdr fused with S's mean probability by rank
        (:func:`sid4ds.ranking.scores.fuse_ranks`, ``docs/method.md``), or E_sdr alone
        (None, the paper's).
    fit_final : bool, default=False
        After the last round, train the model to take home (:attr:`SID4DSRun.final_model`)
        on every labelled image and the last round's fake normals, its threshold and
        training length chosen by cross-validation, with an estimate of how well it does on
        images of which ``expected_defect_ratio`` are defective
        (:attr:`SID4DSRun.cross_validation`;
        :func:`sid4ds.estimators.final_model.train_final_model`).
        Off by default: the selection does not need it.
    final_params : dict, optional
        Settings of the final model (:func:`sid4ds.estimators.final_model.check_final_settings`),
        checked before the first round.
    groups : array-like of shape (n_pool,), optional
        Source of each pool image (tiles of one image share one): the final model's
        cross-validation keeps each source in one fold.
    audit : int, default=0
        Besides the K ranked images, ask the oracle each round for ``audit`` images drawn
        uniformly at random from the unlabelled images the ranking left (fewer when fewer
        are left; :func:`sid4ds.stopping.draw_audit`, seeded from ``random_state``): a
        random audit, from which each round's :attr:`RoundSummary.recall` bounds the share
        of defective images found. Audit images are labelled like the others and train
        the next round's models.
    random_state : int, RandomState, Generator or None, default=None
        Seeds S and M when their own ``random_state`` is None
        (:func:`sid4ds.engine.rounds.configure_models`).
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
    >>> [record.n_labeled for record in run.rounds]
    [4, 8]
    """
    images = as_pool(X_pool, name="X_pool")
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    n_label = check_int(n_label, "n_label", minimum=1)
    n_batch = min(n_label, len(images))
    audit = check_audit_size(audit, len(images) - n_batch, "audit", n_batch=n_batch)
    if not callable(oracle):
        raise TypeError(f"oracle must be callable as oracle(indices) -> masks; got {oracle!r}")
    if fit_final:
        final_params = check_final_settings(final_params)
    groups = check_groups(groups, len(images))

    def say(message: str) -> None:
        if verbose:
            print(f"[sid4ds] {message}", flush=True)

    segmenter, scorer = configure_models(segmenter, scorer, random_state, verbose=verbose)
    audit_seed = int(make_rng(random_state).integers(2**32)) if audit else 0
    engine = SID4DSRounds(segmenter, scorer, guided_epochs=guided_epochs,
                          retrain_scorer=retrain_scorer, tie_break=tie_break, region=region,
                          fusion=fusion,
                          n_normal=n_normal, expected_defect_ratio=expected_defect_ratio,
                          say=say)
    _, height, width = images.image_shape

    def labelled_set(history: list[LabelledRound[PoolSelection]]) -> tuple[np.ndarray,
                                                                         np.ndarray]:
        """X_L ∪ X_FN: everything labelled, then the last round's fake normals."""
        if not history:
            return images[np.empty(0, np.int64)], np.zeros((0, height, width), np.uint8)
        rows = np.concatenate([part.chosen for part in history])
        masks = np.concatenate([part.masks for part in history])
        return training_set(images[rows], masks, images[history[-1].info.fake_normals])

    def select(round_index: int, unlabeled: np.ndarray,
               history: list[LabelledRound[PoolSelection]]) -> tuple[np.ndarray,
                                                                    PoolSelection]:
        X_train, y_train = labelled_set(history)
        result = engine.run_round(images, unlabeled, X_train, y_train, round_index, n_label)
        ranked = unlabeled[result.selected]
        candidates = np.setdiff1d(unlabeled, ranked)
        drawn = draw_audit(candidates, min(audit, len(candidates)),
                           random_state=[audit_seed, 1, round_index]).astype(np.int64)
        return np.concatenate([ranked, drawn]), PoolSelection(
            result, unlabeled[result.fake_normals], audit=drawn,
            audit_population=len(candidates))

    run = SID4DSRun(segmenter=segmenter, msmr_scorer=scorer)
    defective_of: dict[int, bool] = {}  # every labelled pool row: defective?

    def record(labelled: LabelledRound[PoolSelection]) -> None:
        result, drawn = labelled.info.result, labelled.info.audit
        n_ranked = len(labelled.chosen) - len(drawn)
        ranked = labelled.chosen[:n_ranked]
        defective = defective_rows(labelled.masks)
        found, audit_found = int(defective[:n_ranked].sum()), int(defective[n_ranked:].sum())
        outside = [*defective_of, *ranked.tolist()]  # labelled when the audit was drawn
        defective_of.update(zip(labelled.chosen.tolist(), defective.tolist(), strict=True))
        recall = (audit_recall_bound(defective_of, outside, labelled.info.audit_population,
                                     drawn.tolist()) if len(drawn) else None)
        previous = run.rounds[-1] if run.rounds else None
        n_labeled = (previous.n_labeled if previous else 0) + len(labelled.chosen)
        cumulative = (previous.cumulative_defective if previous else 0) + found + audit_found
        run.rounds.append(RoundSummary(
            round=labelled.round, stage=result.stage, reason=result.reason,
            selected=ranked, scores=result.scores[result.selected],
            fake_normals=labelled.info.fake_normals, n_defective=found, n_labeled=n_labeled,
            cumulative_defective=cumulative,
            defect_rate=found / max(1, n_ranked), recall=recall,
            seconds={**result.seconds, "oracle": labelled.seconds["oracle"]},
            audit=drawn, audit_defective=audit_found,
        ))
        say(f"round {labelled.round} ({result.stage}): labelled "
            f"{n_ranked}, {found} defective, "
            f"{len(labelled.info.fake_normals)} fake normals"
            + (f"; audit of {len(drawn)}, {audit_found} defective: {recall}" if recall
               else ""))

    history = label_rounds(len(images), (height, width), oracle, select, n_rounds=n_rounds,
                           on_round=record)
    run.labeled_indices = np.concatenate([part.chosen for part in history])
    run.labeled_masks = np.concatenate([part.masks for part in history])
    if fit_final:
        X_train, y_train = labelled_set(history)
        fake = history[-1].info.fake_normals
        rows = np.concatenate([*(part.chosen for part in history), fake]).astype(np.int64)
        say(f"training the final model on {len(X_train) - len(fake)} labelled images and "
            f"{len(fake)} fake normals")
        run.final_model, run.cross_validation = train_final_model(
            engine.segmenter, X_train, y_train,
            train_only=np.arange(len(rows)) >= len(rows) - len(fake),
            groups=None if groups is None else groups[rows], settings=final_params,
            defect_ratio=expected_defect_ratio or None,
            estimate_weight=_last_audit_weights(history, rows, y_train),
            random_state=engine.segmenter.random_state, say=say)
        say(f"final model: {run.cross_validation.summary()}")
    run.segmenter, run.sdr_scorer = engine.segmenter, engine.sdr_scorer
    run.msmr_scores = engine.msmr_of(images)
    return run


def _last_audit_weights(history: list[LabelledRound[PoolSelection]], rows: np.ndarray,
                        masks: np.ndarray) -> np.ndarray | None:
    """The final model's estimate weights by the last round's audit
    (:func:`sid4ds.stopping.audit_weights`), or None without one (or when it would weigh
    no defective image)."""
    last = history[-1].info if history else None
    if last is None or not len(last.audit):
        return None
    census = np.concatenate([*(part.chosen for part in history[:-1]),
                             history[-1].chosen[:len(history[-1].chosen) - len(last.audit)]])
    weights = audit_weights(rows, census, last.audit, last.audit_population)
    return weights if (weights[defective_rows(masks)] > 0).any() else None
