"""The labelling part of :class:`~sid4ds.session.session.LabelingSession` (a mixin).

A round (``sid4ds query``), the masks taken back (``sid4ds import``) and the labels
written for other tools (``sid4ds export``). Each method is a call of its command's module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sid4ds.session.export import export_session
from sid4ds.session.labels import import_coco, import_label_studio, import_masks
from sid4ds.session.manifest import RoundRecord
from sid4ds.session.query import run_query
from sid4ds.session.store import SessionStore

__all__ = ["LabelCommands"]


class LabelCommands:
    """Rounds and labels: ``query``, ``import`` and ``export`` (a part of
    ``LabelingSession``)."""

    _store: SessionStore

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
