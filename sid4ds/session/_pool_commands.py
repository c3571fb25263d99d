"""The pool's part of :class:`~sid4ds.session.session.LabelingSession` (a mixin).

What the session holds (its images' names, the pool, the masks), where it stands
(``sid4ds status``), and the commands that change the pool: ``sid4ds add`` and
``sid4ds prune``. Each method is a call of its command's module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from sid4ds.session.add import add_images
from sid4ds.session.prune import prune_pool
from sid4ds.session.status import session_progress, session_status
from sid4ds.session.store import PoolView, SessionStore

__all__ = ["PoolCommands"]


class PoolCommands:
    """The pool: what it holds, ``status``, ``add`` and ``prune`` (a part of
    ``LabelingSession``)."""

    _store: SessionStore

    # ------------------------------------------------------------------ what it holds
    @property
    def names(self) -> list[str]:
        """Names of all pool images, in pool order."""
        return list(self._store.pool_index().names)

    @property
    def labeled_names(self) -> list[str]:
        """Labelled images in labelling order (unasked labels first, then round by round)."""
        return self._store.labeled_names()

    def pool(self) -> PoolView:
        """The pool as the networks see it: memory-mapped images, names, keys, sources.

        Returns
        -------
        pool : PoolView
            ``images`` of shape (n_images, n_channels, height, width), float32, read-only;
            ``names``, ``keys``, ``sources``, ``index`` (row of each name).
        """
        return self._store.pool()

    def mask(self, name: str) -> np.ndarray:
        """The stored mask of a labelled image, (height, width) uint8 in {0, 1}.

        Parameters
        ----------
        name : str
            The image's name in the session (as in ``to_label.csv``).

        Returns
        -------
        mask : ndarray of shape (height, width), uint8

        Raises
        ------
        KeyError
            If ``name`` is not labelled.
        SessionError
            If its mask file is missing or was changed.
        """
        return self._store.load_mask(name)

    def status(self, *, target_recall: float = 0.95) -> dict[str, Any]:
        """Where the session stands (``sid4ds status``); reads only, takes no lock.

        Returns
        -------
        status : dict
            ``path``, ``format_version``, ``n_images``, ``image_shape`` (channels, height,
            width), ``n_rounds``; the images by state, which add up to ``n_images``:
            ``labeled`` (with a mask), ``n_waiting`` (asked for by the last round, no mask
            yet; their names in ``waiting``), ``fake_normals`` (the last round's, trained
            on as normal in the next round) and ``unlabeled`` (the rest); ``defective``
            (labelled images with a defect), ``rounds`` (per round: ``round``, ``stage``,
            ``reason``, ``asked`` (the ranked batch), ``labeled``, ``defective``,
            ``defect_rate`` (of the ranked batch's labels), ``fake_normals``, ``audit``,
            ``audit_labeled`` and ``audit_defective`` (the round's random audit)),
            ``recall`` (the share of
            defective images labelled, with a one-sided 95% confidence bound from the
            newest random audit, see :func:`sid4ds.session.audit.session_recall`:
            ``bound``, the :class:`~sid4ds.stopping.RecallBound`'s fields or None before
            the first audit, ``certified``, ``defects_to_find``, ``audit_needed``,
            ``statement`` and ``advice`` in plain words), ``initially_labeled``,
            ``batches`` (where the pool's images came from: per
            batch, ``init`` then each :meth:`add_images`, its ``command``, ``time``,
            ``source``, ``n_added`` and ``n_skipped``, and now ``in_pool``, ``labeled``
            and ``defective``; ``drift``, the drift check's numbers, and ``drift_words``,
            :func:`sid4ds.session.status.drift_words`), ``drift`` (the words of each
            drifted batch), ``lock`` (the command holding the lock, or None),
            ``running`` (a command runs now), ``next`` (what to do next) and
            ``final_model`` (None before :meth:`train`; else what :meth:`train` returned,
            with ``labels_not_seen``: labels imported since).

        Parameters
        ----------
        target_recall : float, default=0.95
            In (0, 1): the recall ``recall`` says is certified or not, and how many audit
            labels it needs.
        """
        return session_status(self._store, target_recall=target_recall)

    def progress(self) -> dict[str, Any]:
        """How far the labelling is and the next step, read at a cost that does not grow
        with the labels (what ``sid4ds import`` prints); :meth:`status` has the rest.

        Returns
        -------
        progress : dict
            ``n_images``, ``labeled``, ``defective``, ``waiting`` (the names the last
            round asked for that have no mask yet), ``lock``, ``running`` and ``next``,
            as in :meth:`status`.

        Examples
        --------
        >>> import tempfile
        >>> from sid4ds import LabelingSession
        >>> from sid4ds.datasets import make_defect_images
        >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
        >>> session = LabelingSession.create(tempfile.mkdtemp() + "/s", X)
        >>> progress = session.progress()
        >>> progress["labeled"], progress["n_images"], progress["next"].startswith("`sid4ds query")
        (0, 8, True)
        """
        return session_progress(self._store)

    # ------------------------------------------------------------------ commands
    def add_images(
        self,
        images: Any,
        masks: str | os.PathLike[str] | None = None,
        *,
        mask_suffix: str = "",
        skip_unreadable: bool = False,
        names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Add images to the pool (``sid4ds add``): the next shift's images, say.

        The images are read as :meth:`create` read the pool (the session's resizing,
        tiling and colour mode) and written as one new batch; the images already in the
        pool are never rewritten. An image whose content is already in the pool, or whose
        name the pool already uses, is left out and named in the result. Masks given with
        the images are checked as :meth:`create` checks them, and their images count as
        labelled. A folder written by :meth:`prune` (``apply=True``) is read back as its
        images were in the pool. ``add`` is atomic: a killed ``add`` leaves the pool as it
        was. A session of format 3 or older becomes format 4 (shards) on its first add.

        The next :meth:`query` ranks the new images with the rest; without new labels in
        between, the models stay as they are and only the new images are scored.

        Once M is trained (after the first query), the new batch is checked for drift
        (:func:`sid4ds.ranking.drift.check_drift`: M's mean reconstruction error of the batch
        against the pool's). A batch that does not look like the pool is said so in
        ``summary["drift"]["message"]`` and kept in the batch's record; the next
        :meth:`query` applies the round engine's drift rule to it once (the quarter of it
        M reconstructs best trains S as normal images, and none of it becomes a fake
        normal: ``docs/production_line.md``).

        Parameters
        ----------
        images : str or path-like, or array-like, np.memmap, sequence of paths or Dataset
            As :meth:`create` takes them; or a folder written by :meth:`prune`.
        masks : str or path-like, optional
            Folder of masks of some of the new images, matched by name as in :meth:`create`.
        mask_suffix : str, default=""
            Ending of mask names to remove before matching, e.g. ``"_mask"``.
        skip_unreadable : bool, default=False
            Skip unreadable image files with a warning instead of refusing them all.
        names : sequence of str, optional
            One name per image when ``images`` is not a folder. Default: the file names
            for paths, ``b<batch>_000000``, ... for arrays.

        Returns
        -------
        summary : dict
            ``batch`` (its number; None when nothing was added), ``source``, ``added`` and
            ``labeled`` (names), ``same_content`` (each left-out image's name and the name
            of the image with its content), ``name_taken`` (names left out because the pool
            uses them), ``n_images`` (the pool's size now) and ``drift`` (None before M
            is trained or when nothing was added; else the drift check's numbers,
            :meth:`sid4ds.ranking.drift.DriftReport.as_dict`, with ``drifted`` and ``message``).

        Raises
        ------
        SessionError
            If an image has another channel count than the session's, or another size
            when the session resizes nothing; if a file is unreadable (unless
            ``skip_unreadable``) or a mask has no image or is not binary; the message names
            the file. :class:`SessionBusyError` while another command (a query) runs.
        """
        return add_images(self._store, images, masks, mask_suffix=mask_suffix,
                          skip_unreadable=skip_unreadable, names=names)

    def prune(
        self,
        n: int | None = None,
        share: float | None = None,
        *,
        archive: str | os.PathLike[str] | None = None,
        apply: bool = False,
        list_file: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """The images the ranking puts at the bottom, and what keeping none of them risks
        (``sid4ds prune``); with ``apply``, move them out of the pool into ``archive``.

        The candidates are the images of the last round's ranking (its ``scores.csv``)
        still unlabelled, except the images that round asked for (ranked and audit) and its
        fake normals (the next round trains on them); images added since it are not ranked
        yet and stay.
        The bottom ``n`` of them (or ``share`` of them) are listed, lowest first, with an
        estimate of how many defective images they hold (see
        :func:`~sid4ds.session.prune.defect_estimate` for its bases and what each
        assumes). Nothing changes unless ``apply``: then each image is written to
        ``archive/NAME.png`` as the session sees it (listed, with where it came from and
        its rank, in ``archive/sid4ds_archive.csv``) and removed from the pool; sid4ds
        deletes no file of yours, and ``add_images(archive)`` brings them back. Applying is
        atomic: a killed prune leaves the pool as it was.

        Parameters
        ----------
        n : int, optional
            How many images to prune.
        share : float, optional
            Or which share of the candidates, in [0, 1]; default 0.5 when ``n`` is not
            given either.
        archive : str or path-like, optional
            The folder the images go to with ``apply``; outside the session (new, or one
            an earlier prune wrote).
        apply : bool, default=False
            Move the images; without it, a dry run.
        list_file : str or path-like, optional
            Also write the list (name, rank, score) to this CSV file.

        Returns
        -------
        result : dict
            ``names`` (lowest ranked first), ``ranks``, ``scores``, ``round`` and ``score``
            (the ranking used), ``n_ranked``, ``n_candidates``, ``kept_round_images`` (the
            last round's asked images and fake normals kept), ``not_ranked`` (images added
            since), ``estimate`` (``expected`` and ``upper`` defective images among
            ``names``, ``basis``, ``observed``, ``assumes``), ``applied``, ``archive`` and
            ``n_images`` (the pool's size now).

        Raises
        ------
        SessionError
            Before the first round; with ``apply`` but no ``archive``, or an archive inside
            the session or holding other files of the same names.
        """
        return prune_pool(self._store, n=n, share=share, archive=archive, apply=apply,
                          list_file=list_file)
