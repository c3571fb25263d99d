"""The pool's images on disk: ``.npy`` shards that are appended to and never rewritten.

A session's pool is a list of shards (format 4), in pool order: ``init`` writes the first
(``pool_images.npy`` with its names, content keys and source files in ``pool_meta.npz``),
every ``add`` writes one more (``pool/NNNNNN.npy`` and ``pool/NNNNNN.meta.npz``), and the
manifest lists them with their checksums. Adding images therefore writes only the new
images; a killed ``add`` leaves a shard the manifest does not name, which the next command
removes. :class:`ShardedImages` reads the shards as one array of shape (n, C, H, W),
lazily: only the rows asked for are read, with plain file reads (no memory map), so
reading a pool of any size holds one chunk in memory at a time.

Why shards rather than one growing file or a chunked array store: appending to one
``.npy`` rewrites its header and risks the images already there if killed; a zarr array
rewrites its last partial chunk on every append and reads slower
(``benchmarks/session_scaling.py`` measures the three).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.ranking.selection import content_keys
from sid4ds.session.errors import SessionError
from sid4ds.session.manifest import BatchRecord, Manifest, ShardEntry
from sid4ds.session.storage import NpyWriter, file_sha256, fsync_folder, sha256, write_bytes

__all__ = [
    "POOL_IMAGES",
    "POOL_META",
    "SHARD_FOLDER",
    "ShardBuilder",
    "ShardedImages",
    "pool_batches",
    "pool_shards",
    "read_shard_meta",
    "shard_files",
]

#: The first shard's images (``init``), (n, C, H, W) float32.
POOL_IMAGES = "pool_images.npy"
#: The first shard's names, content keys and source files.
POOL_META = "pool_meta.npz"
#: The folder of the shards that ``add`` (and ``prune``) write.
SHARD_FOLDER = "pool"


def shard_files(number: int) -> tuple[str, str]:
    """The images and meta file of shard file ``number`` (relative to the session)."""
    return (f"{SHARD_FOLDER}/{number:06d}.npy", f"{SHARD_FOLDER}/{number:06d}.meta.npz")


def pool_shards(manifest: Manifest) -> list[ShardEntry]:
    """The pool's shards, in pool order, for a manifest of format 2 or newer.

    Formats 2 and 3 keep one images file and one meta file: one shard, batch 0.
    """
    pool = manifest["pool"]
    if "shards" in pool:
        return list(pool["shards"])
    return [{"file": pool["file"], "sha256": pool["sha256"], "meta": pool["meta"],
             "meta_sha256": pool["meta_sha256"], "n_images": int(pool["n_images"]),
             "batch": 0}]


def pool_batches(manifest: Manifest) -> list[BatchRecord]:
    """Every batch of images the pool received, oldest first (``init`` is batch 0).

    A session of format 3 or older has one: its ``init``.
    """
    if manifest.get("batches"):
        return list(manifest["batches"])
    settings = manifest["settings"]
    labeled_at_init = sum(record["round"] is None for record in manifest["labels"].values())
    return [{"batch": 0, "command": "init", "time": manifest.get("created", ""),
             "source": settings.get("images", ""), "n_added": int(manifest["pool"]["n_images"]),
             "n_labeled": labeled_at_init, "n_skipped": {}}]


def read_shard_meta(file: Path, keys: tuple[str, ...] = ("names", "keys", "sources")
                    ) -> dict[str, np.ndarray]:
    """``names``, ``keys`` and ``sources`` of a shard's meta file, or those of ``keys``
    (no pickles)."""
    with np.load(file, allow_pickle=False) as data:
        return {key: data[key] for key in keys}


class ShardedImages:
    """Pool images kept in ``.npy`` shards, read as one lazily sliced array.

    Indexing with an int, a slice or an integer array reads only those rows (with plain
    file reads, so no page of the files stays mapped in the process), as float32 of shape
    (k, C, H, W). :class:`~sid4ds.ImagePool` reads it like any lazily sliced array.

    Parameters
    ----------
    files : sequence of path-like
        The shards' ``.npy`` files, in pool order: float32, C order, (n_k, C, H, W) each.
    counts : sequence of int
        Images in each file, as the manifest says (checked against the files).

    Attributes
    ----------
    shape : tuple of int
        (n_images, n_channels, height, width).
    dtype : numpy.dtype
        float32.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sid4ds.session.shards import ShardedImages
    >>> folder = Path(tempfile.mkdtemp())
    >>> parts = [np.full((n, 1, 4, 4), n, np.float32) for n in (3, 2)]
    >>> for number, part in enumerate(parts):
    ...     np.save(folder / f"{number}.npy", part)
    >>> images = ShardedImages([folder / "0.npy", folder / "1.npy"], [3, 2])
    >>> images.shape, images[[4, 0]][:, 0, 0, 0].tolist()
    ((5, 1, 4, 4), [2.0, 3.0])
    """

    ndim = 4

    def __init__(self, files: Sequence[str | os.PathLike[str]], counts: Sequence[int]) -> None:
        self.files = [Path(file) for file in files]
        self.dtype = np.dtype(np.float32)
        self._offsets: list[int] = []
        image_shape: tuple[int, ...] | None = None
        for file, count in zip(self.files, counts, strict=True):
            offset, shape = _npy_layout(file)
            if shape[0] != int(count) or (image_shape is not None
                                          and tuple(shape[1:]) != image_shape):
                raise SessionError(f"{file} holds images of shape {shape}, but the manifest "
                                   f"says {int(count)} images of shape {image_shape}; restore "
                                   f"the session folder from a copy")
            image_shape = tuple(shape[1:])
            self._offsets.append(offset)
        if image_shape is None:
            raise SessionError("a pool needs at least one shard")
        self._starts = np.concatenate([[0], np.cumsum([int(count) for count in counts])])
        self.shape = (int(self._starts[-1]), *image_shape)
        self._row_bytes = int(np.prod(image_shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            row = int(index) + (self.shape[0] if index < 0 else 0)
            if not 0 <= row < self.shape[0]:
                raise IndexError(f"index {index} is out of range for {self.shape[0]} images")
            return self._rows(np.array([row]))[0]
        rows = np.arange(self.shape[0])[index]
        return self._rows(np.atleast_1d(rows))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        images = self[:]
        return images if dtype is None else images.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"ShardedImages({len(self.files)} shards, shape={self.shape})"

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        ascending = bool((np.diff(rows) > 0).all())  # a slice: read straight into `out`
        order = np.arange(len(rows)) if ascending else np.argsort(rows, kind="stable")
        ordered = rows if ascending else rows[order]
        shard_of = np.searchsorted(self._starts, ordered, side="right") - 1
        for shard in np.unique(shard_of):
            positions = np.flatnonzero(shard_of == shard)
            local = ordered[positions] - self._starts[shard]
            with open(self.files[shard], "rb") as handle:
                breaks = np.flatnonzero(np.diff(local) != 1) + 1
                for run, where in zip(np.split(local, breaks), np.split(positions, breaks),
                                      strict=True):
                    if ascending:
                        self._read(handle, shard, int(run[0]),
                                   out[where[0]:where[0] + len(run)])
                    else:
                        block = np.empty((len(run), *self.shape[1:]), dtype=self.dtype)
                        out[order[where]] = self._read(handle, shard, int(run[0]), block)
        return out

    def _read(self, handle: Any, shard: int, start: int, block: np.ndarray) -> np.ndarray:
        """Rows ``start, start + 1, ...`` of a shard into ``block`` (C-contiguous)."""
        handle.seek(self._offsets[shard] + start * self._row_bytes)
        read = handle.readinto(memoryview(block).cast("B"))
        if read != block.nbytes:
            raise SessionError(f"{self.files[shard]} is shorter than its header says; restore "
                               f"the session folder from a copy")
        return block


def _npy_layout(file: Path) -> tuple[int, tuple[int, ...]]:
    """(offset of the data, shape) of a float32 C-order ``.npy`` file."""
    try:
        with open(file, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            shape, fortran, dtype = _header(handle, version)
            offset = handle.tell()
    except (OSError, ValueError) as error:
        raise SessionError(f"cannot read the pool file {file}: {error}; restore the session "
                           f"folder from a copy") from None
    if fortran or dtype != np.dtype("<f4") or len(shape) != 4:
        raise SessionError(f"{file} is not a pool file (float32 images of shape (n, C, H, W) "
                           f"in C order); restore the session folder from a copy")
    return offset, tuple(int(side) for side in shape)


def _header(handle: Any, version: tuple[int, int]) -> tuple[Any, bool, np.dtype]:
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


class ShardBuilder:
    """Stream images into a new shard: its ``.npy`` file, then its meta file.

    The images file is written under a temporary name and renamed when complete, so a
    half-written shard never has a shard's name.

    Parameters
    ----------
    root : pathlib.Path
        The session folder (or the staging folder of ``init``).
    image_file, meta_file : str
        The shard's files, relative to ``root``.
    batch : int
        The batch its images belong to.
    """

    def __init__(self, root: Path, image_file: str, meta_file: str, batch: int) -> None:
        self.root = root
        self.image_file = image_file
        self.meta_file = meta_file
        self.batch = batch
        self.names: list[str] = []
        self.sources: list[str] = []
        self.keys: list[np.ndarray] = []
        target = root / image_file
        target.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        self.writer = NpyWriter(self._temporary)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """(C, H, W) of the images so far, None before the first."""
        return self.writer.shape

    def __len__(self) -> int:
        return len(self.names)

    def append(self, name: str, source: str, image: np.ndarray,
               key: np.ndarray | None = None) -> None:
        """Append one float32 image (C, H, W); ``key`` is its content key when known."""
        self.writer.append(image)
        self.keys.append(content_keys(image[np.newaxis]) if key is None
                         else np.asarray(key, dtype=np.uint64).reshape(1))
        self.names.append(name)
        self.sources.append(source)

    def finish(self) -> ShardEntry:
        """Write the header and the meta file; the shard's manifest entry."""
        self.writer.finish()
        target = self.root / self.image_file
        os.replace(self._temporary, target)
        fsync_folder(target.parent)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, names=np.array(self.names), keys=np.concatenate(self.keys),
                            sources=np.array(self.sources))
        meta = buffer.getvalue()
        write_bytes(self.root / self.meta_file, meta)
        return {"file": self.image_file, "sha256": file_sha256(target), "meta": self.meta_file,
                "meta_sha256": sha256(meta), "n_images": len(self.names), "batch": self.batch}

    def abort(self) -> None:
        """Remove what was written (the shard is not used)."""
        if not self.writer.handle.closed:
            self.writer.handle.close()
        for file in (self._temporary, self.root / self.image_file):
            if file.exists():
                file.unlink()
