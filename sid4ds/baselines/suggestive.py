"""Suggestive annotation (Yang et al. 2017): uncertain candidates that cover the pool."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import borrow_seed, draw_seed, make_rng
from sid4ds._core.validation import (
    check_features,
    check_int,
    check_n_instances,
    check_probabilities,
)
from sid4ds.baselines.common import labeled_set
from sid4ds.datasets.pool import as_pool
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.ranking.selection import (
    content_keys,
    estimator_of,
    rank_pool,
    record_pool_scores,
    tie_keys,
)

__all__ = ["ensemble_uncertainty", "max_cover_selection", "suggestive_annotation_sampling"]


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero (cosine similarity 0)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def ensemble_uncertainty(probabilities: Any) -> np.ndarray:
    """Mean over pixels of the variance across models of the defect probability.

    Parameters
    ----------
    probabilities : array-like of shape (n_models, n_samples, height, width)
        Each model's defect probabilities.

    Returns
    -------
    uncertainty : ndarray of shape (n_samples,), float64 in [0, 0.25]

    Examples
    --------
    >>> from sid4ds.baselines import ensemble_uncertainty
    >>> ensemble_uncertainty([[[[0.0, 0.5]], [[0.2, 0.2]]],
    ...                       [[[1.0, 0.5]], [[0.2, 0.2]]]]).tolist()
    [0.125, 0.0]
    """
    p = check_probabilities(probabilities)
    if p.ndim < 3 or p.shape[0] < 2:
        raise ValueError(
            f"probabilities must have shape (n_models, n_samples, height, width) with "
            f"n_models >= 2; got shape {p.shape}"
        )
    return p.var(axis=0).reshape(p.shape[1], -1).mean(axis=1)


def max_cover_selection(
    candidate_features: Any, pool_features: Any, n_instances: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximum cover (Yang et al. 2017): candidates that best represent the pool.

    Maximises ``F(S) = Σ_{x in pool} max_{s in S} sim(s, x)`` with ``sim`` the cosine
    similarity clipped at 0, adding one candidate at a time (the greedy (1 − 1/e)
    approximation of this facility-location function). A candidate close to the ones
    already picked adds little, so near-duplicates are passed over.

    Parameters
    ----------
    candidate_features : array-like of shape (n_candidates, n_features)
        Features of the candidates (S_c in the paper).
    pool_features : array-like of shape (n_pool, n_features)
        Features of the images to represent (S_u).
    n_instances : int, default=1
        K; capped at the number of candidates.

    Returns
    -------
    positions : ndarray of shape (min(n_instances, n_candidates),), int64
        Rows of ``candidate_features`` in the order picked; ties go to the earlier row.
    gains : ndarray of shape (min(n_instances, n_candidates),), float64
        Each pick's increase of F; never increasing.

    Examples
    --------
    >>> from sid4ds.baselines import max_cover_selection
    >>> candidates = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    >>> pool = [[1.0, 0.0], [1.0, 0.1], [0.1, 1.0]]
    >>> max_cover_selection(candidates, pool, n_instances=2)[0].tolist()
    [0, 2]
    """
    candidates = check_features(candidate_features, "candidate_features")
    pool = check_features(pool_features, "pool_features")
    if candidates.shape[1] != pool.shape[1]:
        raise ValueError(
            f"candidate_features has {candidates.shape[1]} features but pool_features has "
            f"{pool.shape[1]}"
        )
    if len(pool) == 0:
        raise ValueError("pool_features is empty: there is nothing to represent")
    n_selected = check_n_instances(n_instances, len(candidates))
    similarity = np.clip(_unit_rows(candidates) @ _unit_rows(pool).T, 0.0, None)
    coverage = np.zeros(len(pool))
    available = np.ones(len(candidates), dtype=bool)
    positions = np.empty(n_selected, dtype=np.int64)
    gains = np.empty(n_selected, dtype=np.float64)
    for step in range(n_selected):
        gain = np.maximum(similarity - coverage, 0.0).sum(axis=1)
        gain[~available] = -np.inf
        pick = int(np.argmax(gain))
        positions[step], gains[step] = pick, gain[pick]
        available[pick] = False
        np.maximum(coverage, similarity[pick], out=coverage)
    return positions, gains


