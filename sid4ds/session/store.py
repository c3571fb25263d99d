"""A session folder as the commands see it: the manifest, the pool, masks and models.

:class:`SessionStore` is the storage layer under :class:`~sid4ds.LabelingSession`: it reads
and commits the manifest, takes the lock, opens the pool memory-mapped (checksums
verified on first use), reads and writes masks, and saves and loads models. The commands
(:mod:`~sid4ds.session.query`, :mod:`~sid4ds.session.labels`, ...) work through it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.datasets.imageio import read_mask
from sid4ds.rounds import training_set
from sid4ds.session.errors import SessionError
from sid4ds.session.lock import SessionLock
from sid4ds.session.manifest import MANIFEST, LabelRecord, Manifest, read_manifest
from sid4ds.session.models import load_model, save_model
from sid4ds.session.storage import file_sha256, now, png_bytes, sha256, write_bytes, write_json

__all__ = ["POOL_IMAGES", "POOL_META", "PoolView", "SessionScoreCache", "SessionStore",
           "write_mask"]

#: The pool's images, (n, C, H, W) float32, read memory-mapped.
POOL_IMAGES = "pool_images.npy"
#: The pool's names, content keys and source files.
POOL_META = "pool_meta.npz"
POOL_V1 = "pool.npz"  # format version 1: images and metadata in one compressed file


@dataclass
class PoolView:
    """The pool of a session.

    Attributes
    ----------
    images : ndarray of shape (n_images, n_channels, height, width), float32
        Memory-mapped (in memory for format-1 sessions).
    names : list of str
        One per image, in pool order.
    keys : ndarray of shape (n_images,), uint64
        Content keys (:func:`~sid4ds.selection.content_keys`), the tie-break of rankings.
    sources : ndarray of shape (n_images,), str
        The file each image came from ("" for arrays).
    index : dict of str to int
        Row of each name.
    """

    images: np.ndarray
    names: list[str]
    keys: np.ndarray
    sources: np.ndarray
    index: dict[str, int]


class SessionStore:
    """The files of one session folder (see the module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The session folder; its manifest is read (and checked) at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: Manifest = read_manifest(path)
        self._pool: PoolView | None = None

    # ------------------------------------------------------------------ manifest, lock
    def reread(self) -> Manifest:
        """Read the manifest again (another process may have changed it)."""
        self.manifest = read_manifest(self.path)
        return self.manifest

    def commit(self, manifest: Manifest | None = None) -> None:
        """Replace ``manifest.json`` atomically (the last step of every command)."""
        manifest = self.manifest if manifest is None else manifest
        manifest["updated"] = now()
        write_json(self.path / MANIFEST, manifest)
        self.manifest = manifest

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[Manifest]:
        """Hold the session's lock, clean up after killed commands, re-read the manifest."""
        with SessionLock(self.path, command):
            self._clean_leftovers()
            yield self.reread()

    def _clean_leftovers(self) -> None:
        """Remove temporary files of commands that were killed (the lock is held)."""
        for leftover in list(self.path.rglob(".*.tmp-*")) + list(self.path.rglob(".*.old-*")):
            with contextlib.suppress(OSError):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()

    # ------------------------------------------------------------------ pool
    def pool(self) -> PoolView:
        """The pool (:class:`PoolView`); checksums are verified on first use."""
        if self._pool is not None:
            return self._pool
        entry = self.manifest["pool"]
        file = self.verified(entry["file"], entry["sha256"])
        try:
            if "meta" not in entry:  # format version 1: everything in one npz, in memory
                with np.load(file, allow_pickle=False) as data:
                    arrays = {key: data[key] for key in ("images", "names", "keys", "sources")}
            else:
                meta = self.verified(entry["meta"], entry["meta_sha256"])
                with np.load(meta, allow_pickle=False) as data:
                    arrays = {key: data[key] for key in ("names", "keys", "sources")}
                arrays["images"] = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, KeyError) as error:
            raise SessionError(f"cannot read the pool of {self.path}: {error}; restore the "
                               f"session folder from a copy") from None
        expected = (entry["n_images"], entry["n_channels"], entry["height"], entry["width"])
        if arrays["images"].shape != expected or len(arrays["names"]) != expected[0]:
            raise SessionError(f"{file} holds images of shape {arrays['images'].shape}, but "
                               f"the manifest says {expected}; restore the session folder "
                               f"from a copy")
        names = [str(name) for name in arrays["names"]]
        self._pool = PoolView(images=arrays["images"], names=names, keys=arrays["keys"],
                              sources=arrays["sources"],
                              index={name: row for row, name in enumerate(names)})
        return self._pool

    def image_shape(self) -> tuple[int, int]:
        """(height, width) of the session's images."""
        return int(self.manifest["pool"]["height"]), int(self.manifest["pool"]["width"])

    def verified(self, name: str, expected_sha256: str) -> Path:
        """Path of a session file whose checksum matches (read in blocks, any size)."""
        file = self.path / name
        if not file.is_file():
            raise SessionError(f"{file} is missing; restore the session folder from a copy")
        if file_sha256(file) != expected_sha256:
            raise SessionError(f"{file} was changed or damaged (checksum mismatch); restore "
                               f"the session folder from a copy")
        return file

    # ------------------------------------------------------------------ labels
    def write_mask(self, name: str, mask: np.ndarray, *, version: int,
                   round_index: int | None, source: str) -> LabelRecord:
        """Write a mask into the session (see :func:`write_mask`); its label record."""
        return write_mask(self.path, name, mask, version=version, round_index=round_index,
                          source=source)

    def load_mask(self, name: str) -> np.ndarray:
        """The stored mask of a labelled image, (height, width) uint8 in {0, 1}."""
        record = self.manifest["labels"][name]
        file = self.path / record["mask"]
        try:
            data = file.read_bytes()
        except OSError:
            raise SessionError(f"mask file {file} of labelled image {name!r} is missing; "
                               f"import its mask again") from None
        if sha256(data) != record["sha256"]:
            raise SessionError(f"mask file {file} of labelled image {name!r} was changed or "
                               f"damaged; import its mask again with replace")
        return read_mask(io.BytesIO(data))  # the session wrote it: 0 and 255 only

    def labeled_names(self) -> list[str]:
        """Labelled images in labelling order: those no round asked for first (by pool
        order), then round by round."""
        labels = self.manifest["labels"]
        order = {name: position for position, name in
                 enumerate(name for record in self.manifest["rounds"]
                           for name in record["selected"])}
        unasked = [name for name, record in labels.items() if record["round"] is None]
        pool_index = self.pool().index if unasked else {}
        return sorted(labels, key=lambda name: (
            labels[name]["round"] is not None,
            order.get(name, -1) if labels[name]["round"] is not None else pool_index[name]))

    def waiting(self) -> list[str]:
        """Images the last round asked for that have no mask yet."""
        if not self.manifest["rounds"]:
            return []
        last = self.manifest["rounds"][-1]
        return [name for name in last["selected"] if name not in self.manifest["labels"]]

    def fake_normals(self) -> list[str]:
        """The last round's fake normals that are still unlabelled (X_FN of the next round)."""
        if not self.manifest["rounds"]:
            return []
        labels = self.manifest["labels"]
        return [name for name in self.manifest["rounds"][-1]["fake_normals"]
                if name not in labels]

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """X_L ∪ X_FN: labelled images in labelling order, then the fake normals."""
        pool = self.pool()
        labeled = self.labeled_names()
        fake = self.fake_normals()
        rows = [pool.index[name] for name in [*labeled, *fake]]
        height, width = self.image_shape()
        if not rows:
            return pool.images[:0], np.zeros((0, height, width), np.uint8)
        masks = np.stack([self.load_mask(name) for name in labeled]) if labeled else np.zeros(
            (0, height, width), np.uint8)
        return training_set(pool.images[rows[:len(labeled)]], masks,
                            pool.images[rows[len(labeled):]])

    # ------------------------------------------------------------------ models
    def model(self, kind: str, device: Any, verbose: int = 0, *,
              round_index: int | None = None) -> Any | None:
        """The newest model ``kind`` (or the one of ``round_index``), or None."""
        if round_index is None:
            entry = self.manifest["models"].get(kind)
        else:
            entry = self.manifest["model_files"].get(f"{kind}_r{round_index:03d}")
        if entry is None:
            return None
        return load_model(self.path, kind, entry, device, verbose)

    def labels_not_seen(self, kind: str = "S") -> int:
        """Labels imported (or replaced) after model ``kind`` was last saved: labels it was
        not trained on (all of them when there is no such model)."""
        entry = self.manifest["models"].get(kind)
        if entry is None:
            return len(self.manifest["labels"])
        return sum(1 for record in self.manifest["labels"].values()
                   if record["imported"] > entry.get("saved", ""))

    def keep_model(self, kind: str, round_index: int, model: Any) -> None:
        """Save a model trained for ``round_index`` and commit the manifest that names it."""
        entry = save_model(self.path, kind, round_index, model)
        self.manifest["models"][kind] = entry
        self.manifest["model_files"][f"{kind}_r{round_index:03d}"] = entry
        self.commit()

    def score_cache(self) -> SessionScoreCache:
        """Where the session keeps its scores per image (see :class:`SessionScoreCache`)."""
        return SessionScoreCache(self)


