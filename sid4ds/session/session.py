"""The labelling session as users meet it: :class:`LabelingSession`, a facade.

Each public method is one ``sid4ds`` subcommand; the work is done by the modules of this
package through a :class:`~sid4ds.session.store.SessionStore`. The methods come in three
parts, by concern (private mixins of this package): the pool (what it holds, ``status``,
``add``, ``prune``), the labels (``query``, ``import``, ``export``) and the models
(``configure``, ``train``, ``predict``, ``report``); this module composes them and
creates or opens the folder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sid4ds.session._label_commands import LabelCommands
from sid4ds.session._model_commands import ModelCommands
from sid4ds.session._pool_commands import PoolCommands
from sid4ds.session.ingest import create_session
from sid4ds.session.manifest import Manifest
from sid4ds.session.store import SessionStore

__all__ = ["LabelingSession"]


class LabelingSession(PoolCommands, LabelCommands, ModelCommands):
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
        """The manifest as last read (settings, labels, rounds, models), every label
        record read."""
        return self._store.whole_manifest()

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
        fusion: str | None = "rank",
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
        fusion : {"rank", None}, default="rank"
            The rounds' score after the cold start, as in :func:`sid4ds.run_sid4ds`: E_sdr
            fused with S's mean probability by rank, or E_sdr alone (None). Sessions made
            before it was a setting rank by E_sdr alone.
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
            "region": region, "fusion": fusion, "final_params": final_params}))

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
