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
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.datasets.imageio import read_mask
from sid4ds.session.errors import SessionError
from sid4ds.session.lock import SessionLock
from sid4ds.session.manifest import MANIFEST, LabelRecord, Manifest, read_manifest
from sid4ds.session.models import load_model, save_model
from sid4ds.session.storage import file_sha256, now, png_bytes, sha256, write_bytes, write_json

__all__ = ["POOL_IMAGES", "POOL_META", "MsmrScoreStore", "PoolView", "SessionStore", "write_mask"]

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
        masks = [self.load_mask(name) for name in labeled]
        masks += [np.zeros((height, width), np.uint8)] * len(fake)
        return pool.images[rows], np.stack(masks)

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

    def keep_model(self, kind: str, round_index: int, model: Any, **extra: Any) -> None:
        """Save a model trained for ``round_index`` and commit the manifest that names it;
        ``extra`` (JSON values) is kept in its manifest entry."""
        entry = {**save_model(self.path, kind, round_index, model), **extra}
        self.manifest["models"][kind] = entry
        self.manifest["model_files"][f"{kind}_r{round_index:03d}"] = entry
        self.commit()

    def msmr_store(self) -> MsmrScoreStore:
        """Where the E_msmr scores of the session's M are kept (see :class:`MsmrScoreStore`)."""
        return MsmrScoreStore(self)


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


class MsmrScoreStore(MutableMapping[str, np.ndarray]):
    """E_msmr per pool image, by the fingerprint of the M that computed them, on disk.

    The session's ``msmr_cache`` for :class:`~sid4ds.rounds.SID4DSRounds`: scores are
    written to ``scores/E_msmr_<fingerprint>.npy`` and named in the manifest (committed with
    the round that computed them), so a later cold-start round of an unchanged M reuses
    them instead of scoring the pool again.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def _entries(self) -> dict[str, str]:
        return self.store.manifest.setdefault("msmr_scores", {})

    def __getitem__(self, fingerprint: str) -> np.ndarray:
        relative = self._entries()[fingerprint]
        try:
            return np.load(self.store.path / relative, allow_pickle=False)
        except (OSError, ValueError):
            raise KeyError(fingerprint) from None

    def __setitem__(self, fingerprint: str, scores: np.ndarray) -> None:
        relative = f"scores/E_msmr_{fingerprint[:16]}.npy"
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(scores, dtype=np.float64), allow_pickle=False)
        write_bytes(self.store.path / relative, buffer.getvalue())
        self._entries()[fingerprint] = relative

    def __delitem__(self, fingerprint: str) -> None:
        del self._entries()[fingerprint]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries()))

    def __len__(self) -> int:
        return len(self._entries())

    def get(self, fingerprint: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[fingerprint]
        except KeyError:
            return default
