"""Algorithm 1 end to end with an oracle as the labeller: :func:`run_sid4ds`.

Each round is :meth:`sid4ds.rounds.SID4DSRounds.run_round` (the method's one round),
driven by the loop skeleton :func:`sid4ds.rounds.label_rounds`; :class:`SID4DSRun` is
what the run did, round by round, and the models it trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sid4ds._validation import check_int
from sid4ds.metrics import defective_rows
from sid4ds.pool import as_pool
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.rounds import (
    LabelledRound,
    RoundResult,
    SID4DSRounds,
    configure_models,
    label_rounds,
    remaining_estimate,
)
from sid4ds.segmentation import SegmentationLearner

__all__ = ["SID4DSRun", "run_sid4ds"]


@dataclass
class SID4DSRun:
    """What :func:`run_sid4ds` did, round by round, and the models it trained.

    Attributes
    ----------
    rounds : list of dict
        One plain record per round (round 0 is the first): ``round``, ``stage``
        (``"cold_start"`` or ``"iterative"``), ``reason`` (why that stage), ``selected``
        (pool indices, best first), ``scores`` (their scores), ``fake_normals`` (pool
        indices), ``n_defective`` (how many selected images have a defect pixel in the
        oracle's masks), ``n_labeled`` (labelled so far), ``cumulative_defective``,
        ``defect_rate`` (``n_defective`` / images selected), ``remaining_estimate`` (an
        estimate of the defective images still unlabelled, see
        :func:`sid4ds.rounds.remaining_estimate`)
        and ``seconds`` (wall time per phase: ``train_M``, ``train_S``, ``train_G``,
        ``score_msmr`` / ``score_sdr``, ``oracle``).
    labeled_indices : ndarray of int
        All labelled pool indices, in labelling order.
    labeled_masks : ndarray of shape (n_labeled, height, width)
        The oracle's masks for them.
    segmenter : SegmentationLearner
        S: trained on everything labelled before the last round (the S that scored it), or
        on every labelled image when ``run_sid4ds(fit_final=True)``; unfitted when no round
        reached the iterative stage.
    msmr_scorer, sdr_scorer : ReconstructionScorer
        M and G (G is None when no round reached the iterative stage).
    msmr_scores : ndarray of shape (n_pool,) or None
        M's E_msmr of every pool image, as round 0 ranked them.

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
    fusion: str | None = None,
    fit_final: bool = False,
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
    :meth:`sid4ds.rounds.SID4DSRounds.run_round`, the same round a labelling session runs.

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
        (:func:`sid4ds.strategies.pseudo_label_regions`): ``"threshold"`` is the paper's
        S ≥ 0.5; ``"adaptive"`` also takes the most probable 1% of the pixels of an image S
        marks nowhere and ranks those images below every image S marks
        (:func:`sid4ds.strategies.rank_below_marked`; an addition to the paper, measured in
        ``docs/benchmarks.md``).
    fusion : {None, "rank"}, default=None
        The iterative score: E_sdr alone (None, the paper's), or E_sdr fused with S's mean
        probability by rank (:func:`sid4ds.strategies.fuse_ranks`, ``docs/method.md``).
    fit_final : bool, default=False
        Train S once more after the last round, on every labelled image, to take home
        (:attr:`SID4DSRun.segmenter`). Off by default: the selection does not need it.
    random_state : int, RandomState, Generator or None, default=None
        Seeds S and M when their own ``random_state`` is None
        (:func:`sid4ds.rounds.configure_models`).
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
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    n_label = check_int(n_label, "n_label", minimum=1)
    if not callable(oracle):
        raise TypeError(f"oracle must be callable as oracle(indices) -> masks; got {oracle!r}")

    def say(message: str) -> None:
        if verbose:
            print(f"[sid4ds] {message}", flush=True)

    segmenter, scorer = configure_models(segmenter, scorer, random_state, verbose=verbose)
    engine = SID4DSRounds(segmenter, scorer, guided_epochs=guided_epochs,
                          retrain_scorer=retrain_scorer, tie_break=tie_break, region=region,
                          fusion=fusion,
                          n_normal=n_normal, expected_defect_ratio=expected_defect_ratio,
                          say=say)
    _, height, width = images.image_shape

    def training_set(history: list[LabelledRound]) -> tuple[np.ndarray, np.ndarray]:
        """X_L ∪ X_FN: everything labelled, then the last round's fake normals."""
        fake = history[-1].info[1] if history else np.empty(0, np.int64)
        rows = np.concatenate([*(part.chosen for part in history), fake]).astype(np.int64)
        zeros = np.zeros((len(fake), height, width), np.uint8)
        masks = np.concatenate([*(part.masks for part in history), zeros])
        return images[rows], masks

    def select(round_index: int, unlabeled: np.ndarray,
               history: list[LabelledRound]) -> tuple[np.ndarray, Any]:
        X_train, y_train = training_set(history)
        result = engine.run_round(images, unlabeled, X_train, y_train, round_index, n_label)
        return unlabeled[result.selected], (result, unlabeled[result.fake_normals])

    run = SID4DSRun(segmenter=segmenter, msmr_scorer=scorer)

    def record(labelled: LabelledRound) -> None:
        result: RoundResult = labelled.info[0]
        found = int(defective_rows(labelled.masks).sum())
        previous = run.rounds[-1] if run.rounds else {"n_labeled": 0,
                                                      "cumulative_defective": 0}
        n_labeled = previous["n_labeled"] + len(labelled.chosen)
        cumulative = previous["cumulative_defective"] + found
        run.rounds.append({
            "round": labelled.round, "stage": result.stage, "reason": result.reason,
            "selected": labelled.chosen, "scores": result.scores[result.selected],
            "fake_normals": labelled.info[1], "n_defective": found, "n_labeled": n_labeled,
            "cumulative_defective": cumulative,
            "defect_rate": found / max(1, len(labelled.chosen)),
            "remaining_estimate": remaining_estimate(
                len(images), n_labeled, cumulative, found, len(labelled.chosen),
                expected_defect_ratio),
            "seconds": {**result.seconds, "oracle": labelled.seconds["oracle"]},
        })
        say(f"round {labelled.round} ({result.stage}): labelled "
            f"{len(labelled.chosen)}, {found} defective, {len(labelled.info[1])} fake normals")

    history = label_rounds(len(images), (height, width), oracle, select, n_rounds=n_rounds,
                           on_round=record)
    run.labeled_indices = np.concatenate([part.chosen for part in history])
    run.labeled_masks = np.concatenate([part.masks for part in history])
    if fit_final:
        X_train, y_train = training_set(history)
        say(f"training S on all {len(X_train)} labelled images and fake normals")
        engine.fit_segmenter(X_train, y_train, len(history))
    run.segmenter, run.sdr_scorer = engine.segmenter, engine.sdr_scorer
    run.msmr_scores = engine.cached_msmr(images)
    return run

