"""The labelling session as users meet it: :class:`LabelingSession`, a facade.

Each public method is one ``sid4ds`` subcommand; the work is done by the modules of this
package through a :class:`~sid4ds.session.store.SessionStore`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.estimators.final_model import CrossValidation
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.session.add import add_images
from sid4ds.session.configure import configure_session
from sid4ds.session.deliver import (
    cross_validation,
    predict_images,
    session_segmenter,
    train_final,
)
from sid4ds.session.errors import SessionError
from sid4ds.session.export import export_session
from sid4ds.session.ingest import create_session
from sid4ds.session.labels import import_coco, import_label_studio, import_masks
from sid4ds.session.manifest import Manifest, RoundRecord
from sid4ds.session.prune import prune_pool
from sid4ds.session.query import run_query
from sid4ds.session.report import write_session_report
from sid4ds.session.status import session_status
from sid4ds.session.store import PoolView, SessionStore

__all__ = ["LabelingSession"]


class LabelingSession:
    """A SID4DS labelling campaign kept in a folder: pool, masks, models and rounds.

    Create one with :meth:`create`, open an existing one with :meth:`open`. Every method
    that changes the session takes the session's lock and re-reads its manifest first, so
    several ``LabelingSession`` objects (or processes) on one folder never overwrite each
    other's work; a second command while one runs raises :class:`SessionBusyError`.

    Parameters
    ----------
    path : str or path-like
        The session folder (use :meth:`open`, which also checks it).

    Attributes
    ----------
    path : pathlib.Path
        The session folder.
    manifest : dict
        The manifest as last read (settings, labels, rounds, models); re-read by every
        method.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.session import LabelingSession
    >>> workdir = Path(tempfile.mkdtemp())
    >>> X, masks = make_defect_images(n_samples=20, image_size=16, defect_ratio=0.2,
    ...                               random_state=0)
    >>> (workdir / "images").mkdir()
    >>> for index, image in enumerate(X):
    ...     Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(
    ...         workdir / "images" / f"part{index:02d}.png")
    >>> tiny = {"base_channels": 4, "depth": 2, "max_epochs": 1}
    >>> session = LabelingSession.create(
    ...     workdir / "session", workdir / "images", seed=0,
    ...     scorer_params={**tiny, "patch_size": 4, "n_blocks": 4}, segmenter_params=tiny)
    >>> record = session.query(n_label=4)
    >>> record["stage"], len(record["selected"]), len(record["fake_normals"])
    ('cold_start', 4, 4)
    >>> (workdir / "answers").mkdir()
    >>> for name in record["selected"]:
    ...     index = int(name[4:])
    ...     Image.fromarray(masks[index] * 255).save(workdir / "answers" / f"{name}.png")
    >>> summary = session.import_masks(workdir / "answers")
    >>> len(summary["added"]), session.status()["labeled"]
    (4, 4)
    >>> out = session.export(workdir / "mvtec", "png")  # good/, defect/, ground_truth/
    >>> len(list(out.glob("*/*.png")))  # the 4 labelled images, normal or defective
    4
    >>> import shutil
    >>> shutil.rmtree(workdir)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._store = SessionStore(Path(path))

    @property
    def path(self) -> Path:
        """The session folder."""
        return self._store.path

    @property
    def manifest(self) -> Manifest:
        """The manifest as last read (settings, labels, rounds, models)."""
        return self._store.manifest

    # ------------------------------------------------------------------ creating, opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        images: Any,
        masks: str | os.PathLike[str] | None = None,
        *,
        image_size: int | tuple[int, int] | None = None,
        tile: int | tuple[int, int] | None = None,
        mode: str | None = None,
        mask_suffix: str = "",
        skip_unreadable: bool = False,
        names: Sequence[str] | None = None,
        defect_ratio: float = 0.05,
        seed: int = 0,
        scorer_params: dict[str, Any] | None = None,
        segmenter_params: dict[str, Any] | None = None,
        guided_epochs: int | None = None,
        region: str = "adaptive",
        final_params: dict[str, Any] | None = None,
    ) -> LabelingSession:
        """Create a session folder from images (``sid4ds init``).

        The images are read once, one at a time (resized or tiled as asked), and written
        into the session's ``pool_images.npy``, so later rounds do not depend on the images
        staying where they are, and a pool larger than memory works: the session reads it
        memory-mapped. The folder is written under a temporary name and renamed when
        complete.

        Parameters
        ----------
        path : str or path-like
            The new session folder; must not exist (or be empty).
        images : str or path-like, or array-like, np.memmap, sequence of paths or Dataset
            A folder of images (.png, .jpg, .bmp, .tif; hidden files ignored), sorted by
            name; or the images themselves, as anything :class:`~sid4ds.ImagePool` reads:
            an array or ``np.memmap`` of shape (n_samples, n_channels, height, width) or
            (n_samples, height, width), a sequence of image file paths, or a map-style
            ``torch.utils.data.Dataset``. They are read in chunks.
        masks : str or path-like, optional
            Folder of masks that already exist, matched to images by name (the file name
            without extension, after removing ``mask_suffix``). Their images count as
            labelled. Each mask must be binary (0 = normal, one non-zero value = defect)
            and have its image's size before resizing or tiling.
        image_size : int or (height, width), optional
            Resize every image (and mask) to this size. Needed when the images differ in
            size, unless ``tile`` is given.
        tile : int or (height, width), optional
            Cut every image (and mask) into tiles of this size; tile ``k`` of image ``a``
            is named ``a_t<k>``.
        mode : {"L", "RGB"}, optional
            Grey-scale or colour images. Default: ``"L"`` for image files; for arrays and
            Datasets, what their channels say (1 = ``"L"``, 3 = ``"RGB"``).
        mask_suffix : str, default=""
            Ending of mask names to remove before matching, e.g. ``"_mask"``.
        skip_unreadable : bool, default=False
            Skip unreadable image files with a warning instead of refusing the folder.
        names : sequence of str, optional
            One name per image when ``images`` is not a folder (used for mask files, lists
            and exports). Default: the file names without extension for paths,
            ``image_000000``, ``image_000001``, ... otherwise.
        defect_ratio : float, default=0.05
            Expected share of defective images; sets the number of fake normals V when a
            query asks for ``n_normal="auto"``.
        seed : int, default=0
            Seeds every model; the same images, settings and seed give the same rounds.
        scorer_params : dict, optional
            Parameters of :class:`~sid4ds.ReconstructionScorer` (M and G), e.g.
            ``{"max_epochs": 12, "base_channels": 16, "depth": 3}``; defaults are the
            estimator's.
        segmenter_params : dict, optional
            Parameters of :class:`~sid4ds.SegmentationLearner` (S).
        guided_epochs : int, optional
            Epochs of the label-guided learner G; defaults to M's ``max_epochs``.
        region : {"adaptive", "threshold"}, default="adaptive"
            How S's probabilities become E_sdr's regions, as in :func:`sid4ds.run_sid4ds`.
        final_params : dict, optional
            Settings of the final model that :meth:`train` makes
            (:func:`sid4ds.estimators.final_model.check_final_settings`: ``n_folds``,
            ``n_checkpoints``, ``fake_normals``, ``start`` and parameters of S that differ
            from the S of the rounds', e.g. ``{"max_steps": 2000}``).

        Returns
        -------
        session : LabelingSession

        Raises
        ------
        SessionError
            If the folder exists, an image or mask is unreadable, masks have no image or
            are not binary, images differ in size without ``image_size``/``tile``, two
            files share a name, the image folder is empty, ``names`` do not fit, or the
            images do not fit the networks; the message names the file and what to do.
        """
        return cls(create_session(path, images, masks, {
            "image_size": image_size, "tile": tile, "mode": mode, "mask_suffix": mask_suffix,
            "skip_unreadable": skip_unreadable, "names": names, "defect_ratio": defect_ratio,
            "seed": seed, "scorer_params": scorer_params,
            "segmenter_params": segmenter_params, "guided_epochs": guided_epochs,
            "region": region, "final_params": final_params}))

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> LabelingSession:
        """Open an existing session folder, checking its format version.

        Parameters
        ----------
        path : str or path-like
            The session folder.

        Returns
        -------
        session : LabelingSession

        Raises
        ------
        SessionError
            If the folder does not exist, is not a session, or was written by a newer
            sid4ds (format version above :data:`FORMAT_VERSION`).
        """
        return cls(path)

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

    def query(
        self,
        n_label: int | None = None,
        n_normal: int | str = "auto",
        *,
        device: Any = "auto",
        verbose: int = 0,
        skip_missing: bool = False,
        audit: int = 0,
        target_recall: float = 0.95,
    ) -> RoundRecord:
        """Run one round (``sid4ds query``): train, rank the unlabelled pool, write the lists.

        The first round trains the self-supervised reconstruction learner M on the whole
        pool and ranks by E_msmr. Once labels exist (with at least one defective and one
        normal image among the labelled images and the last round's fake normals), a round
        trains the segmentation learner S (from its previous weights after the first time)
        and, once, the label-guided learner G (starting from M's weights) on the labelled
        images plus the previous round's fake normals, and ranks by E_sdr inside S's
        predicted defects, as :func:`sid4ds.run_sid4ds` does.

        Scores are kept per image, for the models that computed them: a query with no new
        label since the last one (after :meth:`add_images`, say, with ``skip_missing``)
        keeps S and G as they are and scores only the images added since; after new labels
        S changes and every image is scored again.

        Files written to ``rounds/NNN/``: ``to_label.csv`` and ``to_label.json`` (rank,
        name, score, the image file, the pre-annotation file, the source file, the batch
        the image came with), ``fake_normals.csv``, ``scores.csv`` (every ranked image:
        name, score, rank, role, batch), ``images/NAME.png`` (the images to label, as the
        session sees them) and ``preannotations/NAME.png`` (S's predicted masks, from the
        second round on).

        Parameters
        ----------
        n_label : int, optional
            K, images to label this round; default 10% of the pool (at least 1).
        n_normal : int or "auto", default="auto"
            V, fake normals (see :func:`sid4ds.resolve_n_normal`); 0 turns them off.
        device : str, default="auto"
            Where to train and score (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``).
        verbose : int, default=0
            Print the steps and show progress bars (on stderr).
        skip_missing : bool, default=False
            Start a new round although the last one still waits for masks; the images
            without a mask go back to the pool.
        audit : int, default=0
            Also draw this many images uniformly at random from the images without a label
            that the ranked batch left (fake normals included), with the session's seed and
            the round's number: a random audit, from which :meth:`status` bounds the share
            of defective images found (:mod:`sid4ds.stopping`). They are listed apart
            (``audit`` of the record, ``audit.csv``, role ``audit`` in ``scores.csv``),
            their images are in ``images/`` with the ranked ones, and their masks are
            imported like any other (the next round waits for them too).
        target_recall : float, default=0.95
            In (0, 1): the recall the record's ``audit_needed`` is for.

        Returns
        -------
        record : dict
            The round: ``round``, ``stage`` (``"cold_start"`` or ``"iterative"``),
            ``score`` (``"E_msmr"`` or ``"E_sdr"``), ``selected`` (names, best first),
            ``scores``, ``fake_normals`` (names), ``fake_normal_scores``, ``folder``,
            ``audit`` (names, in the order drawn; empty without one), ``target_recall`` and
            ``audit_needed`` (the least audit that can certify ``target_recall`` at 95%
            confidence, :func:`sid4ds.stopping.audit_size_needed`: that many images if it
            finds no defective one).

        Raises
        ------
        SessionError
            If the last round still waits for masks (and not ``skip_missing``), or every
            image is labelled. :class:`SessionBusyError` if another command runs.
        ValueError
            If ``audit`` is negative or larger than the images without a label less the
            ranked batch, or ``target_recall`` is not in (0, 1).
        """
        return run_query(self._store, n_label, n_normal, device=device, verbose=verbose,
                         skip_missing=skip_missing, audit=audit, target_recall=target_recall)

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

    def import_masks(
        self,
        folder: str | os.PathLike[str],
        *,
        mask_suffix: str = "",
        replace: bool = False,
        any_image: bool = False,
    ) -> dict[str, list[str]]:
        """Take the human's masks back (``sid4ds import --masks``).

        Mask files are matched to images by file name without extension (after removing
        ``mask_suffix``). Images a round asked for, or that are already labelled, are
        accepted, and with ``any_image`` every pool image (e.g. a fake normal the report
        showed you a defect in: its mask replaces the all-zero mask it was trained with).
        Every file is checked first; if any is wrong nothing is imported. The masks are
        copied into the session before the manifest marks them labelled. A
        :class:`SessionWarning` counts the imported defective masks of images that were
        fake normals of an earlier round.

        Parameters
        ----------
        folder : str or path-like
            Folder of mask files (PNG recommended): 0 = normal, one non-zero value = defect,
            the size of the image in ``rounds/NNN/images/``. An all-black mask says the
            image is normal.
        mask_suffix : str, default=""
            Ending of the mask names to remove before matching, e.g. ``"_mask"``.
        replace : bool, default=False
            Replace the mask of an already labelled image with a different one (without
            it that is an error; the same mask again is ignored).
        any_image : bool, default=False
            Also accept masks of images no round asked for.

        Returns
        -------
        summary : dict
            ``added``, ``replaced`` and ``unchanged`` image names, and
            ``defective_fake_normals`` (those added or replaced that were fake normals).

        Raises
        ------
        SessionError
            Naming every bad file: unreadable, not binary, wrong size, no such image, not
            asked for, two files for one image, or a different mask for a labelled image
            without ``replace``.
        """
        return import_masks(self._store, folder, mask_suffix=mask_suffix, replace=replace,
                            any_image=any_image)

    def import_label_studio(
        self,
        export: str | os.PathLike[str],
        *,
        replace: bool = False,
        any_image: bool = False,
    ) -> dict[str, list[str]]:
        """Take masks back from a Label Studio JSON export (``sid4ds import --label-studio``).

        Each task's image is found from ``data.sid4ds_name`` (set by
        :meth:`export` with ``format="label-studio"``) or else from the image file name in
        ``data.image`` (Label Studio's upload prefix ``1a2b3c4d-`` is removed). The last
        annotation that was not cancelled is used; its brush results (``brushlabels``,
        RLE format) are merged into one mask, and an annotation with no result marks a
        normal image. Tasks without annotations are skipped.

        Parameters
        ----------
        export : str or path-like
            The ``.json`` file exported from Label Studio ("JSON" export).
        replace, any_image : bool, default=False
            As in :meth:`import_masks`.

        Returns
        -------
        summary : dict
            ``added``, ``replaced``, ``unchanged`` and ``not_annotated`` names.
        """
        return import_label_studio(self._store, export, replace=replace, any_image=any_image)

    def import_coco(
        self,
        annotations: str | os.PathLike[str],
        *,
        replace: bool = False,
        any_image: bool = False,
    ) -> dict[str, list[str]]:
        """Take masks back from a COCO annotations file (``sid4ds import --coco``).

        The file is read with ``pycocotools.coco.COCO``: each image's annotations
        (polygons, compressed or uncompressed RLE, any category) are merged into one mask;
        an image listed without annotations is normal. Images are matched to the session by
        ``file_name`` without folder and extension, and must have the session's size, as
        ``export(format="coco")`` writes them.

        Parameters
        ----------
        annotations : str or path-like
            The COCO ``.json`` file.
        replace, any_image : bool, default=False
            As in :meth:`import_masks`.

        Returns
        -------
        summary : dict
            As :meth:`import_masks` returns it.
        """
        return import_coco(self._store, annotations, replace=replace, any_image=any_image)

    def export(
        self,
        out: str | os.PathLike[str] | None = None,
        format: str = "png",
        *,
        image_url_prefix: str = "images/",
        device: Any = "auto",
        overwrite: bool = False,
    ) -> Path:
        """Write the labelled masks in a format other tools read (``sid4ds export``).

        ``"png"`` (MVTec AD / anomalib ``Folder`` layout)::

            OUT/good/NAME.png                      labelled normal images
            OUT/defect/NAME.png                    labelled defective images
            OUT/ground_truth/defect/NAME_mask.png  their masks (0 / 255)

        ``"coco"``: ``OUT/annotations.json`` (one category ``defect``; one annotation per
        connected defect region, 8-connected, with a compressed RLE ``segmentation``
        written by ``pycocotools``, its ``area`` and ``bbox``, ``iscrowd`` 0; normal images
        have none; ``pycocotools.coco.COCO`` reads it) and ``OUT/images/NAME.png``.

        ``"label-studio"``: ``OUT/tasks.json`` (one task per labelled image, with its mask
        as a brush annotation, and one per image the last round still waits for, with the
        segmentation learner's predicted mask as a brush pre-annotation when one exists),
        ``OUT/images/NAME.png`` and ``OUT/label_config.xml``. Each task's ``data`` holds
        ``image`` (``image_url_prefix + NAME.png``) and ``sid4ds_name``.

        ``"model"``: the final model of :meth:`train` (before it, the S of the rounds, with
        a warning): ``OUT/segmenter.pt`` (its state, with its cross-validated threshold,
        which ``SegmentationLearner.load`` reads with ``weights_only=True``),
        ``OUT/unet_state_dict.pt`` (the bare network's weights, for
        :class:`sid4ds.nn.unet.UNet`) and ``OUT/segmenter.json`` (settings, threshold, the
        cross-validated estimate and the preprocessing of the session's images).

        Images are written as the session sees them (after resizing or tiling), so masks
        and images always match.

        Parameters
        ----------
        out : str or path-like, optional
            Output folder; it must not exist or be empty unless ``overwrite``. Default
            ``SESSION/exports/FORMAT``.
        format : {"png", "coco", "label-studio", "model"}, default="png"
        image_url_prefix : str, default="images/"
            Label Studio only: the prefix of ``data.image`` (e.g. the URL where the images
            are served, or ``/data/local-files/?d=...``).
        device : str, default="auto"
            Label Studio only: where S predicts the pre-annotations.
        overwrite : bool, default=False
            Replace ``out`` (or the default folder) when it is not empty.

        Returns
        -------
        out : pathlib.Path
            The folder written.
        """
        return export_session(self._store, out, format, image_url_prefix=image_url_prefix,
                              device=device, overwrite=overwrite)

    def configure(self, *, segmenter: dict[str, Any] | None = None,
                  final: dict[str, Any] | None = None) -> dict[str, Any]:
        """Change the settings of S and of the final model (``sid4ds configure``).

        The next :meth:`query` trains S with the new ``segmenter`` settings, the next
        :meth:`train` the final model with the new ``final`` ones. Once S is trained it
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

        Returns
        -------
        settings : dict
            ``changed`` (what changed, by part), ``segmenter`` and ``final`` (the settings
            now).

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
        >>> import shutil
        >>> shutil.rmtree(folder)
        """
        return configure_session(self._store, segmenter, final)

    # ------------------------------------------------------------------ the model
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
        of normal images flagged (mean and std over the folds). :meth:`predict` and
        ``export(format="model")`` use it; the report shows its curves. Training takes
        ``n_folds + 1`` fits.

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
            ``false_alarms``, each ``{"mean", "std"}``), ``n_training``,
            ``n_fake_normals``, ``settings`` and ``trained`` (False when the final model
            was already trained on every label with these settings).

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
        model = self._store.model("F", device)
        if model is None:
            raise SessionError(f"session {self.path} has no final model yet: run "
                               f"`sid4ds train {self.path}`")
        return model

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
