"""modAL on images and masks: :class:`DefectActiveLearner`, with SID4DS's fake normals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from modAL.models import ActiveLearner
from modAL.models.base import BaseLearner
from modAL.uncertainty import uncertainty_sampling

from sid4ds._core.random import make_rng
from sid4ds.datasets.pool import ImagePool, as_pool
from sid4ds.engine.rounds import training_set
from sid4ds.modal._data import (
    check_kind,
    check_labeled,
    check_modal,
    describe,
    fit_modal,
    is_images,
    stack_training,
)
from sid4ds.modal._fake_normals import fake_normal_indices
from sid4ds.modal.strategies import (
    default_msmr_scorer,
    learner_engine,
    msmr_sampling,
    sdr_sampling,
    sid4ds_sampling,
)
from sid4ds.ranking.selection import forget_pool_scores, query_state

__all__ = ["DefectActiveLearner", "default_sampling"]


def default_sampling(learner: Any, X_pool: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """The default query strategy of :class:`DefectActiveLearner`: SID4DS's on images.

    A pool of images (as :class:`DefectActiveLearner` tells them, see its docstring) is
    ranked by :func:`~sid4ds.sid4ds_sampling` (the cold start until a defect is labelled,
    then E_sdr); any other pool (tabular rows, sparse matrices,
    texts) by modAL's own default, ``modAL.uncertainty.uncertainty_sampling``, so that a
    learner built without ``query_strategy`` behaves as modAL's ``ActiveLearner`` wherever
    the pool is not images. ``args`` and ``kwargs`` (``n_instances=K`` among them) go to
    the strategy chosen.

    Parameters
    ----------
    learner : modAL learner
        The learner whose ``query`` calls this strategy.
    X_pool : array-like, ImagePool or other modAL data
        The pool to rank.
    *args, **kwargs
        Passed to the strategy chosen.

    Returns
    -------
    indices : ndarray of int
        The selected rows of ``X_pool``, best first.
    scores : ndarray
        Their scores (E_msmr or E_sdr on images, uncertainty otherwise).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sid4ds.modal.learner import DefectActiveLearner, default_sampling
    >>> rows = np.random.default_rng(0).random((20, 3))
    >>> learner = DefectActiveLearner(LogisticRegression(), X_training=rows[:6],
    ...                               y_training=(rows[:6, 0] > 0.5).astype(int))
    >>> learner.query_strategy is default_sampling
    True
    >>> indices, _ = learner.query(rows[6:], n_instances=2)  # as modAL's uncertainty_sampling
    >>> len(indices)
    2
    """
    strategy = sid4ds_sampling if is_images(X_pool) else uncertainty_sampling
    return strategy(learner, X_pool, *args, **kwargs)


class DefectActiveLearner(ActiveLearner):
    """modAL's ActiveLearner for images and pixel masks, with SID4DS fake normals.

    modAL-python 0.4.2.1 validates training data with ``check_X_y(force_all_finite=...)``,
    which scikit-learn ≥ 1.8 removed, and rejects masks of shape (n, H, W). This subclass
    validates images and masks with sid4ds's own checks instead, so ``fit``, ``teach``,
    ``query`` and ``score`` work on current scikit-learn and numpy.

    With a sid4ds strategy, ``query`` also keeps the bottom V of the round as fake normals
    (X_FN, Algorithm 1 lines 4 and 11; the round engine picks them, see
    :mod:`sid4ds.engine.rounds`): they get all-zero masks and stay in the caller's pool; they join
    the training set X_L ∪ X_FN of every ``teach`` and of G (the next query's label-guided
    learner) until the next ``query`` picks new ones.

    **Images or modAL data.** Each call decides from its ``X`` (``X_pool`` for ``query``,
    the stored ``X_training`` for retraining) which path it takes. Images are numeric
    arrays or torch tensors of 3 (n, H, W) or 4 (n, C, H, W) dimensions, lists that numpy
    turns into such arrays, an :class:`~sid4ds.datasets.pool.ImagePool`, an ``np.memmap`` or other
    lazily sliced array of 3 or 4 dimensions, a torch Dataset, and sequences of image paths
    (``os.PathLike`` items, or str items ending in .png, .jpg, .jpeg, .bmp, .tif or .tiff;
    wrap other paths in an ImagePool). Everything else — 1-D and 2-D arrays, scipy sparse
    matrices, pandas data frames, lists (of rows or of texts) — is handled exactly as by
    ``modAL.models.ActiveLearner``: the default strategy is modAL's
    ``uncertainty_sampling`` (see :func:`default_sampling`); ``X_training`` keeps what was
    passed, stacked with ``modAL.utils.data.data_vstack``; data are checked with modAL's
    ``check_X_y`` options (finiteness as the ``force_all_finite`` attribute says, through
    scikit-learn's ``ensure_all_finite``), but on current scikit-learn; data frames are
    stacked with ``pandas.concat`` (modAL 0.4.2.1 calls ``DataFrame.append``, which pandas 2
    removed); ``teach(only_new=True)`` fits on the new data without adding them to
    ``X_training``; the estimator is always refitted with ``fit``; ``query`` returns what the
    strategy chose. Fake normals take no part there: ``n_normal`` has no effect and no fake
    normals are picked (``return_fake_normals`` gives an empty array). The only differences
    from modAL on such data: bootstrap rows are drawn from ``random_state`` (not numpy's
    global RNG) and ``fit_kwargs`` reach the estimator in bootstrapped
    ``teach(only_new=True)`` too. modAL's own test suite passes with this class standing in
    for ``ActiveLearner`` (``benchmarks/modal_conformance.py``). One learner holds images or
    other data, not both.

    Parameters
    ----------
    estimator : SegmentationLearner
        The segmentation learner S (any estimator with ``fit(X, masks)`` works; for
        non-image data any scikit-learn estimator, as in modAL).
    query_strategy : callable, default=default_sampling
        ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)``. The default,
        :func:`default_sampling`, ranks a pool of images by :func:`~sid4ds.sid4ds_sampling`
        and any other pool by modAL's default, ``modAL.uncertainty.uncertainty_sampling``.
        The SID4DS strategies rank images only.
    X_training : array-like of shape (n_samples, n_channels, height, width), optional
        Initial labelled images; the estimator is fitted on them at construction.
    y_training : array-like of shape (n_samples, height, width), optional
        Their masks.
    bootstrap_init : bool, default=False
        As in modAL: bootstrap the initial training set.
    on_transformed : bool, default=False
        As in modAL: strategies that work on instance representations (such as
        ``modAL.batch.uncertainty_batch_sampling``) see ``X_pool`` transformed by the
        estimator's pipeline.
    n_normal : int or "auto", default="auto"
        V, fake normals per query (see :func:`resolve_n_normal`); 0 turns them off. Needs a
        strategy that scores the whole pool (the sid4ds strategies do); with other
        strategies ``"auto"`` picks none and a positive int is an error. Images only.
    expected_defect_ratio : float, default=0.05
        Used by ``n_normal="auto"``.
    warm_start : bool, default=True
        After the first training on images, retrain the estimator from its current weights
        (``partial_fit``), as the paper does from round 2 on; False refits from scratch.
        Non-image data are always refitted with ``fit``, as in modAL.
    random_state : int or None, default=None
        Seeds bootstrapping (modAL uses numpy's global RNG for it; this class does not).
    **fit_kwargs
        Passed to the estimator's ``fit`` at construction; ``force_all_finite`` is taken by
        modAL's ``ActiveLearner`` as there.

    Attributes
    ----------
    X_training, y_training : ndarray
        Labelled images (n, C, H, W) float32 and masks (n, H, W) uint8 (X_L); for other
        data, what modAL would keep.
    X_fake_normal : ndarray or None
        Fake normals picked by the last ``query`` (X_FN), kept until the next query.
    fake_normal_indices_ : ndarray of int
        Their indices in the last queried pool.
    msmr_scorer, sdr_scorer : ReconstructionScorer
        Kept here by the strategies (see :mod:`sid4ds.modal.strategies`).

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
    >>> learner.X_training.shape, learner.training_data()[0].shape
    ((4, 1, 16, 16), (9, 1, 16, 16))

    On tabular data it is modAL's ActiveLearner, its default strategy included:

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> rows = np.random.default_rng(0).random((20, 3))
    >>> labels = (rows[:, 0] > 0.5).astype(int)
    >>> tabular = DefectActiveLearner(LogisticRegression(), X_training=rows[:6],
    ...                               y_training=labels[:6])
    >>> query_idx, _ = tabular.query(rows[6:], n_instances=2)
    >>> tabular.teach(rows[6:][query_idx], labels[6:][query_idx])
    >>> tabular.X_training.shape, tabular.y_training.shape
    ((8, 3), (8,))
    """

    def __init__(
        self,
        estimator: Any,
        query_strategy: Callable[..., Any] = default_sampling,
        X_training: Any = None,
        y_training: Any = None,
        bootstrap_init: bool = False,
        on_transformed: bool = False,
        *,
        n_normal: int | str = "auto",
        expected_defect_ratio: float = 0.05,
        warm_start: bool = True,
        random_state: Any = None,
        **fit_kwargs: Any,
    ) -> None:
        self.n_normal = n_normal
        self.expected_defect_ratio = expected_defect_ratio
        self.warm_start = warm_start
        self.bootstrap_init = bootstrap_init
        self.random_state = random_state
        self._rng = make_rng(random_state)
        self.X_fake_normal: np.ndarray | None = None
        self.fake_normal_indices_ = np.empty(0, dtype=np.int64)
        self._trained = False
        if is_images(X_training):
            X_training, y_training = self._check_labeled(X_training, y_training)
        super().__init__(estimator, query_strategy, X_training, y_training,
                         bootstrap_init=bootstrap_init, on_transformed=on_transformed,
                         **fit_kwargs)

    # ------------------------------------------------------------------ strategy state
    @property
    def msmr_scorer(self) -> Any:
        """M of the SID4DS strategies: a view of ``sid4ds_state.engine.msmr_scorer``.

        Set a configured or fitted ReconstructionScorer to use it; None puts a new default
        one in its place (trained on the next cold-start query).
        """
        return learner_engine(self).msmr_scorer

    @msmr_scorer.setter
    def msmr_scorer(self, scorer: Any) -> None:
        learner_engine(self).msmr_scorer = (default_msmr_scorer(self) if scorer is None
                                            else scorer)

    @property
    def sdr_scorer(self) -> Any:
        """G of the SID4DS strategies: a view of ``sid4ds_state.engine.sdr_scorer``
        (None until the first iterative query; set None to make a new one from M)."""
        return learner_engine(self).sdr_scorer

    @sdr_scorer.setter
    def sdr_scorer(self, scorer: Any) -> None:
        learner_engine(self).sdr_scorer = scorer

    @property
    def pool_scores_(self) -> np.ndarray | None:
        """The last query's scores of the whole pool (``sid4ds_state.pool_scores``)."""
        return query_state(self).pool_scores

    # ------------------------------------------------------------------ data
    def _holds_images(self) -> bool:
        return is_images(getattr(self, "X_training", None))

    def _check_labeled(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        return check_labeled(X, y, getattr(self, "X_training", None))

    def _add_modal_data(self, X: Any, y: Any) -> None:
        check_kind(X, False, self.X_training)
        check_modal(X, y, self.force_all_finite)
        self.X_training, self.y_training = stack_training(self.X_training, self.y_training,
                                                          X, y)

    def _add_training_data(self, X: Any, y: Any) -> None:
        if not is_images(X):
            self._add_modal_data(X, y)
            return
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
            raise ValueError("the learner has no labelled data yet; teach it first")
        return training_set(self.X_training, self.y_training, self.X_fake_normal)

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
        if self.X_training is not None and not self._holds_images():
            fit_modal(self.estimator, self.X_training, self.y_training, bootstrap, self._rng,
                      **fit_kwargs)
            return self
        X, y = self.training_data()
        self._fit_estimator(X, y, bootstrap, **fit_kwargs)
        return self

    def _fit_on_new(self, X: Any, y: Any, bootstrap: bool = False,
                    **fit_kwargs: Any) -> DefectActiveLearner:
        if not is_images(X):
            fit_modal(self.estimator, X, y, bootstrap, self._rng, **fit_kwargs)
            return self
        images, masks = training_set(*self._check_labeled(X, y), self.X_fake_normal)
        self._fit_estimator(images, masks, bootstrap, **fit_kwargs)
        return self

    def fit(self, X: Any, y: Any, bootstrap: bool = False,
            **fit_kwargs: Any) -> DefectActiveLearner:
        """Forget the labelled set, replace it with ``X``/``y`` and train from scratch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images; other data (2-D arrays, sparse matrices, lists) are kept as modAL does.
        y : array-like of shape (n_samples, height, width)
            Masks; for other data, labels as in modAL.
        bootstrap : bool, default=False
            Train on a bootstrap sample of ``X``.
        **fit_kwargs
            Passed to the estimator's ``fit``.

        Returns
        -------
        self : DefectActiveLearner
        """
        if not is_images(X):
            check_modal(X, y, self.force_all_finite)
            self.X_training, self.y_training = X, y
            return self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)
        self.X_training, self.y_training = None, None
        self.X_training, self.y_training = self._check_labeled(X, y)
        self._trained = False
        return self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    def teach(self, X: Any, y: Any, bootstrap: bool = False, only_new: bool = False,
              **fit_kwargs: Any) -> None:
        """Add labelled images and retrain on X_L ∪ X_FN (X_FN: the last query's fake normals).

        For data that are not images, exactly modAL's ``teach``: ``only_new=True`` fits on
        ``X`` alone and does not add it to ``X_training``; fake normals are not involved.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Newly labelled images (or other data, see the class docstring).
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Their masks (labels for other data).
        bootstrap : bool, default=False
            Train on a bootstrap sample.
        only_new : bool, default=False
            Train on the new images (and the fake normals) only, as in modAL.
        **fit_kwargs
            Passed to the estimator's ``fit`` (or ``partial_fit``).
        """
        if not is_images(X):
            if only_new:
                check_kind(X, False, self.X_training)
                check_modal(X, y, self.force_all_finite)
                self._fit_on_new(X, y, bootstrap=bootstrap, **fit_kwargs)
            else:
                self._add_training_data(X, y)
                self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)
            return
        self._add_training_data(X, y)
        if only_new:
            self._fit_on_new(X, y, bootstrap=bootstrap, **fit_kwargs)
        else:
            self._fit_to_known(bootstrap=bootstrap, **fit_kwargs)

    # ------------------------------------------------------------------ querying
    def query(self, X_pool: Any, *query_args: Any, return_metrics: bool = False,
              return_fake_normals: bool = False, **query_kwargs: Any) -> tuple[Any, ...]:
        """Rank the pool with the query strategy; keep the bottom V as fake normals.

        A pool that is not images (see the class docstring) is queried exactly as modAL's
        ``ActiveLearner.query`` does, without fake normals.

        Parameters
        ----------
        X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
            Unlabelled images; or a memmap, a sequence of image paths, a torch Dataset or an
            :class:`~sid4ds.datasets.pool.ImagePool`, read in chunks (``X_query`` is then read from
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
            Only with ``return_fake_normals``; disjoint from ``indices`` (empty for a pool
            that is not images).
        """
        forget_pool_scores(self)
        if not is_images(X_pool):
            if self.query_strategy in (msmr_sampling, sdr_sampling, sid4ds_sampling):
                raise ValueError(
                    f"query_strategy {self.query_strategy.__name__} ranks images, but X_pool "
                    f"({describe(X_pool)}) is not image-shaped; for tabular data pass a "
                    f"modAL strategy, e.g. query_strategy=modAL.uncertainty.uncertainty_sampling,"
                    f" or sid4ds.modal.learner.default_sampling (the default), which ranks "
                    f"images by "
                    f"sid4ds_sampling and other data as modAL does"
                )
            self.X_fake_normal = None
            self.fake_normal_indices_ = np.empty(0, dtype=np.int64)
            result = BaseLearner.query(self, X_pool, *query_args, return_metrics=return_metrics,
                                       **query_kwargs)
            if return_fake_normals:
                return (*result, self.fake_normal_indices_)
            return result
        images = as_pool(X_pool, name="X_pool")
        result = super().query(images, *query_args, return_metrics=return_metrics,
                               **query_kwargs)
        indices = np.asarray(result[0])
        self._pick_fake_normals(images, indices)
        if return_fake_normals:
            return (*result, self.fake_normal_indices_)
        return result

    def _pick_fake_normals(self, images: ImagePool, indices: np.ndarray) -> None:
        bottom = fake_normal_indices(query_state(self), indices, len(images), self.n_normal,
                                     self.expected_defect_ratio)
        self.fake_normal_indices_ = np.empty(0, dtype=np.int64) if bottom is None else bottom
        self.X_fake_normal = None if bottom is None else images[bottom]
