"""A session folder as the commands see it: the manifest, the pool, masks and models.

:class:`SessionStore` is the storage layer under :class:`~sid4ds.LabelingSession`: it reads
and commits the manifest, takes the lock, opens the pool memory-mapped (checksums
verified on first use), reads and writes masks, and saves and loads models. The commands
(:mod:`~sid4ds.session.query`, :mod:`~sid4ds.session.labels`, ...) work through it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.datasets.imageio import read_mask
from sid4ds.engine.rounds import training_set
from sid4ds.ranking.score_cache import ScoreTable
from sid4ds.session.errors import SessionError
from sid4ds.session.lock import SessionLock
from sid4ds.session.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    LabelRecord,
    Manifest,
    RoundRecord,
    manifest_marker,
    open_manifest,
)
from sid4ds.session.models import load_model, save_model
from sid4ds.session.records import plain
from sid4ds.session.shards import (
    POOL_IMAGES,
    POOL_META,
    SHARD_FOLDER,
    ShardedImages,
    pool_shards,
    read_shard_meta,
)
from sid4ds.session.state import STATE, StateFile
from sid4ds.session.storage import (
    FileBatch,
    file_sha256,
    now,
    png_bytes,
    sha256,
    test_hook,
    write_bytes,
    write_json,
)

__all__ = ["POOL_IMAGES", "POOL_META", "PoolIndex", "PoolView", "SessionScoreCache",
           "SessionStore", "asked_names", "write_mask"]

POOL_V1 = "pool.npz"  # format version 1: images and metadata in one compressed file


@dataclass
class PoolIndex:
    """What a session knows of each pool image, without reading any image.

    Attributes
    ----------
    names : list of str
        One per image, in pool order.
    keys : ndarray of shape (n_images,), uint64
        Content keys (:func:`~sid4ds.ranking.selection.content_keys`), the tie-break of rankings.
    batches : ndarray of shape (n_images,), int
        The batch each image came with (0: ``init``, then one per ``add``).
    index : dict of str to int
        Row of each name.
    read_sources : callable
        Returns :attr:`sources`, read when first used.
    sources : ndarray of shape (n_images,), str
        The file each image came from ("" for arrays).
    """

    names: list[str]
    keys: np.ndarray
    batches: np.ndarray
    index: dict[str, int]
    read_sources: Callable[[], np.ndarray] = field(repr=False)

    @functools.cached_property
    def sources(self) -> np.ndarray:
        """The file each image came from ("" for arrays), (n_images,) str."""
        return self.read_sources()


@dataclass
class PoolView(PoolIndex):
    """The pool of a session: :class:`PoolIndex` and the images.

    Attributes
    ----------
    images : array-like of shape (n_images, n_channels, height, width), float32
        Read lazily from the session's shards (:class:`~sid4ds.session.shards.ShardedImages`;
        in memory for format-1 sessions); indexing reads only the rows asked for.
    """

    images: Any = None


def _leftovers(folder: Path | str, depth: int = 2) -> list[Path]:
    """The temporary files and folders (``.NAME.tmp-PID``, ``.NAME.old-PID``) in
    ``folder`` and the folders inside it, ``depth`` levels deep. Commands write in place
    only there (the session's own files, ``masks/``, ``shards/``, ``models/``, ``scores/``);
    a deeper folder (``rounds/NNN/images``) is written whole under a temporary name and
    renamed, so a killed command leaves the temporary folder itself, found by its name."""
    found: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and (".tmp-" in entry.name
                                               or ".old-" in entry.name):
                found.append(Path(entry.path))
            elif depth > 1 and entry.is_dir(follow_symlinks=False):
                found += _leftovers(entry.path, depth - 1)
    return found


class SessionStore:
    """The files of one session folder (see the module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The session folder; its manifest is read (and checked) at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest, self._state = open_manifest(path)
        self._pool: PoolView | None = None
        self._index: PoolIndex | None = None
        self._as_stored = True  # self.manifest is what the state file holds, unchanged

    # ------------------------------------------------------------------ manifest, lock
    def reread(self) -> Manifest:
        """Read the manifest again (another process may have changed it); when the state
        file says nothing changed since this store read or wrote it, the manifest in
        memory is it, and nothing is read."""
        if self._as_stored and self._state is not None and self._state.unchanged():
            return self.manifest
        manifest, self._state = open_manifest(self.path)
        self._as_stored = True
        if manifest["pool"] != self.manifest["pool"]:
            self.forget_pool()
        self.manifest = manifest
        return self.manifest

    def change_last_round(self, key: str, value: Any) -> None:
        """Set ``key`` of the last round's record (the one change of a stored round; the
        next :meth:`commit` writes it)."""
        rounds = self.manifest["rounds"]
        rounds[-1][key] = value  # type: ignore[literal-required]
        if self._state is not None:
            self._state.round_changed(len(rounds) - 1)

    def whole_manifest(self) -> Manifest:
        """The manifest with every label record and round read whole (the commands read
        a format-4 session's labels by the row and a round's scores when used:
        :class:`~sid4ds.session.records.ReadOnDemand`)."""
        return plain(self.manifest)

    def commit(self, manifest: Manifest | None = None) -> None:
        """Write the manifest atomically (the last step of every command): what changed,
        in one transaction of ``session.db`` (format 4); ``manifest.json`` replaced whole
        (format 3 and older). A format-4 manifest of a format-3 session (the first
        ``add``) moves it to ``session.db``: the new ``manifest.json`` marker, replaced
        last, is the step that makes it format 4."""
        manifest = self.manifest if manifest is None else manifest
        manifest["updated"] = now()
        if self._state is not None:
            self._state.write(manifest)
        elif manifest["format_version"] >= FORMAT_VERSION:
            state = self.path / STATE
            temporary = state.with_name(f".{STATE}.tmp-{os.getpid()}")
            temporary.unlink(missing_ok=True)
            StateFile.create(temporary, manifest)
            os.replace(temporary, state)
            test_hook("add:before-marker")
            write_json(self.path / MANIFEST, manifest_marker(manifest))
            self._state = StateFile(state)
            self._state.read()
        else:
            write_json(self.path / MANIFEST, manifest)
        self.manifest = manifest
        self._as_stored = True

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[Manifest]:
        """Hold the session's lock, clean up after killed commands, re-read the manifest."""
        with SessionLock(self.path, command) as lock:
            # a command that ended without finishing left a stale lock: only then can
            # temporary files be left in the folders (a finished command removes its own)
            self._clean_leftovers(depth=2 if lock.replaced_stale else 1)
            manifest = self.reread()
            self._clean_unnamed_shards()
            self._as_stored = False  # the command changes it; commit() writes it
            yield manifest

    def _clean_leftovers(self, depth: int = 2) -> None:
        """Remove temporary files of commands that were killed (the lock is held)."""
        for leftover in _leftovers(self.path, depth):
            with contextlib.suppress(OSError):
                if leftover.is_dir():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()

    def _clean_unnamed_shards(self) -> None:
        """Remove shard files the manifest does not name: written by a killed ``add`` or
        ``prune``, or replaced by a ``prune`` killed before it removed them."""
        folder = self.path / SHARD_FOLDER
        if not folder.is_dir():
            return
        named: set[str] = set()
        if "meta" in self.manifest["pool"] or "shards" in self.manifest["pool"]:
            named = {name for shard in pool_shards(self.manifest)
                     for name in (shard["file"], shard["meta"])}
        for file in folder.iterdir():
            if f"{SHARD_FOLDER}/{file.name}" not in named and file.is_file():
                with contextlib.suppress(OSError):
                    file.unlink()

    # ------------------------------------------------------------------ pool
    def pool(self) -> PoolView:
        """The pool (:class:`PoolView`); checksums of every file are verified on first use."""
        if self._pool is not None:
            return self._pool
        index = self.pool_index()
        entry = self.manifest["pool"]
        if "meta" not in entry and "shards" not in entry:  # format 1: read whole, in memory
            images = self._v1_arrays()["images"]
        else:
            shards = pool_shards(self.manifest)
            files = [self.verified(shard["file"], shard["sha256"]) for shard in shards]
            images = ShardedImages(files, [shard["n_images"] for shard in shards])
        expected = (entry["n_images"], entry["n_channels"], entry["height"], entry["width"])
        if tuple(images.shape) != expected:
            raise SessionError(f"the pool files of {self.path} hold images of shape "
                               f"{tuple(images.shape)}, but the manifest says {expected}; "
                               f"restore the session folder from a copy")
        self._pool = PoolView(names=index.names, keys=index.keys, batches=index.batches,
                              index=index.index, read_sources=lambda: index.sources,
                              images=images)
        return self._pool

    def pool_index(self) -> PoolIndex:
        """Names, content keys, sources and batches of the pool images (no image is read;
        the checksums of the meta files are verified)."""
        if self._pool is not None:
            return self._pool
        if self._index is not None:
            return self._index
        entry = self.manifest["pool"]
        if "meta" not in entry and "shards" not in entry:
            arrays = self._v1_arrays()
            batches = np.zeros(len(arrays["names"]), dtype=np.int64)

            def read_sources() -> np.ndarray:
                return arrays["sources"]
        else:
            parts, batch_parts, metas = [], [], []
            for shard in pool_shards(self.manifest):
                meta = self.verified(shard["meta"], shard["meta_sha256"])
                part = self._shard_meta(meta, ("names", "keys"))
                if len(part["names"]) != shard["n_images"]:
                    raise SessionError(f"{meta} lists {len(part['names'])} images but the "
                                       f"manifest says {shard['n_images']}; restore the "
                                       f"session folder from a copy")
                parts.append(part)
                metas.append(meta)
                batch_parts.append(np.full(shard["n_images"], shard["batch"], np.int64))
            arrays = {key: np.concatenate([part[key] for part in parts])
                      for key in ("names", "keys")}
            batches = np.concatenate(batch_parts)

            def read_sources() -> np.ndarray:  # when first used: most commands do not
                return np.concatenate([self._shard_meta(meta, ("sources",))["sources"]
                                       for meta in metas])
        names = arrays["names"].tolist()  # str, 5x quicker than one str() each
        if len(names) != self.manifest["pool"]["n_images"]:
            raise SessionError(f"the pool of {self.path} lists {len(names)} images but the "
                               f"manifest says {self.manifest['pool']['n_images']}; restore "
                               f"the session folder from a copy")
        self._index = PoolIndex(names=names, keys=arrays["keys"], batches=batches,
                                index=dict(zip(names, range(len(names)), strict=True)),
                                read_sources=read_sources)
        return self._index

    @staticmethod
    def _shard_meta(meta: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        try:
            return read_shard_meta(meta, keys)
        except (OSError, ValueError, KeyError) as error:
            raise SessionError(f"cannot read {meta}: {error}; restore the session folder "
                               f"from a copy") from None

    def _v1_arrays(self) -> dict[str, np.ndarray]:
        entry = self.manifest["pool"]
        file = self.verified(entry["file"], entry["sha256"])
        try:
            with np.load(file, allow_pickle=False) as data:
                return {key: data[key] for key in ("images", "names", "keys", "sources")}
        except (OSError, ValueError, KeyError) as error:
            raise SessionError(f"cannot read the pool of {self.path}: {error}; restore the "
                               f"session folder from a copy") from None

    def forget_pool(self) -> None:
        """Drop the pool read so far (after a command changed it)."""
        self._pool = None
        self._index = None

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
                   round_index: int | None, source: str,
                   batch: FileBatch | None = None) -> LabelRecord:
        """Write a mask into the session (see :func:`write_mask`); its label record."""
        return write_mask(self.path, name, mask, version=version, round_index=round_index,
                          source=source, batch=batch)

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
                           for name in asked_names(record))}
        unasked = [name for name, record in labels.items() if record["round"] is None]
        pool_index = self.pool_index().index if unasked else {}
        return sorted(labels, key=lambda name: (
            labels[name]["round"] is not None,
            order.get(name, -1) if labels[name]["round"] is not None else pool_index[name]))

    def waiting(self) -> list[str]:
        """Images the last round asked for (ranked, then audit) that have no mask yet."""
        if not self.manifest["rounds"]:
            return []
        last = self.manifest["rounds"][-1]
        return [name for name in asked_names(last) if name not in self.manifest["labels"]]

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

    def keep_model(self, kind: str, round_index: int, model: Any, **extra: Any) -> None:
        """Save a model trained for ``round_index`` and commit the manifest that names it;
        ``extra`` (JSON values) is kept in its manifest entry."""
        entry = {**save_model(self.path, kind, round_index, model), **extra}
        self.manifest["models"][kind] = entry
        self.manifest["model_files"][f"{kind}_r{round_index:03d}"] = entry
        self.commit()

    def score_cache(self) -> SessionScoreCache:
        """Where the session keeps its scores per image (see :class:`SessionScoreCache`)."""
        return SessionScoreCache(self)


