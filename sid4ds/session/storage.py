"""How a session writes files so that a killed command never leaves half a file.

Every file is written atomically (a temporary file, fsync, rename, fsync of the folder):
readers see the old file or the new one. :class:`NpyWriter` streams images into an
``.npy`` file whose header is written once their count is known. The test hook
(:data:`KILL_POINTS`) lets the tests kill a command at a chosen point.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import io
import json
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from sid4ds.session.errors import SessionError

__all__ = [
    "KILL_ENV",
    "KILL_POINTS",
    "NPY_HEADER_BYTES",
    "NpyWriter",
    "FileBatch",
    "atomic_file",
    "csv_text",
    "file_sha256",
    "fsync_folder",
    "now",
    "png_bytes",
    "replace_folder",
    "sha256",
    "test_hook",
    "to_uint8",
    "write_bytes",
    "write_json",
    "write_text",
]

#: The environment variable of the test hook: a name of :data:`KILL_POINTS`.
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
    "add:after-first-image",
    "add:after-shard",
    "add:before-commit",
    "add:before-marker",
    "prune:after-archive",
    "prune:after-shards",
    "prune:before-commit",
    "prune:after-commit",
)


def test_hook(point: str) -> None:
    """Kill this process at ``point`` when ``SID4DS_TEST_KILL_AT`` names it (tests only)."""
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def now(timespec: str = "seconds") -> str:
    """The UTC time as ISO 8601; ``timespec="microseconds"`` for times that are compared
    (when a label was imported, when a model was saved): commands a second apart happen."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec=timespec)


def fsync_folder(folder: Path) -> None:
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
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
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
    fsync_folder(path.parent)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as handle:
        handle.write(data)


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, (json.dumps(value, indent=1, sort_keys=False) + "\n").encode("utf-8"))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


class FileBatch:
    """Files written in place, each fsynced once; their folders fsynced once at the end.

    For files no reader relies on until a later step names them (a mask before the
    manifest lists it, a file of a staging folder before it is renamed): they need no
    temporary name, and one fsync per folder instead of one per file makes them durable.
    A killed command leaves at most a partial file nothing names, which the same command
    writes again.

    Parameters
    ----------
    root : pathlib.Path
        The folder the relative names are in.
    fresh : bool, default=False
        Start from an empty ``root`` (removed first if it exists): a staging folder.
    """

    def __init__(self, root: Path, *, fresh: bool = False) -> None:
        self.path = root
        if fresh and root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        self._folders = {root}

    def write(self, relative: str, data: bytes) -> None:
        """Write one file at ``relative`` (fsynced)."""
        file = self.path / relative
        if file.parent not in self._folders:
            file.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(file.parent)
        with open(file, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def finish(self) -> Path:
        """Make the new entries of every folder written to durable; the root."""
        for folder in sorted(self._folders, key=lambda entry: len(entry.parts), reverse=True):
            fsync_folder(folder)
        return self.path


def replace_folder(staging: Path, target: Path) -> None:
    """Move a fully written ``staging`` folder to ``target``, replacing what was there
    (a folder or a file), and leave nothing of the old one behind."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    fsync_folder(target.parent)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists() or old.is_symlink():  # ``target`` was a file (or a link)
        old.unlink()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)


#: Bytes reserved for the .npy header of the pool, written once the image count is known.
NPY_HEADER_BYTES = 128


class NpyWriter:
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

