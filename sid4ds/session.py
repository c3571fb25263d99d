"""Labelling sessions: SID4DS rounds with a human labeller, kept safely on disk.

A :class:`LabelingSession` is a folder that holds everything one labelling campaign needs:
the image pool (as the networks see it), the masks the human has drawn, the trained models
and the record of every round. Each step is one method (and one ``sid4ds`` subcommand):

1. :meth:`LabelingSession.create` (``sid4ds init``) reads an image folder, and optionally a
   folder of masks that already exist (those images count as labelled).
2. :meth:`LabelingSession.query` (``sid4ds query``) trains what the round needs (the
   self-supervised reconstruction learner M on the first round; the segmentation learner S
   and the label-guided reconstruction learner G once labels exist), ranks the unlabelled
   images and writes the round's list of images to label, the images themselves, the
   pre-annotations of S and the fake normals (Algorithm 1 of the SID4DS paper).
3. The human draws a mask for every listed image (all black = normal image) and
   :meth:`LabelingSession.import_masks` / :meth:`LabelingSession.import_label_studio`
   (``sid4ds import``) takes them back.
4. Repeat 2–3. :meth:`LabelingSession.status`, :meth:`LabelingSession.report` and
   :meth:`LabelingSession.export` (PNG folders, COCO, Label Studio) look at the result.

Rounds follow :func:`sid4ds.run_sid4ds`: with the same images, settings and seed, a session
whose human answers with the masks of an oracle selects the same images, round by round.

On-disk layout (format version 2)::

    SESSION/
        manifest.json             settings, seed, labels, rounds, model index (versioned JSON)
        pool_images.npy           images (n, C, H, W) float32, read memory-mapped
        pool_meta.npz             names, content keys, source files
        masks/NAME.png            the human's masks, 0 = normal, 255 = defect
                                  (masks/vK/NAME.png: version K of a replaced mask)
        models/{M,S,G}_rNNN.pt    torch state dicts (network and optimiser) of round NNN
        models/{M,S,G}_rNNN.json  estimator parameters and fitted attributes
        rounds/NNN/               to_label.csv/.json, fake_normals.csv, scores.csv,
                                  images/NAME.png, preannotations/NAME.png
        report/                   written by report()
        exports/FORMAT/           written by export() unless told elsewhere
        session.lock              only while a command runs: its pid, host and command

Safety:

* Every file is written atomically (a temporary file, fsync, rename, fsync of the folder);
  ``manifest.json`` is the only source of truth and is replaced last, so a command killed at
  any point (SIGKILL included) leaves the session as it was after its last finished step.
  A ``query`` saves each trained model before the manifest names it, so a killed query
  resumes from there and gives the same round as an uninterrupted one.
* Masks are copied into the session (and fsynced) before the manifest marks their images
  labelled; an image is labelled once (importing the same mask again changes nothing, a
  different mask needs ``replace=True``).
* Two commands on one session at once are refused: each takes ``session.lock``
  (``O_CREAT | O_EXCL``, with its pid inside). A lock whose process is gone is stale and is
  removed by the next command.
* The pool is read memory-mapped and scored in chunks, so a session's memory does not grow
  with its pool (``init`` streams the images into ``pool_images.npy`` one at a time).
  Sessions of format version 1 (one compressed ``pool.npz``) are still read, in memory.
* Session files hold no pickles: weights are read with ``torch.load(weights_only=True)``,
  everything else is JSON, PNG or npz read with ``allow_pickle=False``, so opening a
  session someone sent you cannot run their code.

Test hook: when the environment variable ``SID4DS_TEST_KILL_AT`` names one of
:data:`KILL_POINTS`, the process sends itself SIGKILL at that point. The tests use it to
check that killed commands leave a session the next command resumes.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import datetime as _datetime
import hashlib
import html
import io
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from sid4ds._loaders import (
    IMAGE_EXTENSIONS,
    _check_size,
    _folder_pairs,
    _iter_pairs,
    _list_files,
    _pieces,
)
from sid4ds._validation import check_float, check_int
from sid4ds.active import resolve_n_normal
from sid4ds.pool import ImagePool, _is_path_sequence, as_pool, chunk_size_for
from sid4ds.strategies import content_keys, msmr_scores, rank_pool, sdr_scores

__all__ = [
    "FORMAT_VERSION",
    "KILL_POINTS",
    "LabelingSession",
    "SessionBusyError",
    "SessionError",
    "SessionWarning",
    "brush_rle_to_mask",
    "coco_rle_to_mask",
    "mask_to_brush_rle",
    "mask_to_coco_rle",
]

FORMAT_NAME = "sid4ds-session"
#: Version of the on-disk format this sid4ds writes and the newest it reads.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = "session.lock"
POOL_IMAGES = "pool_images.npy"
POOL_META = "pool_meta.npz"
POOL_V1 = "pool.npz"  # format version 1: images and metadata in one compressed file
# Bytes reserved for the .npy header of the pool, written once the image count is known.
NPY_HEADER_BYTES = 128
KILL_ENV = "SID4DS_TEST_KILL_AT"
#: Points where ``SID4DS_TEST_KILL_AT`` kills the process (a test hook).
KILL_POINTS = (
    "init:before-rename",
    "query:after-train-M",
    "query:after-train-S",
    "query:after-train-G",
    "query:before-commit",
    "import:after-first-mask",
    "import:before-commit",
)
EXPORT_FORMATS = ("png", "coco", "label-studio")
# Model settings the command line exposes, by estimator.
MODEL_KINDS = {"M": "scorer", "G": "scorer", "S": "segmenter"}


class SessionError(ValueError):
    """A labelling session cannot do what was asked; the message says what to do.

    Examples
    --------
    >>> from sid4ds.session import LabelingSession, SessionError
    >>> try:
    ...     LabelingSession.open("no-such-session-folder")
    ... except SessionError as error:
    ...     print(type(error).__name__)
    SessionError
    """


class SessionBusyError(SessionError):
    """Another command holds the session's lock.

    Raised instead of waiting, so two commands never change a session at once; the CLI
    exits with code 3. It is a :class:`SessionError`, so one ``except`` catches both.

    Examples
    --------
    >>> from sid4ds.session import SessionBusyError, SessionError
    >>> issubclass(SessionBusyError, SessionError)
    True
    """


class SessionWarning(UserWarning):
    """Something a session command noticed and handled (e.g. a stale lock it removed)."""


def _test_hook(point: str) -> None:
    """Kill this process at ``point`` when ``SID4DS_TEST_KILL_AT`` names it (tests only)."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


def _say(verbose: int, message: str) -> None:
    if verbose:
        print(f"[sid4ds] {message}", file=sys.stderr, flush=True)


# ============================================================================ atomic files
def _fsync_folder(folder: Path) -> None:
    """Make a rename or creation inside ``folder`` durable (a no-op where unsupported)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Write ``path`` through a temporary file: fsync, rename over ``path``, fsync folder.

    Readers see the old file or the new one, never a partial one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)


def _write_bytes(path: Path, data: bytes) -> None:
    with _atomic_file(path) as handle:
        handle.write(data)


def _write_json(path: Path, value: Any) -> None:
    _write_bytes(path, (json.dumps(value, indent=1, sort_keys=False) + "\n").encode("utf-8"))


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _replace_folder(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` folder to ``target``, replacing what was there."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    _fsync_folder(target.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - platform specific
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie: killed, not yet reaped
    return True


def _process_start(pid: int) -> str | None:
    """The start time of a process (Linux), to tell a reused pid from the lock's owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# ============================================================================ lock
