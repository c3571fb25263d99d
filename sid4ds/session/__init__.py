"""Labelling sessions: SID4DS rounds with a human labeller, kept safely on disk.

A :class:`LabelingSession` is a folder that holds everything one labelling campaign needs:
the image pool (as the networks see it), the masks the human has drawn, the trained models
and the record of every round. Each step is one method (and one ``sid4ds`` subcommand):

1. :meth:`LabelingSession.create` (``sid4ds init``) reads an image folder, and optionally a
   folder of masks that already exist (those images count as labelled).
   :meth:`LabelingSession.add_images` (``sid4ds add``) adds more images at any time (the
   next shift's), read the same way.
2. :meth:`LabelingSession.query` (``sid4ds query``) trains what the round needs (the
   self-supervised reconstruction learner M on the first round; the segmentation learner S
   and the label-guided reconstruction learner G once labels exist), ranks the unlabelled
   images and writes the round's list of images to label, the images themselves, the
   pre-annotations of S and the fake normals (Algorithm 1 of the SID4DS paper).
3. The human draws a mask for every listed image (all black = normal image) and
   :meth:`LabelingSession.import_masks` / :meth:`LabelingSession.import_label_studio`
   (``sid4ds import``) takes them back.
4. Repeat 2–3. :meth:`LabelingSession.status`, :meth:`LabelingSession.report` and
   :meth:`LabelingSession.export` (PNG folders, COCO, Label Studio) look at the result;
   :meth:`LabelingSession.prune` (``sid4ds prune``) moves the images the ranking puts at
   the bottom out of the pool, into an archive folder.

Rounds follow :func:`sid4ds.run_sid4ds`: with the same images, settings and seed, a session
whose human answers with the masks of an oracle selects the same images, round by round.

On-disk layout (format version 4)::

    SESSION/
        manifest.json             the format (4) and the state file; written once
        session.db                the manifest (SQLite): settings, seed, pool shards and
                                  batches, model index as JSON; one row per label and
                                  per round
        pool_images.npy           the images of init (n, C, H, W) float32, read lazily
        pool_meta.npz             their names, content keys, source files
        pool/NNNNNN.npy           the images of each add, and their .meta.npz
        masks/NAME.png            the human's masks, 0 = normal, 255 = defect
                                  (masks/vK/NAME.png: version K of a replaced mask)
        models/{M,S,G}_rNNN.pt    the estimator's state (get_state(): network, optimiser,
                                  RNG, parameters, fitted attributes) of round NNN
        scores/*.npz              scores per image (content key) of each model key (M's
                                  E_msmr; S and G's E_sdr), reused while the models stay
        rounds/NNN/               to_label.csv/.json, fake_normals.csv, scores.csv,
                                  audit.csv (with --audit N), images/NAME.png,
                                  preannotations/NAME.png
        report/                   written by report()
        exports/FORMAT/           written by export() unless told elsewhere
        session.lock              only while a command runs: its pid, host and command

Safety:

* Every file is written atomically (a temporary file, fsync, rename, fsync of the folder),
  or where nothing names it yet, in place and fsynced; the manifest is the only source of
  truth and is written last, in one SQLite transaction of what the command changed
  (``manifest.json`` replaced whole in sessions of format 3 and older), so a command killed
  at any point (SIGKILL included) leaves the session as it was after its last finished
  step. No command rewrites the whole state: its cost follows what it changes.
  A ``query`` saves each trained model before the manifest names it, so a killed query
  resumes from there and gives the same round as an uninterrupted one.
* Masks are copied into the session (and fsynced) before the manifest marks their images
  labelled; an image is labelled once (importing the same mask again changes nothing, a
  different mask needs ``replace=True``).
* Two commands on one session at once are refused: each takes ``session.lock``
  (``O_CREAT | O_EXCL``, with its pid inside). A lock whose process is gone is stale and is
  removed by the next command.
* The pool is read lazily and scored in chunks, so a session's memory does not grow with
  its pool (``init`` and ``add`` stream the images into their shard one at a time; ``add``
  never rewrites the shards already there). Sessions of format version 3 (one
  ``pool_images.npy``) are read as they are and become format 4 on their first ``add``;
  format version 1 (one compressed ``pool.npz``) is still read, in memory.
* Session files hold no pickles: weights are read with ``torch.load(weights_only=True)``,
  everything else is JSON, SQLite rows of JSON, text and numbers, PNG or npz read with
  ``allow_pickle=False``, so opening a session someone sent you cannot run their code.

Test hook: when the environment variable ``SID4DS_TEST_KILL_AT`` names one of
:data:`KILL_POINTS`, the process sends itself SIGKILL at that point. The tests use it to
check that killed commands leave a session the next command resumes.


The package, one concern per module: :mod:`~sid4ds.session.session` (the facade
:class:`LabelingSession`, made of three private parts: the pool, the labels, the models),
:mod:`~sid4ds.session.store` (the folder: manifest, pool, masks, models, scores),
:mod:`~sid4ds.session.shards` (the pool's shards),
:mod:`~sid4ds.session.manifest` (the typed manifest), :mod:`~sid4ds.session.state` (the
manifest in SQLite), :mod:`~sid4ds.session.storage`
(atomic files), :mod:`~sid4ds.session.lock`, :mod:`~sid4ds.session.models` (model settings
and states), :mod:`~sid4ds.session.ingest` (``init``), :mod:`~sid4ds.session.add`
(``add``), :mod:`~sid4ds.session.query` (``query``), :mod:`~sid4ds.session.prune`
(``prune``), :mod:`~sid4ds.session.labels`
(``import``), :mod:`~sid4ds.session.status`, :mod:`~sid4ds.session.export`,
:mod:`~sid4ds.session.report` and :mod:`~sid4ds.session.codecs` (COCO and Label Studio
mask codecs).
"""

from sid4ds.session.codecs import (
    brush_rle_to_mask,
    coco_rle_to_mask,
    mask_to_brush_rle,
    mask_to_coco_rle,
)
from sid4ds.session.errors import SessionBusyError, SessionError, SessionWarning
from sid4ds.session.lock import LOCK
from sid4ds.session.manifest import FORMAT_VERSION
from sid4ds.session.session import LabelingSession
from sid4ds.session.storage import KILL_POINTS

__all__ = [
    "FORMAT_VERSION",
    "KILL_POINTS",
    "LOCK",
    "LabelingSession",
    "SessionBusyError",
    "SessionError",
    "SessionWarning",
    "brush_rle_to_mask",
    "coco_rle_to_mask",
    "mask_to_brush_rle",
    "mask_to_coco_rle",
]