def suggestive_annotation_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    n_models: int = 3,
    n_candidates: int | None = None,
    max_epochs: int | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Suggestive annotation: uncertain candidates, then those that best cover the pool.

    1. ``n_models`` clones of the learner's :class:`~sid4ds.SegmentationLearner` are
       trained from scratch on bootstrap samples of the labelled images
       (``learner.X_training``, ``learner.y_training``).
    2. Uncertainty of a pool image: the per-pixel variance of the clones' defect
       probabilities, averaged over the image (:func:`ensemble_uncertainty`); the
       ``n_candidates`` most uncertain images are the candidates.
    3. :func:`max_cover_selection` picks ``n_instances`` candidates that best represent the
       whole pool by the cosine similarity of their bottleneck features.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a :class:`~sid4ds.SegmentationLearner` (fitted or not:
        only its parameters are cloned) and it must have labelled images.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    n_models : int, default=3
        Ensemble size (at least 2).
    n_candidates : int, optional
        Candidates kept by uncertainty; default ``2·K``; at least K; capped at the pool.
    max_epochs : int, optional
        Epochs per ensemble member; default the estimator's ``max_epochs``. Lower it to
        keep queries cheap.
    random_state : int or None, default=None
        Seeds the bootstrap samples and the members; None: the learner's estimator's int
        ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in the order picked.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Each pick's coverage gain (descending). The ensemble uncertainty of the whole pool
        is left in ``learner.sid4ds_state.pool_scores``.

    Notes
    -----
    Simplified from the paper: the members are copies of the segmentation learner (not
    the paper's bespoke FCNs) trained for ``max_epochs``; the feature of an image is the
    average-pooled UNet bottleneck of every member, each scaled to unit length and
    concatenated, so its cosine similarity is the members' mean cosine similarity (the
    paper uses the FCNs' encodings); the whole unlabelled pool is the set to represent.

    References
    ----------
    Yang, Zhang, Chen, Zhang & Chen, "Suggestive Annotation: A Deep Active Learning
    Framework for Biomedical Image Segmentation", MICCAI 2017.

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, SegmentationLearner
    >>> from sid4ds.baselines import suggestive_annotation_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=suggestive_annotation_sampling, X_training=X[:8],
    ...     y_training=masks[:8])
    >>> indices, _ = learner.query(X[8:], n_instances=3, n_models=2)
    >>> len(indices), learner.sid4ds_state.pool_scores.shape
    (3, (16,))
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    n_models = check_int(n_models, "n_models", minimum=2)
    if n_candidates is None:
        n_candidates = min(2 * n_selected, len(images))
    else:
        n_candidates = check_int(n_candidates, "n_candidates", minimum=1)
        if n_candidates < n_selected:
            raise ValueError(
                f"n_candidates={n_candidates} is smaller than the {n_selected} images to "
                f"select; pass n_candidates >= n_instances (or leave it None for 2·K)"
            )
        n_candidates = min(n_candidates, len(images))
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, "max_epochs", minimum=1)
    segmenter = estimator_of(learner)
    if not isinstance(segmenter, SegmentationLearner):
        raise TypeError(
            f"suggestive_annotation_sampling trains copies of the learner's estimator, which "
            f"must be a SegmentationLearner; got {type(segmenter).__name__}"
        )
    X_labeled, y_labeled = labeled_set(learner, "suggestive_annotation_sampling")
    if images.image_shape[0] != X_labeled.shape[1]:
        raise ValueError(
            f"X_pool has {images.image_shape[0]} channel(s) but the labelled images have "
            f"{X_labeled.shape[1]}; pass pool images like the labelled ones"
        )
    rng = make_rng(borrow_seed(learner, random_state))
    members = []
    for _ in range(n_models):
        rows = rng.integers(0, len(X_labeled), size=len(X_labeled))
        member = clone(segmenter).set_params(
            random_state=draw_seed(rng), warm_start=False, verbose=0,
            max_epochs=segmenter.max_epochs if max_epochs is None else max_epochs)
        members.append(member.fit(X_labeled[rows], y_labeled[rows]))
    # predict a chunk of the pool with every member at a time: never all maps at once
    uncertainty = np.empty(len(images), dtype=np.float64)
    chunk = max(1, 2**22 // (images.image_shape[1] * images.image_shape[2] * n_models))
    for start in range(0, len(images), chunk):
        rows = slice(start, start + chunk)
        uncertainty[rows] = ensemble_uncertainty(
            np.stack([member.predict_proba(images[rows]) for member in members]))
    features = np.concatenate([_unit_rows(member.transform(images).astype(np.float64))
                               for member in members], axis=1) / np.sqrt(n_models)
    keys = record_pool_scores(learner, uncertainty, tie_keys(content_keys(images)))
    candidates, _ = rank_pool(uncertainty, n_candidates, tie_keys=keys)
    positions, gains = max_cover_selection(features[candidates], features, n_selected)
    return candidates[positions], gains

