"""The models' part of :class:`~sid4ds.session.session.LabelingSession` (a mixin).

The settings of S and of the final model (``sid4ds configure``), the final model
(``sid4ds train``, ``sid4ds predict``), the session's fitted models and the report
(``sid4ds report``). Each method is a call of its command's module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sid4ds.estimators.final_model import CrossValidation
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.session.configure import configure_session
from sid4ds.session.deliver import (
    cross_validation,
    predict_images,
    session_final_model,
    session_segmenter,
    train_final,
)
from sid4ds.session.report import write_session_report
from sid4ds.session.store import SessionStore

__all__ = ["ModelCommands"]


class ModelCommands:
    """The models: ``configure``, ``train``, ``predict`` and ``report`` (a part of
    ``LabelingSession``)."""

    _store: SessionStore

    def configure(self, *, segmenter: dict[str, Any] | None = None,
                  final: dict[str, Any] | None = None,
                  ranking: dict[str, Any] | None = None) -> dict[str, Any]:
        """Change the settings of S, of the ranking and of the final model
        (``sid4ds configure``).

        The next :meth:`query` trains S with the new ``segmenter`` settings and ranks by the
        new ``ranking`` rule, the next :meth:`train` trains the final model with the new
        ``final`` ones. Once S is trained it
        goes on from its weights, so only the settings of how it trains may change then
        (:data:`sid4ds.session.configure.TRAINING_PARAMS`: ``max_steps``, ``lr``, ...).
        Every change is checked before any is written, stored in the manifest's settings
        and recorded, with the round it came before, in its ``settings_changes``.

        Parameters
        ----------
        segmenter : dict, optional
            Parameters of :class:`~sid4ds.SegmentationLearner` for the S of the rounds,
            e.g. ``{"max_steps": 500}``.
        final : dict, optional
            Settings of the final model
            (:func:`sid4ds.estimators.final_model.check_final_settings`),
            e.g. ``{"max_steps": 2000, "n_folds": 5}``.
        ranking : dict, optional
            The rule of the iterative rounds (:data:`sid4ds.session.configure.RANKING_RULES`):
            ``fusion`` (``"rank"``: E_sdr fused with S's probability, the default of new
            sessions; None: E_sdr alone, the paper's rule and that of sessions made before
            the fusion) and ``region`` (``"adaptive"`` or ``"threshold"``).

        Returns
        -------
        settings : dict
            ``changed`` (what changed, by part), ``segmenter``, ``ranking`` and ``final``
            (the settings now).

        Raises
        ------
        SessionError
            For an unknown key, a bad value, or a setting that cannot change now; the
            message names it and nothing is changed.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from sid4ds.session import LabelingSession
        >>> folder = Path(tempfile.mkdtemp())
        >>> session = LabelingSession.create(folder / "s", np.zeros((4, 1, 16, 16), np.float32),
        ...                                  segmenter_params={"depth": 2},
        ...                                  scorer_params={"depth": 2, "patch_size": 4,
        ...                                                 "n_blocks": 4})
        >>> session.configure(segmenter={"max_steps": 500}, final={"n_folds": 5})["changed"]
        {'segmenter': {'max_steps': 500}, 'final': {'n_folds': 5}}
        >>> session.configure(ranking={"fusion": None})["ranking"]
        {'fusion': None, 'region': 'adaptive'}
        >>> import shutil
        >>> shutil.rmtree(folder)
        """
        return configure_session(self._store, segmenter, final, ranking)

    def train(self, *, device: Any = "auto", verbose: int = 0) -> dict[str, Any]:
        """Train the final model, the one to take home (``sid4ds train``).

        The S of the rounds is trained for ranking the pool; the final model is its own
        step (:func:`sid4ds.estimators.final_model.train_final_model`): a fresh S (by default; the
        session's final settings may start from the S of the rounds) trained on every
        labelled image and, by default, the last round's fake normals, with the budget of
        the final settings. Its decision threshold and training length are chosen by
        k-fold cross-validation over the labelled images, grouped by source file (tiles of
        one image stay in one fold; fake normals are never validated on), and the
        cross-validation estimates how well it does on new images of which the session's
        ``defect_ratio`` are defective: defect IoU, share of defective images found, share
        of normal images flagged (mean and std over the folds). The labelled images are
        the ranking's clearest defects first, so that estimate is for images like them;
        with a random audit (``query(audit=N)``) labelled, a second estimate weighs each
        image by the pool images it stands for
        (:func:`sid4ds.session.audit.audit_estimate_weights`): the estimate for the pool.
        :meth:`predict` and ``export(format="model")`` use the model; the report shows
        its curves. Training takes ``n_folds + 1`` fits.

        Parameters
        ----------
        device : str, default="auto"
            Where to train.
        verbose : int, default=0
            Progress messages and bars (on stderr).

        Returns
        -------
        summary : dict
            ``round`` (the round the model is trained for), ``threshold``, ``n_steps``,
            ``n_folds``, ``defect_ratio``, ``estimate`` (``iou``, ``detected``,
            ``false_alarms``, each ``{"mean", "std"}``), ``weighted_estimate`` (the same
            for the pool, weighted by the random audit of round ``audit_round``; None
            without an audit), ``audit_round``, ``n_training``, ``n_fake_normals``,
            ``settings`` and ``trained`` (False when the final model was already trained
            on every label with these settings).

        Raises
        ------
        SessionError
            With fewer than two defective labelled images or no normal image.
        """
        return train_final(self._store, device=device, verbose=verbose)

    def final_model(self, device: Any = "auto") -> SegmentationLearner:
        """The final model of :meth:`train`, fitted, with its cross-validated threshold.

        Parameters
        ----------
        device : str, default="auto"
            Where the network goes.

        Returns
        -------
        model : SegmentationLearner

        Raises
        ------
        SessionError
            Before :meth:`train`.
        """
        return session_final_model(self._store, device)

    def cross_validation(self) -> CrossValidation | None:
        """The final model's cross-validation (estimate and curves), or None before
        :meth:`train`."""
        return cross_validation(self._store)

    def segmenter(self, device: Any = "auto") -> SegmentationLearner:
        """The session's newest segmentation learner S of the rounds, fitted.

        Parameters
        ----------
        device : str, default="auto"
            Where the network goes.

        Returns
        -------
        segmenter : SegmentationLearner
            Its ``predict`` / ``predict_proba`` take images preprocessed as the session's
            (see :meth:`predict` to read image files that way).

        Raises
        ------
        SessionError
            Before the first iterative round (no S yet).
        """
        return session_segmenter(self._store, device)

    def predict(
        self,
        images: Any,
        out: str | os.PathLike[str],
        *,
        threshold: float | None = None,
        device: Any = "auto",
        overwrite: bool = False,
        skip_unreadable: bool = False,
    ) -> Path:
        """The final model's defect masks and scores for new images (``sid4ds predict``).

        The final model of :meth:`train` at its cross-validated threshold (before
        :meth:`train`, the S of the rounds, with a warning). The images are read as
        ``init`` read the pool (the session's resizing, tiling and colour mode), and the
        model's probabilities are put back at each image's own size (tiles joined, averaged
        where they overlap; resized bilinearly) before the threshold. Writes one
        ``OUT/masks/NAME.png`` (0 / 255) per image, at its size, and ``OUT/scores.csv``:
        ``name``, ``defect_score`` (the largest defect probability in the image),
        ``defect_pixels``, ``defective`` (1 when a pixel reaches the threshold), ``mask``,
        ``source``, ``height`` and ``width``.

        Parameters
        ----------
        images : str or path-like, or array-like, np.memmap, sequence of paths or Dataset
            New images, as :meth:`create` takes them.
        out : str or path-like
            Output folder; new or empty unless ``overwrite``.
        threshold : float, optional
            Probability at or above which a pixel is a defect; default the model's
            (the cross-validated one of the final model).
        device : str, default="auto"
            Where S runs.
        overwrite : bool, default=False
            Replace a non-empty ``out``.
        skip_unreadable : bool, default=False
            Skip unreadable image files with a warning.

        Returns
        -------
        out : pathlib.Path
        """
        return predict_images(self._store, images, out, threshold=threshold, device=device,
                              overwrite=overwrite, skip_unreadable=skip_unreadable)

    def report(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        n_fake_normal_samples: int = 16,
        device: Any = "auto",
    ) -> Path:
        """Write an HTML page with PNG plots about the session (``sid4ds report``).

        The page (``index.html``, with its PNG plots beside it, linked by relative paths: it
        opens from disk, needs no server or network) shows a table of the rounds (stage,
        reason, images asked, labelled, defective, defect rate, fake normals), the share of
        defective images found with its 95% confidence bound from the newest random audit
        (``status()["recall"]``: what it guarantees, what it assumes, what to do; before
        any audit, how to draw one), the defects
        found against the labels spent next to what random sampling at the session's
        expected defect ratio would find, the last round's score histogram with the K cut
        (lowest score asked for) and the V cut (highest fake-normal score), the images it
        asked for (the first 16) with S's defect-probability map and S's predicted region
        and, once labelled, the human mask outlined (in a cold start, before S exists, M's
        block-wise masked-reconstruction error instead), S's training curve (loss and
        learning rate against the step), a random sample of the fake normals to
        spot-check, with the command to label one that shows a defect (``sid4ds import
        SESSION --masks DIR --any``), and the final model of :meth:`train`: its estimate
        (defect IoU, defective images found, normal images flagged, mean ± std over the
        folds) and its cross-validated scores against the threshold and the training
        length, and where the pool's images came from (a table of the batches: ``init``,
        then each :meth:`add_images`, with when, from where, and how many of each are in
        the pool, labelled and defective). When most of the round's scores tie or sit in
        E_sdr's fallback band (S marks nothing), the page says so and the histogram and the
        fake-normal sample show what the ranking fell back on (G's error inside the
        fallback region, the cold-start E_msmr). Plots are drawn with matplotlib; only the
        images shown are read from the pool.

        Parameters
        ----------
        out : str or path-like, optional
            Output folder, replaced if it exists; default ``SESSION/report``.
        n_fake_normal_samples : int, default=16
            Fake normals to show (drawn with the session's seed).
        device : str, default="auto"
            Where to compute S's probability maps (or M's error maps in a cold start).

        Returns
        -------
        index : pathlib.Path
            The HTML file.
        """
        return write_session_report(self._store, out,
                                    n_fake_normal_samples=n_fake_normal_samples, device=device)