def asked_names(record: RoundRecord) -> list[str]:
    """The images a round asked to label: its ranked batch, then its random audit (if any).

    Examples
    --------
    >>> from sid4ds.session.store import asked_names
    >>> asked_names({"selected": ["a", "b"], "audit": ["c"]}), asked_names({"selected": ["a"]})
    (['a', 'b', 'c'], ['a'])
    """
    return [*record["selected"], *record.get("audit", [])]


def write_mask(root: Path, name: str, mask: np.ndarray, *, version: int,
               round_index: int | None, source: str,
               batch: FileBatch | None = None) -> LabelRecord:
    """Write a mask PNG (0 / 255) into the session folder ``root``: atomically, or into
    ``batch`` (made durable by ``batch.finish()`` before the manifest names it).

    Version 1 is ``masks/NAME.png``, version K ``masks/vK/NAME.png``: a new version never
    overwrites a file the manifest names. Returns the label record that the manifest keeps
    for it.
    """
    # names hold no "/" (images are read from one folder), so versions cannot collide
    relative = f"masks/{name}.png" if version == 1 else f"masks/v{version}/{name}.png"
    data = png_bytes((mask > 0).astype(np.uint8) * 255)
    if batch is None:
        write_bytes(root / relative, data)
    else:
        batch.write(relative, data)
    return {"mask": relative, "sha256": sha256(data), "version": version,
            "round": round_index, "defective": bool(mask.any()), "source": source,
            "imported": now("microseconds")}