def write_mask(root: Path, name: str, mask: np.ndarray, *, version: int,
               round_index: int | None, source: str) -> LabelRecord:
    """Write a mask PNG (0 / 255) atomically into the session folder ``root``.

    Version 1 is ``masks/NAME.png``, version K ``masks/vK/NAME.png``. Returns the label
    record that the manifest keeps for it.
    """
    # names hold no "/" (images are read from one folder), so versions cannot collide
    relative = f"masks/{name}.png" if version == 1 else f"masks/v{version}/{name}.png"
    data = png_bytes((mask > 0).astype(np.uint8) * 255)
    write_bytes(root / relative, data)
    return {"mask": relative, "sha256": sha256(data), "version": version,
            "round": round_index, "defective": bool(mask.any()), "source": source,
            "imported": now("microseconds")}


class SessionScoreCache:
    """The session's scores per image on disk: a :class:`~sid4ds.score_cache.ScoreCache`.

    The round engine's ``score_cache`` for a session: the scores one model (or pair of
    models, for E_sdr) gave are kept in ``scores/<score>_<digest>.npz`` (the images' content
    keys and their scores), named in the manifest (committed with the round that computed
    them), so a later round of unchanged models never scores an image twice, and images
    added to the pool later are scored alone. Entries written by sessions before this
    format (whole-pool arrays) are not read: their images are scored once more.
    """

    def __init__(self, session: SessionStore) -> None:
        self.session = session

    def _entries(self) -> dict[str, str]:
        return self.session.manifest.setdefault("msmr_scores", {})

    def _read(self, entry: str) -> tuple[np.ndarray, np.ndarray]:
        relative = self._entries().get(entry)
        if relative is None or not relative.endswith(".npz"):
            return np.zeros(0, np.uint64), np.zeros(0)
        try:
            with np.load(self.session.path / relative, allow_pickle=False) as data:
                return data["keys"], data["values"]
        except (OSError, ValueError, KeyError):  # a lost file: its images are scored again
            return np.zeros(0, np.uint64), np.zeros(0)

    def lookup(self, score: str, fingerprint: str, keys: np.ndarray) -> np.ndarray:
        kept_keys, kept_values = self._read(f"{score}:{fingerprint}")
        values = np.full(len(keys), np.nan)
        if len(kept_keys):
            order = np.argsort(kept_keys, kind="stable")
            sorted_keys = kept_keys[order]
            where = np.searchsorted(sorted_keys, keys)
            found = where < len(sorted_keys)
            found[found] = sorted_keys[where[found]] == np.asarray(keys)[found]
            values[found] = kept_values[order[where[found]]]
        return values

    def store(self, score: str, fingerprint: str, keys: np.ndarray,
              values: np.ndarray) -> None:
        entry = f"{score}:{fingerprint}"
        kept_keys, kept_values = self._read(entry)
        keys = np.concatenate([kept_keys, np.asarray(keys, np.uint64)])
        values = np.concatenate([kept_values, np.asarray(values, np.float64)])
        keys, last = np.unique(keys[::-1], return_index=True)  # the newest score of a key
        values = values[::-1][last]
        relative = f"scores/{score}_{sha256(entry.encode())[:16]}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, keys=keys, values=values)
        write_bytes(self.session.path / relative, buffer.getvalue())
        self._entries()[entry] = relative