class _SessionLock:
    """``session.lock``: created with O_CREAT | O_EXCL, holds the owner's pid and command."""

    def __init__(self, root: Path, command: str) -> None:
        self.path = root / LOCK
        self.command = command
        self.owned = False

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def is_stale(holder: dict[str, Any] | None, path: Path) -> bool:
        if holder is None:  # unreadable: stale unless it is being written right now
            try:
                return time.time() - path.stat().st_mtime > 30
            except OSError:
                return True
        if holder.get("host") != socket.gethostname():
            return False  # cannot see the process: let the user decide
        pid = int(holder.get("pid", -1))
        if not _pid_alive(pid):
            return True
        started = holder.get("process_start")
        return started is not None and _process_start(pid) not in (None, started)

    def __enter__(self) -> _SessionLock:
        info = {
            "pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
            "started": _now(), "process_start": _process_start(os.getpid()),
        }
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.read(self.path)
                if not self.is_stale(holder, self.path):
                    raise SessionBusyError(self._busy_message(holder)) from None
                if self.read(self.path) == holder:  # still the same stale lock
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    warnings.warn(
                        f"removed a stale lock of {self.path.parent}: "
                        + (f"`sid4ds {holder.get('command')}` (pid {holder.get('pid')}, "
                           f"started {holder.get('started')}) ended without finishing; the "
                           f"session is as it was after its last finished step"
                           if holder else "an unreadable lock file"),
                        SessionWarning, stacklevel=3)
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(info, handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.owned = True
            return self
        raise SessionBusyError(self._busy_message(self.read(self.path)))

    def _busy_message(self, holder: dict[str, Any] | None) -> str:
        who = (f"`sid4ds {holder.get('command')}` (pid {holder.get('pid')} on "
               f"{holder.get('host')}, started {holder.get('started')})" if holder
               else "another command")
        return (f"session {self.path.parent} is in use by {who}; wait for it to finish. If no "
                f"such command runs any more, delete {self.path}")

    def __exit__(self, *exc_info: Any) -> None:
        if self.owned:
            holder = self.read(self.path)
            if holder is not None and holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.owned = False


# ============================================================================ RLE codecs
def mask_to_coco_rle(mask: Any) -> dict[str, Any]:
    """Uncompressed COCO run-length encoding of a binary mask.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Non-zero pixels are the object.

    Returns
    -------
    rle : dict
        ``{"size": [height, width], "counts": [...]}``: run lengths over the pixels in
        column-major order, starting with a (possibly empty) run of background.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.session import mask_to_coco_rle
    >>> mask_to_coco_rle(np.array([[0, 1], [0, 1]]))
    {'size': [2, 2], 'counts': [2, 2]}
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must have shape (height, width); got shape {array.shape}")
    flat = (array.T.ravel() != 0).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"size": [int(array.shape[0]), int(array.shape[1])], "counts": counts}


def coco_rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an uncompressed COCO RLE (see :func:`mask_to_coco_rle`).

    Parameters
    ----------
    rle : dict
        ``{"size": [height, width], "counts": [int, ...]}``.

    Returns
    -------
    mask : ndarray of shape (height, width), uint8 in {0, 1}

    Examples
    --------
    >>> from sid4ds.session import coco_rle_to_mask
    >>> coco_rle_to_mask({"size": [2, 2], "counts": [2, 2]}).tolist()
    [[0, 1], [0, 1]]
    """
    height, width = (int(side) for side in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != height * width or (counts < 0).any():
        raise ValueError(
            f"COCO RLE counts sum to {int(counts.sum())} but size {height}x{width} has "
            f"{height * width} pixels"
        )
    values = np.arange(len(counts)) % 2
    flat = np.repeat(values, counts).astype(np.uint8)
    return flat.reshape(width, height).T.copy()


_BRUSH_RUN_BITS = (3, 4, 8, 16)  # bit widths of the four run-length size classes


def mask_to_brush_rle(mask: Any) -> list[int]:
    """Label Studio brush RLE of a binary mask (``"format": "rle"`` brush results).

    Label Studio stores a brush as an RGBA image of the picture's size, flattened row by
    row, in a bit-packed run-length code: a 32-bit value count, a 5-bit word size minus one,
    four 4-bit run-length widths minus one, then runs (1 repeat bit, 2 bits choosing the
    width, the run length minus one, the value). This encoder writes repeat runs only,
    defect pixels as 255 in all four channels.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Non-zero pixels are the brush.

    Returns
    -------
    rle : list of int
        The bytes, as Label Studio's ``value.rle`` expects.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.session import brush_rle_to_mask, mask_to_brush_rle
    >>> mask = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    >>> bool((brush_rle_to_mask(mask_to_brush_rle(mask), 2, 3) == mask).all())
    True
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must have shape (height, width); got shape {array.shape}")
    values = np.repeat((array.ravel() != 0).astype(np.uint8) * 255, 4)
    pieces = [format(values.size, "032b"), format(8 - 1, "05b")]
    pieces += [format(width - 1, "04b") for width in _BRUSH_RUN_BITS]
    changes = np.flatnonzero(np.diff(values)) + 1
    bounds = np.concatenate([[0], changes, [values.size]])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        value, remaining = int(values[start]), int(end - start)
        while remaining > 0:
            length = min(remaining, 1 << _BRUSH_RUN_BITS[-1])
            size_class = next(index for index, bits in enumerate(_BRUSH_RUN_BITS)
                              if length - 1 < 1 << bits)
            pieces += ["1", format(size_class, "02b"),
                       format(length - 1, f"0{_BRUSH_RUN_BITS[size_class]}b"),
                       format(value, "08b")]
            remaining -= length
    bits = "".join(pieces)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def brush_rle_to_mask(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """Decode a Label Studio brush RLE into a binary mask (the alpha channel > 0).

    Parameters
    ----------
    rle : sequence of int
        ``value.rle`` of a Label Studio brush result.
    height, width : int
        ``original_height`` and ``original_width`` of the result.

    Returns
    -------
    mask : ndarray of shape (height, width), uint8 in {0, 1}

    Examples
    --------
    >>> from sid4ds.session import brush_rle_to_mask, mask_to_brush_rle
    >>> brush_rle_to_mask(mask_to_brush_rle([[1, 0, 0]]), 1, 3).tolist()
    [[1, 0, 0]]
    """
    try:
        data = bytes(int(byte) for byte in rle)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a brush RLE must be a list of bytes (0..255): {error}") from None
    bits = "".join(format(byte, "08b") for byte in data)
    position = 0

    def read(n_bits: int) -> int:
        nonlocal position
        if position + n_bits > len(bits):
            raise ValueError("the brush RLE ends early: it is truncated or not an RLE")
        value = int(bits[position : position + n_bits], 2) if n_bits else 0
        position += n_bits
        return value

    n_values = read(32)
    word_bits = read(5) + 1
    run_bits = [read(4) + 1 for _ in range(4)]
    if n_values != height * width * 4:
        raise ValueError(
            f"the brush RLE holds {n_values} values but a {height}x{width} RGBA image has "
            f"{height * width * 4}; original_height/original_width do not match it"
        )
    values = np.zeros(n_values, dtype=np.uint32)
    index = 0
    while index < n_values:
        repeat = read(1)
        end = min(n_values, index + 1 + read(run_bits[read(2)]))
        if repeat:
            values[index:end] = read(word_bits)
        else:
            for position_in_run in range(index, end):
                values[position_in_run] = read(word_bits)
        index = end
    return (values.reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8)


# ============================================================================ pixels
def _to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)


class _NpyWriter:
    """Append images to an ``.npy`` file whose header is written once their count is known.

    Only one chunk is held at a time. :data:`NPY_HEADER_BYTES` are reserved for the header
    (NPY format 1.0, padded with spaces), so ``np.load(path, mmap_mode="r")`` reads the
    result like any ``.npy`` file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.handle.write(b"\0" * NPY_HEADER_BYTES)
        self.shape: tuple[int, ...] | None = None
        self.count = 0

    def append(self, image: np.ndarray) -> None:
        """Append one float32 image of shape (n_channels, height, width)."""
        if self.shape is None:
            self.shape = tuple(int(side) for side in image.shape)
        elif tuple(image.shape) != self.shape:  # the readers check sizes: a safety net
            raise SessionError(f"image {self.count} has shape {tuple(image.shape)}, not "
                               f"{self.shape} like the first; resize them to one size")
        self.handle.write(np.ascontiguousarray(image, dtype="<f4").tobytes())
        self.count += 1

    def finish(self) -> tuple[int, ...]:
        """Write the header, fsync and close; return the shape (n, C, H, W)."""
        if self.shape is None:
            self.handle.close()
            raise SessionError("no image to write")
        shape = (self.count, *self.shape)
        text = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode("latin1")
        magic = b"\x93NUMPY\x01\x00"
        length = NPY_HEADER_BYTES - len(magic) - 2
        header = magic + length.to_bytes(2, "little") + text.ljust(length - 1) + b"\n"
        self.handle.seek(0)
        self.handle.write(header)
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return shape


def _read_binary_mask(path: Path) -> np.ndarray:
    """Read a mask file; raise a SessionError naming it unless it holds two values at most."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
                values = np.asarray(image)
            else:
                values = np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise SessionError(
            f"cannot read mask file {path}: {error}; save it again as a PNG (0 = normal, "
            f"255 = defect)"
        ) from None
    levels = np.unique(values)
    nonzero = levels[levels != 0]
    if nonzero.size > 1:
        shown = ", ".join(str(level) for level in levels[:4])
        raise SessionError(
            f"mask file {path} is not binary: it has {levels.size} grey levels ({shown}"
            f"{', ...' if levels.size > 4 else ''}); save it with 0 for normal and one value "
            f"(e.g. 255) for defect pixels, as PNG (JPEG compression adds grey levels)"
        )
    return (values != 0).astype(np.uint8)


def _describe_shape(shape: Sequence[int]) -> str:
    return f"{shape[0]}x{shape[1]} (height x width)"


# ============================================================================ models
def _estimator_class(kind: str) -> type:
    from sid4ds.reconstruction import ReconstructionScorer
    from sid4ds.segmentation import SegmentationLearner

    return SegmentationLearner if MODEL_KINDS[kind] == "segmenter" else ReconstructionScorer


def _json_params(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    for runtime in ("device", "verbose"):
        params.pop(runtime, None)
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in params.items()}


def _params_from_json(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    known = _estimator_class(kind)().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SessionError(
            f"the session's settings for model {kind} have unknown parameters {unknown}; "
            f"it was written by another sid4ds version: use that version"
        )
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in params.items()}


def _cpu_tree(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _cpu_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_tree(item) for item in value)
    return value


_FITTED_ARRAYS = ("pixel_mean_", "pixel_std_")
_FITTED_VALUES = ("n_channels_in_", "fit_mode_", "best_epoch_", "history_")


def _save_model(root: Path, kind: str, round_index: int, estimator: Any) -> dict[str, Any]:
    """Save weights (torch state dicts) and JSON metadata; return the manifest entry."""
    import torch

    stem = f"models/{kind}_r{round_index:03d}"
    state = {"module": _cpu_tree(estimator.module_.state_dict()),
             "optimizer": None if estimator.optimizer_ is None
             else _cpu_tree(estimator.optimizer_.state_dict())}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights = buffer.getvalue()
    _write_bytes(root / f"{stem}.pt", weights)
    fitted: dict[str, Any] = {}
    for name in _FITTED_ARRAYS:
        if getattr(estimator, name, None) is not None:
            fitted[name] = np.asarray(getattr(estimator, name)).astype(float).tolist()
    for name in _FITTED_VALUES:
        if hasattr(estimator, name):
            fitted[name] = getattr(estimator, name)
    fitted["image_shape_"] = list(estimator.image_shape_)
    meta = {"class": type(estimator).__name__, "kind": kind, "round": round_index,
            "params": _json_params(estimator), "fitted": fitted,
            "rng_state": estimator._rng.bit_generator.state}
    meta_bytes = (json.dumps(meta) + "\n").encode()
    _write_bytes(root / f"{stem}.json", meta_bytes)
    return {"round": round_index, "weights": f"{stem}.pt", "meta": f"{stem}.json",
            "sha256": {"weights": _sha256(weights), "meta": _sha256(meta_bytes)}}


def _load_model(root: Path, kind: str, entry: dict[str, Any], device: Any) -> Any:
    """Rebuild an estimator from its JSON record and state dicts (no pickles involved)."""
    import torch

    from sid4ds._torch import resolve_device
    from sid4ds.nets import UNet

    paths = {part: root / entry[part] for part in ("weights", "meta")}
    for part, path in paths.items():
        if not path.is_file():
            raise SessionError(
                f"model file {path} of model {kind} is missing; the session folder is "
                f"incomplete: restore it from a copy"
            )
        if _file_sha256(path) != entry["sha256"][part]:
            raise SessionError(
                f"model file {path} of model {kind} was changed or damaged (checksum "
                f"mismatch); restore the session folder from a copy"
            )
    try:
        meta = json.loads(paths["meta"].read_text())
    except ValueError as error:
        raise SessionError(f"cannot read model file {paths['meta']}: {error}") from None
    cls = _estimator_class(kind)
    if meta.get("class") != cls.__name__:
        raise SessionError(f"model file {paths['meta']} holds a {meta.get('class')!r}, "
                           f"expected {cls.__name__}")
    estimator = cls(**_params_from_json(kind, meta["params"]))
    estimator.set_params(device=device)
    estimator.device_ = resolve_device(device)
    fitted = meta["fitted"]
    for name in _FITTED_ARRAYS:
        if name in fitted:
            setattr(estimator, name, np.asarray(fitted[name], dtype=np.float32))
    for name in _FITTED_VALUES:
        if name in fitted:
            setattr(estimator, name, fitted[name])
    estimator.image_shape_ = tuple(fitted["image_shape_"])
    try:
        # weights_only: tensors and plain containers only, never code from the file
        state = torch.load(paths["weights"], map_location="cpu", weights_only=True)
        with torch.random.fork_rng(devices=[]):  # building a module draws from torch's RNG
            module = UNet(**estimator._module_kwargs())
        module.load_state_dict(state["module"])
        estimator.module_ = module.to(estimator.device_).eval()
        estimator.optimizer_ = None
        if state.get("optimizer") is not None:
            estimator.optimizer_ = estimator._make_optimizer()
            estimator.optimizer_.load_state_dict(state["optimizer"])
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, KeyError...
        raise SessionError(
            f"cannot load model file {paths['weights']} of model {kind}: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}; "
            f"it holds no valid sid4ds weights (only tensors are read from it)"
        ) from None
    estimator._rng = np.random.default_rng()
    estimator._rng.bit_generator.state = meta["rng_state"]
    return estimator


# ============================================================================ drawing
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


_COLORMAP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                      [252, 255, 164]], dtype=np.float64)


def _heatmap(values: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) non-negative values -> (H, W, 3) uint8, 0 dark to ``scale`` bright yellow."""
    position = np.clip(values / max(scale, 1e-12), 0.0, 1.0) * (len(_COLORMAP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLORMAP) - 2)
    weight = (position - low)[..., None]
    colours = _COLORMAP[low] * (1 - weight) + _COLORMAP[low + 1] * weight
    return np.round(colours).astype(np.uint8)


def _thumbnail(pixels: np.ndarray, size: int = 96) -> Image.Image:
    image = Image.fromarray(pixels).convert("RGB")
    factor = max(1, size // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey/RGB uint8 image with ``mask`` pixels tinted red."""
    rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image.copy()
    rgb = rgb.astype(np.float64)
    red = np.array([255.0, 0.0, 0.0])
    rgb[mask > 0] = 0.45 * rgb[mask > 0] + 0.55 * red
    return np.round(rgb).astype(np.uint8)


def _draw_histogram(scores: np.ndarray, k_cut: float | None, v_cut: float | None,
                    title: str, n_label: int, n_normal: int) -> Image.Image:
    width, height, margin = 720, 380, 56
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        high = low + 1e-9
    counts, edges = np.histogram(scores, bins=min(40, max(5, len(scores) // 2)),
                                 range=(low, high))
    plot_w, plot_h = width - 2 * margin, height - 2 * margin

    def x_of(value: float) -> float:
        return margin + (value - low) / (high - low) * plot_w

    top = max(1, int(counts.max()))
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            draw.rectangle([x_of(left), height - margin - count / top * plot_h,
                            max(x_of(left) + 1, x_of(right) - 1), height - margin],
                           fill=(120, 120, 120))
    draw.line([margin, height - margin, width - margin, height - margin], fill="black")
    draw.line([margin, margin, margin, height - margin], fill="black")
    draw.text((margin, 12), title, fill="black", font=font)
    draw.text((margin, height - margin + 8), f"{low:.4g}", fill="black", font=font)
    draw.text((width - margin - 60, height - margin + 8), f"{high:.4g}", fill="black",
              font=font)
    draw.text((width // 2 - 20, height - margin + 24), "score", fill="black", font=font)
    draw.text((8, margin - 16), f"{top} images", fill="black", font=font)
    for cut, colour, label in ((k_cut, (200, 0, 0), f"K={n_label}: label at or above"),
                               (v_cut, (0, 70, 200), f"V={n_normal}: fake normal at or below")):
        if cut is not None:
            x = x_of(cut)
            draw.line([x, margin, x, height - margin], fill=colour, width=2)
            draw.text((min(x + 4, width - 230), margin + (0 if colour[0] else 16)), label,
                      fill=colour, font=font)
    return canvas


def _draw_bars(values: Sequence[int], labels: Sequence[str], title: str) -> Image.Image:
    width, height, margin = 720, 320, 56
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    top = max(1, max(values, default=1))
    slot = (width - 2 * margin) / max(1, len(values))
    draw.text((margin, 12), title, fill="black", font=font)
    draw.line([margin, height - margin, width - margin, height - margin], fill="black")
    for position, (value, label) in enumerate(zip(values, labels, strict=True)):
        left = margin + position * slot + slot * 0.15
        right = margin + (position + 1) * slot - slot * 0.15
        bar_top = height - margin - value / top * (height - 2 * margin - 20)
        draw.rectangle([left, bar_top, right, height - margin], fill=(200, 60, 40))
        draw.text((left, bar_top - 14), str(value), fill="black", font=font)
        draw.text((left, height - margin + 8), label, fill="black", font=font)
    return canvas


def _grid(tiles: Sequence[Image.Image], columns: int) -> Image.Image:
    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    tile_w = max(tile.width for tile in tiles) + 4
    tile_h = max(tile.height for tile in tiles) + 4
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (tile_w * min(columns, len(tiles)), tile_h * rows), "white")
    for index, tile in enumerate(tiles):
        canvas.paste(tile, ((index % columns) * tile_w + 2, (index // columns) * tile_h + 2))
    return canvas


def _image_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ============================================================================ the session
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
        self.path = Path(path)
        self.manifest = self._read_manifest()
        self._pool_cache: dict[str, Any] | None = None

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
        root = Path(path)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise SessionError(
                f"{root} already exists; choose a new session folder (or look at the "
                f"existing one with `sid4ds status {root}`)"
            )
        if mode not in (None, "L", "RGB"):
            raise SessionError(f"mode must be 'L' (grey-scale) or 'RGB'; got {mode!r}")
        defect_ratio = check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0,
                                   include_high=False)
        seed = check_int(seed, "seed", minimum=0)
        models = cls._configure_models(scorer_params, segmenter_params, guided_epochs, seed)
        image_size_pair = _check_size(image_size, "image_size") if image_size is not None \
            else None
        tile_pair = _check_size(tile, "tile") if tile is not None else None
        masks_folder = Path(masks) if masks is not None else None
        from_folder = isinstance(images, (str, os.PathLike))
        if from_folder:
            if names is not None:
                raise SessionError("names= is for images given as an array, paths or a "
                                   "Dataset; a folder's images are named by their files")
            items, described = cls._folder_items(
                Path(images), masks_folder, mask_suffix, mode or "L", skip_unreadable,
                image_size_pair, tile_pair)
        else:
            items, described = cls._pool_items(
                images, masks_folder, mask_suffix, mode, names, skip_unreadable,
                image_size_pair, tile_pair)

        for leftover in root.parent.glob(f".{root.name}.init-*"):  # from a killed init
            owner = leftover.name.rsplit("-", 1)[-1]
            if not (owner.isdigit() and _pid_alive(int(owner))):
                shutil.rmtree(leftover, ignore_errors=True)
        staging = root.parent / f".{root.name}.init-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            pool_names: list[str] = []
            sources: list[str] = []
            keys: list[np.ndarray] = []  # hashed as written: no second read of the pool
            labels: dict[str, Any] = {}
            writer = _NpyWriter(staging / POOL_IMAGES)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    for name, source, image, mask in items:
                        if writer.shape is None:
                            cls._check_fits_networks(image.shape[1:], models)
                        writer.append(image)
                        keys.append(content_keys(image[np.newaxis]))
                        pool_names.append(name)
                        sources.append(source)
                        if mask is not None:
                            labels[name] = cls._write_mask(staging, name, mask, version=1,
                                                           round_index=None, source=source)
                except SessionError:
                    raise
                except ValueError as error:  # the readers' messages name the file
                    raise SessionError(str(error)) from None
            for warning in caught:
                warnings.warn(str(warning.message), SessionWarning, stacklevel=2)
            if not pool_names:
                raise SessionError(f"no readable images in {described}")
            shape = writer.finish()
            meta_buffer = io.BytesIO()
            np.savez_compressed(meta_buffer, names=np.array(pool_names),
                                keys=np.concatenate(keys),
                                sources=np.array(sources))
            meta_bytes = meta_buffer.getvalue()
            _write_bytes(staging / POOL_META, meta_bytes)
            manifest = {
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "created": _now(), "updated": _now(),
                "written_by": cls._versions(),
                "settings": {
                    "images": described,
                    "masks": str(masks_folder.resolve()) if masks_folder else None,
                    "image_size": list(image_size_pair) if image_size_pair else None,
                    "tile": list(tile_pair) if tile_pair else None,
                    "mode": "L" if shape[1] == 1 else "RGB", "mask_suffix": mask_suffix,
                    "defect_ratio": defect_ratio, "seed": seed, **models,
                },
                "pool": {"file": POOL_IMAGES, "sha256": _file_sha256(staging / POOL_IMAGES),
                         "meta": POOL_META, "meta_sha256": _sha256(meta_bytes),
                         "dtype": "float32", "n_images": len(pool_names),
                         "n_channels": int(shape[1]), "height": int(shape[2]),
                         "width": int(shape[3])},
                "labels": labels, "rounds": [], "models": {}, "model_files": {},
            }
            _write_json(staging / MANIFEST, manifest)
            _test_hook("init:before-rename")
            if root.exists():
                root.rmdir()  # empty, checked above
            os.replace(staging, root)
            _fsync_folder(root.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(root)

    @staticmethod
    def _file_items(
        pairs: list[tuple[str, Path, Path | None]], mode: str, skip_unreadable: bool,
        image_size: tuple[int, int] | None, tile: tuple[int, int] | None,
    ) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None]]:
        """Read (name, image file, mask file or None) one at a time, as the loaders do.

        Yields ``(name, source file, image, mask or None)`` per image or tile.
        """
        with_mask = {image_path for _, image_path, mask_path in pairs if mask_path}
        for name, image_path, image, mask in _iter_pairs(
                pairs, image_size=image_size, tile_size=tile, mode=mode,
                on_error="warn" if skip_unreadable else "raise"):
            yield (name, str(image_path.resolve()), image,
                   mask if image_path in with_mask else None)

    @classmethod
    def _folder_items(
        cls, folder: Path, masks_folder: Path | None, mask_suffix: str, mode: str,
        skip_unreadable: bool, image_size: tuple[int, int] | None,
        tile: tuple[int, int] | None,
    ) -> tuple[Iterator[tuple[str, str, np.ndarray, np.ndarray | None]], str]:
        """Stream a folder's images: ``(items, description)``."""
        cls._check_init_masks(None, folder, masks_folder, mask_suffix)
        pairs, _ = _folder_pairs(folder, masks_folder, mask_suffix=mask_suffix,
                                 recursive=False,
                                 on_error="warn" if skip_unreadable else "raise")
        return (cls._file_items(pairs, mode, skip_unreadable, image_size, tile),
                str(folder.resolve()))

    @classmethod
    def _pool_items(
        cls, images: Any, masks_folder: Path | None, mask_suffix: str, mode: str | None,
        names: Sequence[str] | None, skip_unreadable: bool,
        image_size: tuple[int, int] | None, tile: tuple[int, int] | None,
    ) -> tuple[Iterator[tuple[str, str, np.ndarray, np.ndarray | None]], str]:
        """Stream images given as paths, an array, a memmap or a Dataset (see create)."""
        if isinstance(images, (list, tuple)) and not images:
            raise SessionError("images is an empty list; pass a folder, image paths, an array "
                               "or a Dataset holding at least one image")
        if _is_path_sequence(images):
            paths = [Path(entry) for entry in images]
            argument = "names" if names is not None else "the file names of images"
            names = [entry.stem for entry in paths] if names is None else list(names)
            cls._check_names(names, len(paths), argument)
            mask_files = cls._check_init_masks(set(names), None, masks_folder, mask_suffix)
            pairs = [(name, entry, mask_files.get(name))
                     for name, entry in zip(names, paths, strict=True)]
            return (cls._file_items(pairs, mode or "L", skip_unreadable, image_size, tile),
                    f"{len(paths)} image paths")
        try:
            pool = ImagePool(images, name="images")
        except (TypeError, ValueError) as error:
            raise SessionError(str(error)) from None
        n_channels = pool.image_shape[0]
        if mode is not None and n_channels != (1 if mode == "L" else 3):
            raise SessionError(
                f"mode={mode!r} but the images have {n_channels} channel(s); pass "
                f"mode={'L' if n_channels == 1 else 'RGB'!r} or leave mode unset"
            )
        names = ([f"image_{row:06d}" for row in range(len(pool))] if names is None
                 else list(names))
        cls._check_names(names, len(pool), "names")
        mask_files = cls._check_init_masks(set(names), None, masks_folder, mask_suffix)

        def items() -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None]]:
            for rows, chunk in pool.iter_chunks(chunk_size_for(pool, 1)):
                for row, image in zip(range(rows.start, rows.stop), chunk, strict=True):
                    mask_path = mask_files.get(names[row])
                    mask = (_read_binary_mask(mask_path) if mask_path is not None else
                            np.zeros(image.shape[1:], np.uint8))
                    if mask.shape != image.shape[1:]:
                        raise SessionError(
                            f"mask file {mask_path} is {mask.shape[0]}x{mask.shape[1]} but "
                            f"its image {names[row]!r} is {image.shape[1]}x{image.shape[2]} "
                            f"(height x width); a mask must have the size of its image")
                    for piece_name, piece, piece_mask in _pieces(
                            names[row], image, mask, image_size=image_size, tile_size=tile,
                            where=f"image {names[row]!r}"):
                        yield (piece_name, "", piece,
                               piece_mask if mask_path is not None else None)

        return items(), f"{type(images).__name__} of {len(pool)} images"

    @staticmethod
    def _check_names(names: list[Any], n_images: int, argument: str) -> None:
        """Image names become file names (masks/NAME.png): one per image, unique, plain."""
        if len(names) != n_images:
            raise SessionError(f"{argument} has {len(names)} entries but images has "
                               f"{n_images}; pass one name per image")
        seen: dict[str, int] = {}
        for position, name in enumerate(names):
            if (not isinstance(name, str) or not name or name.startswith(".")
                    or any(character in name for character in "/\\\0")):
                raise SessionError(
                    f"{argument}[{position}] is {name!r}; an image name must be a non-empty "
                    f"str without '/', '\\' or a leading '.', since it names its mask file"
                )
            if name in seen:
                raise SessionError(
                    f"{argument} has {name!r} twice (images {seen[name]} and {position}); "
                    f"image names must be unique: pass names= with one name per image"
                )
            seen[name] = position

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

    @staticmethod
    def _versions() -> dict[str, str]:
        import torch

        import sid4ds

        return {"sid4ds": sid4ds.__version__, "torch": torch.__version__,
                "numpy": np.__version__}

    @staticmethod
    def _configure_models(scorer_params: dict[str, Any] | None,
                          segmenter_params: dict[str, Any] | None,
                          guided_epochs: int | None, seed: int) -> dict[str, Any]:
        """Validated model settings with the seeds run_sid4ds would draw from ``seed``."""
        from sid4ds.reconstruction import ReconstructionScorer
        from sid4ds.segmentation import SegmentationLearner

        rng = np.random.default_rng(seed)
        configured = {}
        for key, cls, given in (("segmenter", SegmentationLearner, segmenter_params),
                                ("scorer", ReconstructionScorer, scorer_params)):
            given = dict(given or {})
            for runtime in ("device", "verbose", "warm_start"):
                if runtime in given:
                    raise SessionError(
                        f"{key}_params may not set {runtime!r}: the session decides it "
                        f"(device and verbosity are chosen per command)"
                    )
            try:
                estimator = cls(**given)
            except TypeError as error:
                raise SessionError(f"{key}_params: {error}") from None
            if estimator.random_state is None:  # drawn as run_sid4ds draws them
                estimator.set_params(random_state=int(rng.integers(2**31)))
            estimator._check_params()
            configured[key] = _json_params(estimator)
        scorer_epochs = configured["scorer"]["max_epochs"]
        configured["guided_epochs"] = (scorer_epochs if guided_epochs is None else
                                       check_int(guided_epochs, "guided_epochs", minimum=1))
        return configured

    @staticmethod
    def _check_fits_networks(shape: Sequence[int], models: dict[str, Any]) -> None:
        from sid4ds.reconstruction import block_masks

        height, width = (int(side) for side in shape)
        for key in ("scorer", "segmenter"):
            factor = 2 ** models[key]["depth"]
            if height % factor or width % factor:
                fitting = [-(-side // factor) * factor for side in (height, width)]
                hint = (str(fitting[0]) if fitting[0] == fitting[1]
                        else f"{fitting[0]}x{fitting[1]}")
                raise SessionError(
                    f"the images are {_describe_shape((height, width))} but the networks "
                    f"(depth {models[key]['depth']}) need sides divisible by {factor}; pass "
                    f"image_size={hint} (sid4ds init --image-size {hint}) or a tile size "
                    f"divisible by {factor}, or a smaller depth"
                )
        try:
            block_masks(height, width, models["scorer"]["n_blocks"])
        except ValueError as error:
            raise SessionError(f"{error} (n_blocks of the reconstruction learner)") from None

    @staticmethod
    def _check_init_masks(image_names: set[str] | None, images: Path | None,
                          masks: Path | None, mask_suffix: str) -> dict[str, Path]:
        """Check every initial mask: readable, binary, with an image; ``{name: file}``.

        ``image_names`` are the names masks may match (``None``: list the folder
        ``images``, leaving out mask files when masks live in the same folder).
        """
        if masks is None:
            return {}
        if not masks.is_dir():
            raise SessionError(f"masks folder {masks} does not exist or is not a folder")
        same_folder = images is not None and masks.resolve() == images.resolve()
        mask_files = _list_files(masks, recursive=False)
        if same_folder:  # masks are the files with the suffix (the loader insists on one)
            mask_files = [(n, p) for n, p in mask_files
                          if mask_suffix and n.endswith(mask_suffix)]
        if image_names is None:
            if images is None or not images.is_dir():
                return {}  # _folder_pairs reports it
            image_names = {name for name, _ in _list_files(images, recursive=False)
                           if not (same_folder and mask_suffix and name.endswith(mask_suffix))}
        where = f" in {images}" if images is not None else ""
        stems: dict[str, Path] = {}
        for name, mask_path in mask_files:
            stem = name[: -len(mask_suffix)] if mask_suffix and name.endswith(mask_suffix) \
                else name
            if stem in stems:
                raise SessionError(
                    f"two mask files are for image {stem!r}: {stems[stem]} and {mask_path}; "
                    f"remove one of them"
                )
            if stem not in image_names:
                raise SessionError(
                    f"mask file {mask_path} has no image named {stem!r}{where}; masks "
                    f"are matched to images by file name without extension: rename or "
                    f"remove the mask"
                )
            _read_binary_mask(mask_path)
            stems[stem] = mask_path
        return stems

    # ------------------------------------------------------------------ manifest, pool
    def _read_manifest(self) -> dict[str, Any]:
        file = self.path / MANIFEST
        if not self.path.exists():
            raise SessionError(
                f"session folder {self.path} does not exist; create it with `sid4ds init "
                f"{self.path} --images DIR`"
            )
        if not file.is_file():
            raise SessionError(
                f"{self.path} is not a sid4ds session: it has no {MANIFEST}; pass the folder "
                f"that `sid4ds init` created"
            )
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SessionError(f"cannot read {file}: {error}; restore the session folder "
                               f"from a copy") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise SessionError(f"{file} is not a sid4ds session manifest")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise SessionError(f"{file} has an invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            written = manifest.get("written_by", {}).get("sid4ds", "a newer version")
            raise SessionError(
                f"session {self.path} has format version {version}, written by sid4ds "
                f"{written}; this sid4ds reads format versions up to {FORMAT_VERSION}: "
                f"upgrade sid4ds (pip install -U sid4ds)"
            )
        return manifest

    def _commit(self, manifest: dict[str, Any]) -> None:
        manifest["updated"] = _now()
        _write_json(self.path / MANIFEST, manifest)
        self.manifest = manifest

    @contextlib.contextmanager
    def _locked(self, command: str) -> Iterator[dict[str, Any]]:
        with _SessionLock(self.path, command):
            self._clean_leftovers()
            self.manifest = self._read_manifest()
            yield self.manifest

    def _clean_leftovers(self) -> None:
        """Remove temporary files of commands that were killed (we hold the lock)."""
        for leftover in list(self.path.rglob(".*.tmp-*")) + list(self.path.rglob(".*.old-*")):
            with contextlib.suppress(OSError):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()

    def _pool(self) -> dict[str, Any]:
        """The pool: ``images`` (memory-mapped, (n, C, H, W) float32), ``names``, ``keys``,
        ``sources`` and ``index`` (name to row). Checksums are verified on first use."""
        if self._pool_cache is not None:
            return self._pool_cache
        entry = self.manifest["pool"]
        file = self._verified(entry["file"], entry["sha256"])
        try:
            if "meta" not in entry:  # format version 1: everything in one npz, in memory
                with np.load(file, allow_pickle=False) as data:
                    pool = {key: data[key] for key in ("images", "names", "keys", "sources")}
            else:
                meta = self._verified(entry["meta"], entry["meta_sha256"])
                with np.load(meta, allow_pickle=False) as data:
                    pool = {key: data[key] for key in ("names", "keys", "sources")}
                pool["images"] = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError) as error:
            raise SessionError(f"cannot read the pool of {self.path}: {error}; restore the "
                               f"session folder from a copy") from None
        expected = (entry["n_images"], entry["n_channels"], entry["height"], entry["width"])
        if pool["images"].shape != expected or len(pool["names"]) != expected[0]:
            raise SessionError(f"{file} holds images of shape {pool['images'].shape}, but the "
                               f"manifest says {expected}; restore the session folder from "
                               f"a copy")
        pool["names"] = [str(name) for name in pool["names"]]
        pool["index"] = {name: row for row, name in enumerate(pool["names"])}
        self._pool_cache = pool
        return pool

    def _verified(self, name: str, sha256: str) -> Path:
        """Path of a session file whose checksum matches (read in blocks, any size)."""
        file = self.path / name
        if not file.is_file():
            raise SessionError(f"{file} is missing; restore the session folder from a copy")
        if _file_sha256(file) != sha256:
            raise SessionError(f"{file} was changed or damaged (checksum mismatch); restore "
                               f"the session folder from a copy")
        return file

    @staticmethod
    def _write_mask(root: Path, name: str, mask: np.ndarray, *, version: int,
                    round_index: int | None, source: str) -> dict[str, Any]:
        """Write a mask PNG atomically; return its label record."""
        # names hold no "/" (images are read from one folder), so versions cannot collide
        relative = f"masks/{name}.png" if version == 1 else f"masks/v{version}/{name}.png"
        data = _png_bytes((mask > 0).astype(np.uint8) * 255)
        _write_bytes(root / relative, data)
        return {"mask": relative, "sha256": _sha256(data), "version": version,
                "round": round_index, "defective": bool(mask.any()), "source": source,
                "imported": _now()}

    def _load_mask(self, name: str) -> np.ndarray:
        record = self.manifest["labels"][name]
        file = self.path / record["mask"]
        try:
            data = file.read_bytes()
        except OSError:
            raise SessionError(f"mask file {file} of labelled image {name!r} is missing; "
                               f"import its mask again") from None
        if _sha256(data) != record["sha256"]:
            raise SessionError(f"mask file {file} of labelled image {name!r} was changed or "
                               f"damaged; import its mask again with replace")
        with Image.open(io.BytesIO(data)) as image:
            return (np.asarray(image.convert("L")) > 0).astype(np.uint8)

    # ------------------------------------------------------------------ state, as lists
    @property
    def names(self) -> list[str]:
        """Names of all pool images, in pool order."""
        return list(self._pool()["names"])

    @property
    def labeled_names(self) -> list[str]:
        """Labelled images in labelling order (initial masks first, then round by round)."""
        labels = self.manifest["labels"]
        order = {name: position for position, name in
                 enumerate(name for record in self.manifest["rounds"]
                           for name in record["selected"])}
        initial = [name for name, record in labels.items() if record["round"] is None]
        pool_index = self._pool()["index"] if initial else {}
        return sorted(labels, key=lambda name: (
            labels[name]["round"] is not None,
            order.get(name, -1) if labels[name]["round"] is not None else pool_index[name]))

    def _waiting(self, manifest: dict[str, Any]) -> list[str]:
        if not manifest["rounds"]:
            return []
        last = manifest["rounds"][-1]
        return [name for name in last["selected"] if name not in manifest["labels"]]

    def status(self) -> dict[str, Any]:
        """Where the session stands (``sid4ds status``); reads only, takes no lock.

        Returns
        -------
        status : dict
            ``path``, ``format_version``, ``n_images``, ``image_shape`` (channels, height,
            width), ``n_rounds``, ``labeled``, ``defective`` (labelled images with a defect),
            ``fake_normals`` (the last round's fake normals), ``unlabeled`` (the rest:
            ``labeled + fake_normals + unlabeled == n_images``), ``waiting`` (names the last
            round asked for that have no mask yet), ``rounds`` (per round: ``round``,
            ``stage``, ``asked``, ``labeled``, ``defective``), ``initially_labeled``,
            ``lock`` (the running command, or None) and ``next`` (what to do next).
        """
        manifest = self.manifest = self._read_manifest()
        labels = manifest["labels"]
        rounds = []
        for record in manifest["rounds"]:
            done = [name for name in record["selected"]
                    if name in labels and labels[name]["round"] == record["round"]]
            rounds.append({
                "round": record["round"], "stage": record["stage"],
                "asked": len(record["selected"]), "labeled": len(done),
                "defective": sum(labels[name]["defective"] for name in done),
                "fake_normals": len(record["fake_normals"]),
            })
        fake = ([name for name in manifest["rounds"][-1]["fake_normals"] if name not in labels]
                if manifest["rounds"] else [])
        waiting = self._waiting(manifest)
        n_images = manifest["pool"]["n_images"]
        lock = _SessionLock.read(self.path / LOCK) if (self.path / LOCK).exists() else None
        if lock is not None and _SessionLock.is_stale(lock, self.path / LOCK):
            lock = {**lock, "stale": True}
        if waiting:
            folder = manifest["rounds"][-1]["folder"]
            next_step = (f"label the {len(waiting)} images listed in {self.path / folder}/"
                         f"to_label.csv, then `sid4ds import {self.path} --masks DIR`")
        elif len(labels) == n_images:
            next_step = f"every image is labelled: `sid4ds export {self.path}`"
        else:
            next_step = f"`sid4ds query {self.path}` for the next round"
        pool = manifest["pool"]
        return {
            "path": str(self.path), "format_version": manifest["format_version"],
            "n_images": n_images,
            "image_shape": [pool["n_channels"], pool["height"], pool["width"]],
            "n_rounds": len(manifest["rounds"]), "labeled": len(labels),
            "defective": sum(record["defective"] for record in labels.values()),
            "fake_normals": len(fake), "unlabeled": n_images - len(labels) - len(fake),
            "waiting": waiting, "rounds": rounds,
            "initially_labeled": sum(record["round"] is None for record in labels.values()),
            "lock": lock, "next": next_step,
        }

    # ------------------------------------------------------------------ query
    def query(
        self,
        n_label: int | None = None,
        n_normal: int | str = "auto",
        *,
        device: Any = "auto",
        verbose: int = 0,
        skip_missing: bool = False,
    ) -> dict[str, Any]:
        """Run one round (``sid4ds query``): train, rank the unlabelled pool, write the lists.

        The first round trains the self-supervised reconstruction learner M on the whole
        pool and ranks by E_msmr. Once labels exist (with at least one defective and one
        normal image among the labelled images and the last round's fake normals), a round
        trains the segmentation learner S (from its previous weights after the first time)
        and, once, the label-guided learner G (starting from M's weights) on the labelled
        images plus the previous round's fake normals, and ranks by E_sdr inside S's
        predicted defects, as :func:`sid4ds.run_sid4ds` does.

        Files written to ``rounds/NNN/``: ``to_label.csv`` and ``to_label.json`` (rank,
        name, score, the image file, the pre-annotation file, the source file),
        ``fake_normals.csv``, ``scores.csv`` (every ranked image), ``images/NAME.png``
        (the images to label, as the session sees them) and ``preannotations/NAME.png``
        (S's predicted masks, from the second round on).

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

        Returns
        -------
        record : dict
            The round: ``round``, ``stage`` (``"cold_start"`` or ``"iterative"``),
            ``score`` (``"E_msmr"`` or ``"E_sdr"``), ``selected`` (names, best first),
            ``scores``, ``fake_normals`` (names), ``fake_normal_scores``, ``folder``.

        Raises
        ------
        SessionError
            If the last round still waits for masks (and not ``skip_missing``), or every
            image is labelled. :class:`SessionBusyError` if another command runs.
        """
        from sid4ds._torch import resolve_device

        resolve_device(device)
        verbose = check_int(verbose, "verbose", minimum=0)
        with self._locked("query") as manifest:
            waiting = self._waiting(manifest)
            if waiting and not skip_missing:
                folder = manifest["rounds"][-1]["folder"]
                raise SessionError(
                    f"round {len(manifest['rounds']) - 1} still waits for masks of "
                    f"{len(waiting)} images ({', '.join(waiting[:5])}"
                    f"{', ...' if len(waiting) > 5 else ''}; listed in "
                    f"{self.path / folder / 'to_label.csv'}); import them first, or pass "
                    f"skip_missing=True (--skip-missing) to put them back in the pool"
                )
            pool = self._pool()
            labels = manifest["labels"]
            unlabeled = [row for row, name in enumerate(pool["names"]) if name not in labels]
            if not unlabeled:
                raise SessionError(
                    f"every image of {self.path} is labelled; nothing is left to query: "
                    f"export the masks with `sid4ds export {self.path}`"
                )
            n_pool = len(pool["names"])
            if n_label is None:
                n_label = max(1, int(round(0.1 * n_pool)))
            n_label = check_int(n_label, "n_label", minimum=1)
            if n_normal != "auto":
                n_normal = check_int(n_normal, "n_normal", minimum=0)
            round_index = len(manifest["rounds"])
            if waiting:
                manifest["rounds"][-1]["skipped"] = waiting
            return self._run_round(manifest, pool, unlabeled, round_index, n_label, n_normal,
                                   device, verbose)

    def _training_set(self, manifest: dict[str, Any],
                      pool: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """X_L ∪ X_FN: labelled images in labelling order, then last round's fake normals."""
        labeled = self.labeled_names
        fake = ([name for name in manifest["rounds"][-1]["fake_normals"]
                 if name not in manifest["labels"]] if manifest["rounds"] else [])
        rows = [pool["index"][name] for name in [*labeled, *fake]]
        height, width = pool["images"].shape[2:]
        masks = [self._load_mask(name) for name in labeled]
        masks += [np.zeros((height, width), np.uint8)] * len(fake)
        if not rows:
            return pool["images"][:0], np.zeros((0, height, width), np.uint8)
        return pool["images"][rows], np.stack(masks)

    def _model(self, manifest: dict[str, Any], kind: str, device: Any,
               verbose: int) -> Any | None:
        entry = manifest["models"].get(kind)
        if entry is None:
            return None
        model = _load_model(self.path, kind, entry, device)
        model.set_params(verbose=verbose)
        return model

    def _keep_model(self, manifest: dict[str, Any], kind: str, round_index: int,
                    model: Any) -> None:
        entry = _save_model(self.path, kind, round_index, model)
        manifest["models"][kind] = entry
        manifest["model_files"][f"{kind}_r{round_index:03d}"] = entry
        self._commit(manifest)

    def _run_round(self, manifest: dict[str, Any], pool: dict[str, Any],
                   unlabeled: list[int], round_index: int, n_label: int,
                   n_normal: int | str, device: Any, verbose: int) -> dict[str, Any]:
        from sid4ds._torch import resolve_device

        settings = manifest["settings"]
        images = pool["images"]
        seconds: dict[str, float] = {}
        started = time.perf_counter()

        scorer = self._model(manifest, "M", device, verbose)
        if scorer is None:
            _say(verbose, f"training the reconstruction learner M on {len(images)} images")
            cls = _estimator_class("M")
            scorer = cls(**_params_from_json("M", settings["scorer"]), device=device,
                         verbose=verbose).fit(images)
            self._keep_model(manifest, "M", round_index, scorer)
            seconds["train_M"] = time.perf_counter() - started
        _test_hook("query:after-train-M")

        X_train, y_train = self._training_set(manifest, pool)
        defective = y_train.any(axis=(1, 2))
        iterative = bool(defective.any() and (~defective).any())
        pool_images = as_pool(images, name="pool").subset(unlabeled)
        segmenter = None
        models_used = {"M": manifest["models"]["M"]["round"]}
        if iterative:
            segmenter = self._model(manifest, "S", device, verbose)
            if segmenter is None or manifest["models"]["S"]["round"] < round_index:
                _say(verbose, f"training the segmentation learner S on {len(X_train)} images "
                              f"({int(defective.sum())} defective)")
                step = time.perf_counter()
                if segmenter is None:
                    cls = _estimator_class("S")
                    segmenter = cls(**_params_from_json("S", settings["segmenter"]),
                                    device=device, verbose=verbose)
                else:
                    segmenter.set_params(warm_start=True)
                segmenter.fit(X_train, y_train)
                self._keep_model(manifest, "S", round_index, segmenter)
                seconds["train_S"] = time.perf_counter() - step
            _test_hook("query:after-train-S")
            guided = self._model(manifest, "G", device, verbose)
            if guided is None:
                _say(verbose, "training the label-guided reconstruction learner G from M")
                step = time.perf_counter()
                guided = copy.deepcopy(scorer).set_params(
                    warm_start=True, max_epochs=settings["guided_epochs"])
                guided.fit(X_train, y_train)
                self._keep_model(manifest, "G", round_index, guided)
                seconds["train_G"] = time.perf_counter() - step
            _test_hook("query:after-train-G")
            models_used.update(S=manifest["models"]["S"]["round"],
                               G=manifest["models"]["G"]["round"])
            step = time.perf_counter()
            _say(verbose, f"scoring {len(pool_images)} unlabelled images (E_sdr)")
            scores = sdr_scores(segmenter, guided, pool_images)  # S's masks chunk by chunk
            seconds["score_sdr"] = time.perf_counter() - step
        else:
            step = time.perf_counter()
            _say(verbose, f"scoring {len(pool_images)} unlabelled images (E_msmr)")
            scores = msmr_scores(scorer, pool_images)
            seconds["score_msmr"] = time.perf_counter() - step

        n_fake = resolve_n_normal(n_normal, n_label, len(unlabeled), settings["defect_ratio"])
        top, bottom = rank_pool(scores, n_label, n_fake,
                                tie_keys=pool["keys"][np.asarray(unlabeled)])
        names = [pool["names"][row] for row in unlabeled]
        record = {
            "round": round_index, "stage": "iterative" if iterative else "cold_start",
            "score": "E_sdr" if iterative else "E_msmr",
            "n_label": n_label, "n_normal": n_normal, "defect_ratio": settings["defect_ratio"],
            "selected": [names[index] for index in top],
            "scores": [float(scores[index]) for index in top],
            "fake_normals": [names[index] for index in bottom],
            "fake_normal_scores": [float(scores[index]) for index in bottom],
            "n_training": len(X_train), "models": models_used,
            "folder": f"rounds/{round_index:03d}", "created": _now(),
            "device": str(resolve_device(device)), "seconds": seconds,
        }
        preannotations = (segmenter.predict(pool_images[top]) if segmenter is not None
                          and len(top) else None)
        self._write_round_folder(record, pool, names, scores, top, bottom, preannotations)
        _test_hook("query:before-commit")
        manifest["rounds"].append(record)
        self._commit(manifest)
        _say(verbose, f"round {round_index} ({record['stage']}): label the "
                      f"{len(record['selected'])} images in {self.path / record['folder']}")
        return copy.deepcopy(record)

    def _write_round_folder(self, record: dict[str, Any], pool: dict[str, Any],
                            names: list[str], scores: np.ndarray, top: np.ndarray,
                            bottom: np.ndarray, preannotations: np.ndarray | None) -> None:
        """Write ``rounds/NNN``; ``preannotations`` are S's masks of the ``top`` images."""
        target = self.path / record["folder"]
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        if staging.exists():
            shutil.rmtree(staging)
        rows = []
        entries = []
        for rank, index in enumerate(top, start=1):
            name = names[index]
            image_file = f"images/{name}.png"
            _write_bytes(staging / image_file,
                         _png_bytes(_to_uint8(pool["images"][pool["index"][name]])))
            preannotation = ""
            if preannotations is not None:
                preannotation = f"preannotations/{name}.png"
                _write_bytes(staging / preannotation,
                             _png_bytes(preannotations[rank - 1].astype(np.uint8) * 255))
            source = str(pool["sources"][pool["index"][name]])
            rows.append([rank, name, repr(float(scores[index])), image_file, preannotation,
                         source])
            entries.append({"rank": rank, "name": name, "score": float(scores[index]),
                            "image": image_file, "preannotation": preannotation or None,
                            "source": source})
        header = ["rank", "name", "score", "image", "preannotation", "source"]
        _write_text(staging / "to_label.csv", _csv_text(header, rows))
        fake_rows = [[rank, names[index], repr(float(scores[index]))]
                     for rank, index in enumerate(bottom, start=1)]
        _write_text(staging / "fake_normals.csv",
                    _csv_text(["rank", "name", "score"], fake_rows))
        order = np.lexsort((-np.arange(len(scores)), -scores))
        role = {int(index): "label" for index in top}
        role.update({int(index): "fake_normal" for index in bottom})
        all_rows = [[names[index], repr(float(scores[index])), rank,
                     role.get(int(index), "pool")]
                    for rank, index in enumerate(order, start=1)]
        _write_text(staging / "scores.csv",
                    _csv_text(["name", "score", "rank", "role"], all_rows))
        _write_json(staging / "to_label.json", {
            "round": record["round"], "stage": record["stage"], "score": record["score"],
            "instructions": "draw a mask for every image in images/ (0 = normal, 255 = "
                            "defect; an all-black mask for a normal image), name it like "
                            "the image, and run `sid4ds import SESSION --masks DIR`",
            "images": entries,
            "fake_normals": [{"rank": rank, "name": names[index], "score": float(scores[index])}
                             for rank, index in enumerate(bottom, start=1)],
        })
        _replace_folder(staging, target)

    # ------------------------------------------------------------------ import
    def import_masks(
        self,
        folder: str | os.PathLike[str],
        *,
        mask_suffix: str = "",
        replace: bool = False,
    ) -> dict[str, list[str]]:
        """Take the human's masks back (``sid4ds import --masks``).

        Mask files are matched to images by file name without extension (after removing
        ``mask_suffix``). Only images a round asked for, or that are already labelled, are
        accepted. Every file is checked first; if any is wrong nothing is imported. The
        masks are copied into the session before the manifest marks them labelled.

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

        Returns
        -------
        summary : dict
            ``added``, ``replaced`` and ``unchanged`` image names.

        Raises
        ------
        SessionError
            Naming every bad file: unreadable, not binary, wrong size, no such image, not
            asked for, two files for one image, or a different mask for a labelled image
            without ``replace``.
        """
        source = Path(folder)
        if not source.is_dir():
            raise SessionError(f"masks folder {source} does not exist or is not a folder")
        files = _list_files(source, recursive=False)
        if not files:
            raise SessionError(
                f"no mask files ({', '.join(IMAGE_EXTENSIONS)}) in {source}; save one mask "
                f"per labelled image there, named like the image"
            )
        with self._locked("import"):
            problems: list[str] = []
            candidates: list[tuple[str, np.ndarray, str]] = []
            seen: dict[str, Path] = {}
            shape = self._image_shape()
            for stem, path in files:
                name = stem[: -len(mask_suffix)] if mask_suffix and stem.endswith(
                    mask_suffix) else stem
                if name in seen:
                    problems.append(f"two mask files are for image {name!r}: {seen[name]} and "
                                    f"{path}; remove one of them")
                    continue
                seen[name] = path
                try:
                    mask = _read_binary_mask(path)
                except SessionError as error:
                    problems.append(str(error))
                    continue
                if mask.shape != shape:
                    problems.append(
                        f"mask file {path} is {_describe_shape(mask.shape)} but image "
                        f"{name!r} is {_describe_shape(shape)} in this session; draw the "
                        f"mask on the image the session wrote (rounds/NNN/images/{name}.png)")
                    continue
                candidates.append((name, mask, str(path)))
            return self._import(candidates, problems, replace, f"folder {source}")

    def import_label_studio(
        self,
        export: str | os.PathLike[str],
        *,
        replace: bool = False,
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
        replace : bool, default=False
            As in :meth:`import_masks`.

        Returns
        -------
        summary : dict
            ``added``, ``replaced``, ``unchanged`` and ``not_annotated`` names.
        """
        file = Path(export)
        try:
            tasks = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SessionError(f"cannot read Label Studio export {file}: {error}") from None
        if isinstance(tasks, dict):
            tasks = [tasks]
        if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
            raise SessionError(f"{file} is not a Label Studio JSON export (a list of tasks)")
        with self._locked("import"):
            pool = self._pool()
            problems: list[str] = []
            candidates: list[tuple[str, np.ndarray, str]] = []
            not_annotated: list[str] = []
            shape = self._image_shape()
            for number, task in enumerate(tasks, start=1):
                where = f"task {task.get('id', f'#{number}')} of {file}"
                name = self._label_studio_name(task, pool["index"])
                if name is None:
                    problems.append(f"{where}: cannot tell which session image it is (data: "
                                    f"{json.dumps(task.get('data'))[:120]}); keep "
                                    f"data.sid4ds_name or the image's file name")
                    continue
                annotations = [entry for entry in task.get("annotations") or []
                               if isinstance(entry, dict) and not entry.get("was_cancelled")]
                if not annotations:
                    not_annotated.append(name)
                    continue
                mask = np.zeros(shape, np.uint8)
                try:
                    for result in annotations[-1].get("result") or []:
                        mask |= self._decode_label_studio_result(result, shape)
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    problems.append(f"{where} (image {name!r}): malformed result: "
                                    f"{type(error).__name__}: {error}")
                    continue
                candidates.append((name, mask, where))
            summary = self._import(candidates, problems, replace, f"export {file}")
            summary["not_annotated"] = not_annotated
            return summary

    def _image_shape(self) -> tuple[int, int]:
        return int(self.manifest["pool"]["height"]), int(self.manifest["pool"]["width"])

    @staticmethod
    def _label_studio_name(task: dict[str, Any], index: dict[str, int]) -> str | None:
        data = task.get("data") or {}
        if isinstance(data.get("sid4ds_name"), str) and data["sid4ds_name"] in index:
            return data["sid4ds_name"]
        image = data.get("image")
        if not isinstance(image, str):
            return None
        stem = Path(image.split("?d=")[-1].split("/")[-1]).stem
        for candidate in (stem, re.sub(r"^[0-9a-f]{8}-", "", stem)):
            if candidate in index:
                return candidate
        return None

    @staticmethod
    def _decode_label_studio_result(result: dict[str, Any],
                                    shape: tuple[int, int]) -> np.ndarray:
        kind = result.get("type")
        if kind not in ("brushlabels", "brush"):
            raise ValueError(f"result type {kind!r} is not supported; draw masks with the "
                             f"brush tool (BrushLabels)")
        value = result["value"]
        if value.get("format") != "rle":
            raise ValueError(f"brush format {value.get('format')!r} is not supported, only "
                             f"'rle'")
        height, width = int(result["original_height"]), int(result["original_width"])
        if (height, width) != shape:
            raise ValueError(f"the annotation is {_describe_shape((height, width))} but the "
                             f"session's image is {_describe_shape(shape)}; annotate the "
                             f"image the session exported")
        return brush_rle_to_mask(value["rle"], height, width)

    def _import(self, candidates: list[tuple[str, np.ndarray, str]], problems: list[str],
                replace: bool, origin: str) -> dict[str, list[str]]:
        """Check names against the session, then copy masks and commit (lock held)."""
        manifest = self.manifest
        pool = self._pool()
        labels = manifest["labels"]
        asked_in = {}
        for record in manifest["rounds"]:
            for name in record["selected"]:
                asked_in[name] = record["round"]
        accepted: list[tuple[str, np.ndarray, str, str]] = []
        for name, mask, where in candidates:
            if name not in pool["index"]:
                problems.append(f"{where}: the session has no image named {name!r}; masks are "
                                f"matched to images by file name without extension")
            elif name not in asked_in and name not in labels:
                problems.append(f"{where}: image {name!r} was not asked for by any round; "
                                f"the session only accepts masks for the images listed in "
                                f"rounds/NNN/to_label.csv")
            elif name in labels:
                try:
                    same = np.array_equal(self._load_mask(name), mask)
                except SessionError:  # the stored copy is damaged: replace may fix it
                    same = False
                if same:
                    accepted.append((name, mask, where, "unchanged"))
                elif not replace:
                    problems.append(f"{where}: image {name!r} is already labelled with a "
                                    f"different mask; pass replace=True (--replace) to "
                                    f"replace it")
                else:
                    accepted.append((name, mask, where, "replaced"))
            else:
                accepted.append((name, mask, where, "added"))
        if problems:
            shown = problems[:20]
            more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise SessionError(
                f"nothing was imported from {origin}; fix these and import again:\n  "
                + "\n  ".join(shown) + more)
        summary: dict[str, list[str]] = {"added": [], "replaced": [], "unchanged": []}
        replaced_files = []
        for name, mask, where, outcome in accepted:
            summary[outcome].append(name)
            if outcome == "unchanged":
                continue
            version = labels[name]["version"] + 1 if name in labels else 1
            if name in labels:
                replaced_files.append(self.path / labels[name]["mask"])
            labels[name] = self._write_mask(self.path, name, mask, version=version,
                                            round_index=asked_in.get(name), source=where)
            if len(summary["added"]) + len(summary["replaced"]) == 1:
                _test_hook("import:after-first-mask")
        _test_hook("import:before-commit")
        if summary["added"] or summary["replaced"]:
            self._commit(manifest)
        for stale in replaced_files:
            with contextlib.suppress(OSError):
                stale.unlink()
        return summary

    # ------------------------------------------------------------------ export
    def export(
        self,
        out: str | os.PathLike[str] | None = None,
        format: str = "png",
        *,
        image_url_prefix: str = "images/",
        device: Any = "auto",
    ) -> Path:
        """Write the labelled masks in a format other tools read (``sid4ds export``).

        ``"png"`` (MVTec AD / anomalib ``Folder`` layout)::

            OUT/good/NAME.png                      labelled normal images
            OUT/defect/NAME.png                    labelled defective images
            OUT/ground_truth/defect/NAME_mask.png  their masks (0 / 255)

        ``"coco"``: ``OUT/annotations.json`` (one category ``defect``; one annotation per
        connected defect region, 8-connected, with an uncompressed RLE ``segmentation``,
        ``bbox`` and ``area``; normal images have none) and ``OUT/images/NAME.png``.

        ``"label-studio"``: ``OUT/tasks.json`` (one task per labelled image, with its mask
        as a brush annotation, and one per image the last round still waits for, with the
        segmentation learner's predicted mask as a brush pre-annotation when one exists),
        ``OUT/images/NAME.png`` and ``OUT/label_config.xml``. Each task's ``data`` holds
        ``image`` (``image_url_prefix + NAME.png``) and ``sid4ds_name``.

        Images are written as the session sees them (after resizing or tiling), so masks
        and images always match.

        Parameters
        ----------
        out : str or path-like, optional
            Output folder; it must not exist or be empty. Default ``SESSION/exports/FORMAT``
            (replaced on each export).
        format : {"png", "coco", "label-studio"}, default="png"
        image_url_prefix : str, default="images/"
            Label Studio only: the prefix of ``data.image`` (e.g. the URL where the images
            are served, or ``/data/local-files/?d=...``).
        device : str, default="auto"
            Label Studio only: where S predicts the pre-annotations.

        Returns
        -------
        out : pathlib.Path
            The folder written.
        """
        if format not in EXPORT_FORMATS:
            raise SessionError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got "
                               f"{format!r}")
        with self._locked("export") as manifest:
            target = Path(out) if out is not None else self.path / "exports" / format
            if out is not None and target.exists() and (not target.is_dir()
                                                        or any(target.iterdir())):
                raise SessionError(f"{target} already exists and is not empty; choose a new "
                                   f"folder or delete it")
            labeled = self.labeled_names
            if not labeled and format != "label-studio":
                raise SessionError(f"session {self.path} has no labelled image yet; nothing "
                                   f"to export (run `sid4ds query` and `sid4ds import`)")
            pool = self._pool()
            staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            try:
                if format == "png":
                    self._export_png(staging, pool, labeled)
                elif format == "coco":
                    self._export_coco(staging, pool, labeled)
                else:
                    self._export_label_studio(staging, pool, labeled, manifest,
                                              image_url_prefix, device)
                _replace_folder(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target

    def _image_bytes(self, pool: dict[str, Any], name: str) -> bytes:
        return _png_bytes(_to_uint8(pool["images"][pool["index"][name]]))

    def _export_png(self, out: Path, pool: dict[str, Any], labeled: list[str]) -> None:
        for name in labeled:
            mask = self._load_mask(name)
            if mask.any():
                _write_bytes(out / "defect" / f"{name}.png", self._image_bytes(pool, name))
                _write_bytes(out / "ground_truth" / "defect" / f"{name}_mask.png",
                             _png_bytes(mask * 255))
            else:
                _write_bytes(out / "good" / f"{name}.png", self._image_bytes(pool, name))

    def _export_coco(self, out: Path, pool: dict[str, Any], labeled: list[str]) -> None:
        from scipy import ndimage

        height, width = self._image_shape()
        images, annotations = [], []
        for image_id, name in enumerate(labeled, start=1):
            _write_bytes(out / "images" / f"{name}.png", self._image_bytes(pool, name))
            images.append({"id": image_id, "file_name": f"images/{name}.png",
                           "height": height, "width": width})
            regions, n_regions = ndimage.label(self._load_mask(name),
                                               structure=np.ones((3, 3), dtype=int))
            for region in range(1, n_regions + 1):
                component = regions == region
                rows, cols = np.nonzero(component)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                    "segmentation": mask_to_coco_rle(component),
                    "area": int(component.sum()),
                    "bbox": [int(cols.min()), int(rows.min()),
                             int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)],
                    "iscrowd": 0,
                })
        _write_json(out / "annotations.json", {
            "info": {"description": f"sid4ds labelling session {self.path.name}",
                     "date_created": _now()},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "defect", "supercategory": "defect"}],
        })

    def _export_label_studio(self, out: Path, pool: dict[str, Any], labeled: list[str],
                             manifest: dict[str, Any], prefix: str, device: Any) -> None:
        height, width = self._image_shape()
        waiting = self._waiting(manifest)
        predictions = None
        if waiting and "S" in manifest["models"]:
            segmenter = self._model(manifest, "S", device, 0)
            rows = [pool["index"][name] for name in waiting]
            predictions = segmenter.predict(pool["images"][rows])

        def brush(mask: np.ndarray) -> list[dict[str, Any]]:
            if not mask.any():
                return []
            return [{"id": "sid4ds", "from_name": "defect", "to_name": "image",
                     "type": "brushlabels", "original_width": width,
                     "original_height": height, "image_rotation": 0,
                     "value": {"format": "rle", "rle": mask_to_brush_rle(mask),
                               "brushlabels": ["defect"]}}]

        tasks = []
        for name in [*waiting, *labeled]:
            _write_bytes(out / "images" / f"{name}.png", self._image_bytes(pool, name))
            task: dict[str, Any] = {"data": {"image": f"{prefix}{name}.png",
                                             "sid4ds_name": name}}
            if name in manifest["labels"]:
                task["annotations"] = [{"result": brush(self._load_mask(name))}]
            elif predictions is not None:
                mask = predictions[waiting.index(name)]
                task["predictions"] = [{"model_version": f"sid4ds-S-round"
                                                         f"{manifest['models']['S']['round']}",
                                        "result": brush(mask)}]
            tasks.append(task)
        _write_json(out / "tasks.json", tasks)
        _write_text(out / "label_config.xml", (
            "<View>\n"
            "  <Image name=\"image\" value=\"$image\" zoom=\"true\"/>\n"
            "  <BrushLabels name=\"defect\" toName=\"image\">\n"
            "    <Label value=\"defect\" background=\"#ff0000\"/>\n"
            "  </BrushLabels>\n"
            "</View>\n"))

    # ------------------------------------------------------------------ report
    def report(
        self,
        out: str | os.PathLike[str] | None = None,
        *,
        n_fake_normal_samples: int = 16,
        device: Any = "auto",
    ) -> Path:
        """Write an HTML page with PNG plots about the session (``sid4ds report``).

        The page shows the last round's score histogram with the K and V cut lines,
        thumbnails of the images it asked for with their reconstruction-error maps (M's
        block-wise masked-reconstruction error in a cold-start round, G's reconstruction
        error in an iterative round) and the segmentation learner's predicted masks, a
        random sample of the fake normals for spot checks, and the defects found per round.
        Plots are drawn with Pillow.

        Parameters
        ----------
        out : str or path-like, optional
            Output folder, replaced if it exists; default ``SESSION/report``.
        n_fake_normal_samples : int, default=16
            Fake normals to show (drawn with the session's seed).
        device : str, default="auto"
            Where to compute the error maps.

        Returns
        -------
        index : pathlib.Path
            The HTML file.
        """
        n_fake_normal_samples = check_int(n_fake_normal_samples, "n_fake_normal_samples",
                                          minimum=0)
        with self._locked("report") as manifest:
            if not manifest["rounds"]:
                raise SessionError(f"session {self.path} has no round yet; run `sid4ds query "
                                   f"{self.path}` first")
            target = Path(out) if out is not None else self.path / "report"
            staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            if staging.exists():
                shutil.rmtree(staging)
            staging.mkdir(parents=True)
            try:
                self._write_report(staging, manifest, n_fake_normal_samples, device)
                _replace_folder(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target / "index.html"

    def _round_scores(self, record: dict[str, Any]) -> np.ndarray:
        file = self.path / record["folder"] / "scores.csv"
        try:
            with open(file, newline="") as handle:
                return np.array([float(row["score"]) for row in csv.DictReader(handle)])
        except (OSError, KeyError, ValueError) as error:
            raise SessionError(f"cannot read {file}: {error}") from None

    def _error_maps(self, record: dict[str, Any], images: np.ndarray,
                    device: Any) -> np.ndarray:
        """Per-pixel reconstruction error (n, H, W) of the model that scored the round."""
        from sid4ds.reconstruction import block_masks

        models = record["models"]
        if record["stage"] == "iterative":
            guided = _load_model(self.path, "G", self._model_entry("G", models["G"]), device)
            return ((guided.reconstruct(images) - images) ** 2).mean(axis=1)
        scorer = _load_model(self.path, "M", self._model_entry("M", models["M"]), device)
        height, width = images.shape[2:]
        maps = np.zeros((len(images), height, width), dtype=np.float64)
        for block in block_masks(height, width, scorer.n_blocks):
            squared = ((scorer.reconstruct(images, mask=block.astype(np.uint8)) - images) ** 2
                       ).mean(axis=1)
            maps[:, block] = squared[:, block]
        return maps

    def _model_entry(self, kind: str, round_index: int) -> dict[str, Any]:
        return self.manifest["model_files"][f"{kind}_r{round_index:03d}"]

    def _write_report(self, out: Path, manifest: dict[str, Any], n_samples: int,
                      device: Any) -> None:
        pool = self._pool()
        record = manifest["rounds"][-1]
        labels = manifest["labels"]
        scores = self._round_scores(record)
        k_cut = min(record["scores"]) if record["scores"] else None
        v_cut = max(record["fake_normal_scores"]) if record["fake_normal_scores"] else None
        histogram = _draw_histogram(
            scores, k_cut, v_cut,
            f"round {record['round']} ({record['stage']}): {record['score']} of "
            f"{len(scores)} unlabelled images", len(record["selected"]),
            len(record["fake_normals"]))
        _write_bytes(out / "score_histogram.png", _image_png(histogram))
        status = self.status()
        per_round = status["rounds"]
        _write_bytes(out / "defects_per_round.png", _image_png(_draw_bars(
            [entry["defective"] for entry in per_round],
            [f"r{entry['round']}" for entry in per_round],
            "defective images found per round (among the images labelled)")))

        selected = record["selected"]
        rows = [pool["index"][name] for name in selected]
        images = pool["images"][rows]
        error_maps = self._error_maps(record, images, device)
        scale = float(np.percentile(error_maps, 99)) if error_maps.size else 1.0
        predicted = None
        if record["models"].get("S") is not None:
            segmenter = _load_model(self.path, "S",
                                    self._model_entry("S", record["models"]["S"]), device)
            predicted = segmenter.predict(images)
        top_rows = []
        for position, name in enumerate(selected):
            pixels = _to_uint8(images[position])
            panels = [_thumbnail(pixels), _thumbnail(_heatmap(error_maps[position], scale))]
            if predicted is not None:
                panels.append(_thumbnail(_overlay(pixels, predicted[position])))
            if name in labels:
                panels.append(_thumbnail(_overlay(pixels, self._load_mask(name))))
            file = f"top/{position + 1:03d}.png"
            _write_bytes(out / file, _image_png(_grid(panels, len(panels))))
            label = ("not labelled yet" if name not in labels else
                     "defective" if labels[name]["defective"] else "normal")
            top_rows.append(
                f"<tr><td>{position + 1}</td><td>{html.escape(name)}</td>"
                f"<td>{record['scores'][position]:.5g}</td><td>{label}</td>"
                f"<td><img src=\"{file}\" alt=\"{html.escape(name)}\"></td></tr>")

        fake = record["fake_normals"]
        rng = np.random.default_rng(manifest["settings"]["seed"] + record["round"])
        sample = sorted(rng.choice(len(fake), size=min(n_samples, len(fake)), replace=False)
                        .tolist()) if fake else []
        fake_tiles = [_thumbnail(_to_uint8(pool["images"][pool["index"][fake[index]]]), 64)
                      for index in sample]
        _write_bytes(out / "fake_normal_sample.png", _image_png(_grid(fake_tiles, 8)))
        sample_names = ", ".join(html.escape(fake[index]) for index in sample)

        round_rows = "".join(
            f"<tr><td>{entry['round']}</td><td>{entry['stage']}</td><td>{entry['asked']}</td>"
            f"<td>{entry['labeled']}</td><td>{entry['defective']}</td>"
            f"<td>{entry['fake_normals']}</td></tr>" for entry in per_round)
        panels_text = ("image | reconstruction error" + (" | predicted mask (S)" if predicted
                                                         is not None else "")
                       + " | human mask (once labelled)")
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>sid4ds session {html.escape(self.path.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:left}}
img{{image-rendering:pixelated}}</style></head><body>
<h1>sid4ds labelling session {html.escape(self.path.name)}</h1>
<p>{status['n_images']} images; {status['labeled']} labelled ({status['defective']} defective),
{status['fake_normals']} fake normals in the last round, {status['unlabeled']} other unlabelled.
Next: {html.escape(status['next'])}</p>
<h2>Rounds</h2>
<table><tr><th>round</th><th>stage</th><th>asked</th><th>labelled</th><th>defective</th>
<th>fake normals</th></tr>{round_rows}</table>
<p><img src="defects_per_round.png" alt="defects found per round"></p>
<h2>Round {record['round']}: scores</h2>
<p>Red line: the K cut (the {len(selected)} images at or above it are to be labelled).
Blue line: the V cut (the {len(fake)} images at or below it are this round's fake normals,
trained on as normal in the next round).</p>
<p><img src="score_histogram.png" alt="score histogram"></p>
<h2>Round {record['round']}: images to label</h2>
<p>Panels: {panels_text}.</p>
<table><tr><th>rank</th><th>name</th><th>score</th><th>label</th><th>panels</th></tr>
{''.join(top_rows)}</table>
<h2>Fake normals: a random sample to spot-check</h2>
<p>{len(sample)} of {len(fake)}: {sample_names}. If one of them is defective, the
segmentation learner is taught that it is normal: label it (import a mask for it after
it is asked for) or lower V.</p>
<p><img src="fake_normal_sample.png" alt="fake normal sample"></p>
</body></html>
"""
        _write_text(out / "index.html", page)

