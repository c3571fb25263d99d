"""What the session report (``sid4ds report``) shows besides the manifest and the status:
the round's ranking, M's error maps, the cold-start E_msmr and the ties of the scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds.estimators.reconstruction import block_masks
from sid4ds.ranking.score_cache import model_fingerprint
from sid4ds.session.errors import SessionError
from sid4ds.session.query import round_ranking
from sid4ds.session.store import SessionStore

__all__ = ["error_maps", "msmr_of", "round_scores", "score_ties"]


def round_scores(store: SessionStore, record: dict[str, Any]) -> tuple[np.ndarray, list[str],
                                                                         bool]:
    """Scores and names of the round's ranking; False when scores.csv was unreadable and
    only the asked and fake-normal scores of the manifest are given."""
    try:
        rows = round_ranking(store, record)
        scores = np.array([row["score"] for row in rows], dtype=np.float64)
        return scores, [row["name"] for row in rows], True
    except SessionError:
        names = [*record["selected"], *record["fake_normals"]]
        scores = np.array([*record["scores"], *record["fake_normal_scores"]], dtype=np.float64)
        return scores, names, False


def error_maps(store: SessionStore, record: dict[str, Any], images: np.ndarray,
                device: Any) -> np.ndarray | None:
    """M's block-wise masked-reconstruction error (n, H, W), as E_msmr sees it."""
    models = record["models"]
    if models.get("M") is None:
        return None
    scorer = store.model("M", device, round_index=models["M"])
    if scorer is None:
        return None
    height, width = images.shape[2:]
    maps = np.zeros((len(images), height, width), dtype=np.float64)
    for block in block_masks(height, width, scorer.n_blocks):
        squared = ((scorer.reconstruct(images, mask=block.astype(np.uint8)) - images) ** 2
                   ).mean(axis=1)
        maps[:, block] = squared[:, block]
    return maps


def msmr_of(store: SessionStore, record: dict[str, Any], device: Any) -> dict[str, float]:
    """The cold-start E_msmr, the ranking's first tie-break, of every pool image M scored,
    by name ({} when M or its scores are gone)."""
    if record["models"].get("M") is None:
        return {}
    scorer = store.model("M", device, round_index=record["models"]["M"])
    if scorer is None:
        return {}
    pool = store.pool()
    values = store.score_cache().lookup("E_msmr", model_fingerprint(scorer), pool.keys)
    return {name: float(value) for name, value in zip(pool.names, values, strict=True)
            if np.isfinite(value)}


def score_ties(scores: np.ndarray, record: dict[str, Any], region: str) -> dict[str, Any]:
    """What the ranking could not tell apart by its score.

    ``fallback``: in an E_sdr round with adaptive regions, the images S marks nowhere
    (scores in [-1, 0), :func:`sid4ds.ranking.scores.rank_below_marked`), with ``errors``, the
    G error inside their fallback region that the band orders them by; ``tied``: images
    whose score equals another's (ordered by the tie-break); ``dominant``: either holds
    more than half of the ranked images, so the histogram of the scores alone says little.
    """
    finite = scores[np.isfinite(scores)]
    fallback = np.zeros(len(scores), bool)
    if record["score"] == "E_sdr" and region == "adaptive":
        fallback = np.isfinite(scores) & (scores < 0)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    tied = counts[inverse.ravel()] > 1
    with np.errstate(divide="ignore"):
        errors = np.where(fallback, -1.0 / np.where(fallback, scores, -1.0) - 1.0, np.nan)
    n = max(1, len(finite))
    return {"fallback": fallback, "errors": errors, "tied": tied,
            "n_fallback": int(fallback.sum()), "n_tied": int(tied.sum()),
            "dominant": fallback.sum() > n / 2 or tied.sum() > n / 2}