class SessionScoreCache:
    """The session's :class:`~sid4ds.ranking.score_cache.ScoreCache`: scores per image on disk.

    Each score of one fingerprint (:mod:`sid4ds.ranking.score_cache`) has one file,
    ``scores/<score>_<digest>_<n>.npz`` (content keys and scores), named in the manifest's
    ``score_files`` with its checksum. An update writes the grown table under a new name
    and commits the manifest at once, so a killed query keeps what it scored; the file it
    replaces is removed after. Only the newest E_sdr (and S's mean probability, kept
    beside it) is kept (S changes every round that has new labels); every E_msmr is (M
    rarely changes, and its scores break ties). A file that is missing or was changed
    counts as empty: its scores are computed again.
    """

    def __init__(self, session: SessionStore) -> None:
        self.session = session
        self._tables: dict[str, ScoreTable] = {}

    def _entries(self) -> dict[str, dict[str, Any]]:
        return self.session.manifest.setdefault("score_files", {})

    def _table(self, model: str) -> ScoreTable:
        if model not in self._tables:
            entry = self._entries().get(model)
            table = ScoreTable()
            if entry is not None:
                file = self.session.path / entry["file"]
                with contextlib.suppress(OSError, ValueError, KeyError):
                    data = file.read_bytes()
                    if sha256(data) == entry["sha256"]:
                        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                            table = ScoreTable(arrays["keys"], arrays["scores"])
            self._tables[model] = table
        return self._tables[model]

    def lookup(self, score: str, fingerprint: str, keys: np.ndarray) -> np.ndarray:
        return self._table(f"{score}:{fingerprint}").lookup(keys)

    def store(self, score: str, fingerprint: str, keys: np.ndarray,
              values: np.ndarray) -> None:
        model = f"{score}:{fingerprint}"
        table = self._table(model).merged(keys, values)
        entries = self._entries()
        digest = fingerprint
        version = int(entries.get(model, {}).get("version", 0)) + 1
        relative = f"scores/{score}_{digest[:16]}_{version}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, keys=table.keys, scores=table.scores)
        write_bytes(self.session.path / relative, buffer.getvalue())
        replaced = [entry["file"] for key, entry in entries.items()
                    if key == model or (score != "E_msmr" and key.startswith(f"{score}:"))]
        for key in [key for key in entries
                    if score != "E_msmr" and key.startswith(f"{score}:")]:
            del entries[key]
            self._tables.pop(key, None)
        entries[model] = {"file": relative, "sha256": sha256(buffer.getvalue()),
                          "version": version, "n_images": len(table)}
        self._tables[model] = table
        self.session.commit()
        for old in replaced:
            with contextlib.suppress(OSError):
                (self.session.path / old).unlink()
