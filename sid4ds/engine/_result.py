"""What one round chose, and why: :class:`RoundResult` (re-exported by
:mod:`sid4ds.engine.rounds`, whose :meth:`~sid4ds.engine.rounds.SID4DSRounds.run_round`
returns it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RoundResult"]


@dataclass
class RoundResult:
    """What one round chose, and why.

    Attributes
    ----------
    round : int
        Its index (0 is the first round).
    stage : {"cold_start", "iterative"}
    score : {"E_msmr", "E_sdr", "E_sdr+S"}
        What the unlabelled images were ranked by (``"E_sdr+S"``: E_sdr fused with S's
        mean probability by rank, the default after the cold start).
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
        round (the ``"fake_normals..."`` rules); empty
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
