"""Image pools that need not fit in memory, and chunked (parallel) work over them.

Every sid4ds function that reads a pool of images accepts, besides an in-memory array:

- an ``np.memmap`` (or an ``.npy`` file opened with ``np.load(path, mmap_mode="r")``), or
  any other lazily sliced array with ``shape`` and ``__getitem__`` (h5py, zarr, dask);
- a sequence of image file paths (png, jpg, bmp, tif), read when needed;
- a ``torch.utils.data.Dataset`` whose items are images (or tuples whose first element is
  the image);
- an :class:`ImagePool` wrapping any of these.

Such pools are read in chunks; only one chunk per worker is in memory at a time. In-memory
arrays are validated and converted once, as before.

:func:`map_chunks` runs a per-chunk function over a pool, serially or through joblib
(``n_jobs``, or a ``joblib.parallel_config`` context such as the Dask backend); the chunk
boundaries never depend on ``n_jobs``, so the result is the same however it was computed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import IMAGE_SHAPES, check_images
from sid4ds.datasets.imageio import read_image

__all__ = ["ImagePool", "as_pool", "channel_statistics", "chunk_size_for", "is_path_sequence",
           "map_chunks"]

# Largest chunk read from a pool at once: 2**22 float32 values (16 MiB).
CHUNK_VALUES = 2**22
# Linux maps up to this many bytes of cached file pages around a faulting page.
FAULT_AROUND_BYTES = 65536


def _release_pages(array: np.memmap, start: int, stop: int) -> None:
    """Unmap the file pages of rows ``start:stop`` of a memmap from this process.

    Pages read through a memory map count in the process's resident memory until they are
    unmapped, so streaming a memmapped pool would otherwise grow RSS to the pool's size.
    The data stay in the page cache; reading the rows again maps them back. Copy-on-write
    maps (mode "c") are left alone: dropping their pages would lose changes.
    """
    mapping = getattr(array, "_mmap", None)
    if mapping is None or array.mode == "c" or not hasattr(mapping, "madvise"):
        return
    try:
        import mmap

        base = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
        row_bytes = array.strides[0]
        first = array.ctypes.data + start * row_bytes - base
        last = array.ctypes.data + stop * row_bytes - base
        # a page fault also maps the cached pages around it (Linux fault-around, 64 KiB
        # windows), so release whole windows: scattered rows leave no neighbours behind
        window = max(mmap.PAGESIZE, FAULT_AROUND_BYTES)
        first = (first // window) * window
        length = min(len(mapping), -(-last // window) * window) - first
        if length > 0:
            mapping.madvise(mmap.MADV_DONTNEED, first, length)
    except (AttributeError, ValueError, OSError):  # pragma: no cover - platform dependent
        return


def is_path_sequence(source: Any) -> bool:
    """True for a non-empty sequence of image file paths (str or path-like), not a str."""
    if isinstance(source, (str, os.PathLike)):
        return False
    if not isinstance(source, Sequence) or len(source) == 0:
        return False
    return all(isinstance(item, (str, os.PathLike)) for item in source)


def _is_torch_dataset(source: Any) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(source, Dataset)


def _is_lazy_array(source: Any) -> bool:
    """An np.memmap, or a non-numpy array-like that slices lazily (h5py, zarr, dask)."""
    if isinstance(source, np.memmap):
        return True
    if isinstance(source, np.ndarray) or hasattr(source, "detach"):
        return False
    shape = getattr(source, "shape", None)
    return shape is not None and len(shape) in (3, 4) and hasattr(source, "__getitem__")


class ImagePool:
    """A pool of images read in chunks: an array, a memmap, image paths or a Dataset.

    Parameters
    ----------
    source : array-like, np.memmap, sequence of str or os.PathLike, or torch Dataset
        The images, of shape (n_samples, height, width) or (n_samples, n_channels, height,
        width) once read; floats in [0, 1], uint8 or uint16 (see :func:`as_pool`).
    name : str, default="X"
        Argument name used in error messages.
    mode : {None, "L", "RGB"}, default=None
        For image paths: PIL mode to convert to; ``None`` keeps grayscale files at one
        channel and colour files at three.

    Attributes
    ----------
    n_samples : int
        Number of images.
    image_shape : tuple of int
        ``(n_channels, height, width)`` of every image.
    lazy : bool
        ``False`` when the images are held in memory (an ndarray or tensor was given).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sid4ds.datasets.pool import ImagePool
    >>> path = Path(tempfile.mkdtemp()) / "pool.npy"
    >>> np.save(path, np.zeros((10, 16, 16), dtype=np.uint8))
    >>> pool = ImagePool(np.load(path, mmap_mode="r"))
    >>> len(pool), pool.image_shape, pool.lazy
    (10, (1, 16, 16), True)
    >>> pool[[0, 3]].shape, pool[[0, 3]].dtype
    ((2, 1, 16, 16), dtype('float32'))
    """

    def __init__(self, source: Any, *, name: str = "X", mode: str | None = None) -> None:
        if mode not in (None, "L", "RGB"):
            raise ValueError(f"mode must be None, 'L' or 'RGB'; got {mode!r}")
        self.name = name
        self.mode = mode
        if isinstance(source, ImagePool):  # the same images under this name
            self._take(source, source._source, source._indices, source.n_samples)
            self.name = name
            return
        self._indices: np.ndarray | None = None
        if is_path_sequence(source):
            self._kind = "paths"
            self._source: Any = [Path(path) for path in source]
            n_samples = len(self._source)
        elif _is_torch_dataset(source):
            self._kind = "dataset"
            self._source = source
            try:
                n_samples = len(source)
            except TypeError as error:
                raise TypeError(
                    f"{name} is a torch Dataset without __len__; sid4ds needs map-style "
                    f"datasets whose length is known (not an IterableDataset)"
                ) from error
        elif _is_lazy_array(source):
            self._kind = "array"
            self._source = source
            n_samples = int(source.shape[0])
        else:
            self._kind = "memory"
            self._source = check_images(source, name=name)
            n_samples = len(self._source)
        if n_samples == 0:
            raise ValueError(f"{name} is empty; pass at least one image")
        self.n_samples = n_samples
        self.lazy = self._kind != "memory"
        first = self._read(np.array([0]))
        self.image_shape = tuple(int(side) for side in first.shape[1:])

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self.n_samples

    def _source_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self._indices is None else self._indices[rows]

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Validated float32 images of pool ``rows`` (sorted or not), (k, C, H, W)."""
        source_rows = self._source_rows(rows)
        if self._kind == "memory":
            if len(rows) and np.all(np.diff(source_rows) == 1):
                return self._source[int(source_rows[0]) : int(source_rows[-1]) + 1]
            return self._source[source_rows]
        where = f"{self.name}[{int(rows[0])}]" if len(rows) == 1 else self.name
        if self._kind == "paths":
            images = []
            for row in source_rows:
                path = self._source[int(row)]
                try:
                    images.append(read_image(path, self.mode))
                except (OSError, ValueError) as error:
                    raise ValueError(f"{self.name}: cannot read image {path}: {error}") from None
            shapes = {image.shape for image in images}
            if len(shapes) > 1:
                raise ValueError(
                    f"{self.name}: images of different sizes {sorted(shapes)} in one pool; "
                    f"resize them to one size first (sid4ds.datasets.resize)"
                )
            chunk = np.stack(images)
        elif self._kind == "dataset":
            items = []
            for row in source_rows:
                item = self._source[int(row)]
                if isinstance(item, (tuple, list)):
                    item = item[0]
                if hasattr(item, "detach"):
                    item = item.detach().cpu().numpy()
                items.append(np.asarray(item))
            chunk = np.stack(items)
        else:
            order = np.argsort(source_rows, kind="stable")
            sorted_rows = source_rows[order]
            if len(sorted_rows) and np.all(np.diff(sorted_rows) == 1):
                chunk = np.array(self._source[int(sorted_rows[0]) : int(sorted_rows[-1]) + 1])
            else:
                chunk = np.asarray(self._source[sorted_rows])
            if isinstance(self._source, np.memmap) and self._source.strides[0] > 0:
                # runs of consecutive rows: scattered reads (training batches) too
                for run in np.split(sorted_rows, np.flatnonzero(np.diff(sorted_rows) != 1) + 1):
                    if len(run):
                        _release_pages(self._source, int(run[0]), int(run[-1]) + 1)
            restore = np.empty_like(order)
            restore[order] = np.arange(len(order))
            chunk = chunk[restore]
        images = check_images(chunk, name=where)
        expected = getattr(self, "image_shape", None)
        if expected is not None and tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"{where}: images of shape {tuple(images.shape[1:])} in a pool whose first "
                f"image has shape {expected}; every image must have the same shape "
                f"{IMAGE_SHAPES}"
            )
        return images

    def __getitem__(self, index: Any) -> np.ndarray:
        """Images at ``index`` (int, slice or integer array) as float32 (k, C, H, W).

        An int gives one image of shape (C, H, W), as indexing an array would.
        """
        if isinstance(index, (int, np.integer)):
            row = int(index) + (self.n_samples if index < 0 else 0)
            if not 0 <= row < self.n_samples:
                raise IndexError(f"index {index} is out of range for a pool of "
                                 f"{self.n_samples} images")
            return self._read(np.array([row]))[0]
        rows = np.arange(self.n_samples)[index]
        if rows.ndim != 1:
            raise IndexError(f"pool index must be an int, a slice or a 1-D array; got {index!r}")
        if len(rows) == 0:
            return np.empty((0, *self.image_shape), dtype=np.float32)
        return self._read(rows)

    def subset(self, indices: Any) -> ImagePool:
        """A pool of the images at ``indices``, still read lazily (no copy of lazy data).

        Parameters
        ----------
        indices : slice or array-like of int
            Rows of this pool, in the order the new pool should have.

        Returns
        -------
        pool : ImagePool
        """
        rows = np.arange(self.n_samples)[indices]
        view = ImagePool.__new__(ImagePool)
        if self._kind == "memory":
            view._take(self, self._source[rows], None, len(rows))
        else:
            view._take(self, self._source, self._source_rows(rows), len(rows))
        return view

    def _take(self, other: ImagePool, source: Any, indices: np.ndarray | None,
              n_samples: int) -> None:
        """Become a view of ``other``'s images: ``source`` read at ``indices``."""
        self.name, self.mode, self._kind = other.name, other.mode, other._kind
        self.lazy, self.image_shape = other.lazy, other.image_shape
        self._source, self._indices, self.n_samples = source, indices, n_samples

    def to_numpy(self) -> np.ndarray:
        """All images in memory, float32 of shape (n_samples, n_channels, height, width)."""
        if self._kind == "memory":
            return self._source
        return self[:]

    def chunk_bounds(self, chunk_size: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of consecutive chunks of ``chunk_size`` images.

        Parameters
        ----------
        chunk_size : int
            Images per chunk (the last chunk may hold fewer).

        Returns
        -------
        bounds : list of (int, int)
        """
        return [(start, min(start + chunk_size, self.n_samples))
                for start in range(0, self.n_samples, chunk_size)]

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(rows, images)`` over the pool, ``chunk_size`` images at a time.

        Parameters
        ----------
        chunk_size : int
            Images per chunk.

        Yields
        ------
        rows : slice
            Positions of the chunk in the pool.
        images : ndarray of shape (n_chunk, n_channels, height, width), float32
        """
        for start, stop in self.chunk_bounds(chunk_size):
            yield slice(start, stop), self._read(np.arange(start, stop))

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        source = state["_source"]
        if isinstance(source, np.memmap) and getattr(source, "filename", None):
            # reopen the file in the worker instead of shipping its content
            state["_source"] = None
            state["_memmap"] = {"filename": str(source.filename), "dtype": source.dtype.str,
                                "shape": source.shape, "offset": int(source.offset),
                                "order": "F" if source.flags.f_contiguous
                                and not source.flags.c_contiguous else "C"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        memmap = state.pop("_memmap", None)
        self.__dict__.update(state)
        if memmap is not None:
            self._source = np.memmap(memmap["filename"], dtype=np.dtype(memmap["dtype"]),
                                     mode="r", shape=memmap["shape"],
                                     offset=memmap["offset"], order=memmap["order"])

    def __repr__(self) -> str:
        return (f"ImagePool({self._kind}, n_samples={self.n_samples}, "
                f"image_shape={self.image_shape})")


def as_pool(X: Any, *, name: str = "X") -> ImagePool:
    """Wrap images of any accepted kind in an :class:`ImagePool` (a pool stays itself).

    Parameters
    ----------
    X : array-like, np.memmap, sequence of image paths, torch Dataset or ImagePool
        See the module docstring.
    name : str, default="X"
        Argument name used in error messages.

    Returns
    -------
    pool : ImagePool

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.datasets.pool import as_pool
    >>> as_pool(np.zeros((3, 8, 8), dtype=np.float32))
    ImagePool(memory, n_samples=3, image_shape=(1, 8, 8))
    """
    if isinstance(X, ImagePool):
        return X
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            f"{name} is a single path {str(X)!r}; pass a list of image paths, an array or "
            f"a memmap (np.load(path, mmap_mode='r') for an .npy file)"
        )
    return ImagePool(X, name=name)


def channel_statistics(pool: ImagePool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (at least 1e-3) of a pool, read in chunks.

    Two passes in float64, so the result does not depend on how the pool is stored.

    Returns
    -------
    mean, std : ndarray of shape (n_channels,), float32
    """
    size = chunk_size_for(pool, 1)
    count = pool.n_samples * pool.image_shape[1] * pool.image_shape[2]
    total = sum(images.sum(axis=(0, 2, 3), dtype=np.float64)
                for _, images in pool.iter_chunks(size))
    mean = total / count
    squares = sum(((images - mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3))
                  for _, images in pool.iter_chunks(size))
    std = np.sqrt(squares / count)
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def chunk_size_for(pool: ImagePool, batch_size: int, n_jobs: int = 1) -> int:
    """Images per chunk: a multiple of ``batch_size`` that holds at most ~16 MiB of float32
    values (at least one batch) and gives every job a few chunks."""
    per_image = math.prod(pool.image_shape)
    batches_in_budget = max(1, CHUNK_VALUES // max(1, per_image * batch_size))
    if n_jobs > 1:
        batches_needed = math.ceil(pool.n_samples / batch_size)
        batches_in_budget = min(batches_in_budget,
                                max(1, math.ceil(batches_needed / (4 * n_jobs))))
    return batch_size * batches_in_budget


def _parallel_plan(n_jobs: int | None) -> tuple[int, str]:
    """(number of parallel workers, name of the active joblib backend class)."""
    import joblib
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return int(joblib.effective_n_jobs(n_jobs)), type(backend).__name__


def _torch_threads_per_task(workers: int, backend: str) -> int | None:
    """Torch threads for each chunk task, so that the tasks share the cores.

    Local worker processes (loky, multiprocessing) split this machine's cores; on a Dask
    cluster each task slot is meant for one core, so each task gets one thread; under the
    threading backend the thread count is process-wide and is left alone.
    """
    if backend in ("LokyBackend", "MultiprocessingBackend"):
        return max(1, (os.cpu_count() or 1) // max(1, workers))
    if "Dask" in backend:
        return 1
    return None


class _SharedFunction:
    """A chunk function that joblib's Dask backend ships once per call, not once per task.

    The backend scatters an argument to the cluster once when Dask sizes it above 1 kB;
    a bound method or partial reports its own few bytes, not the model it carries, so it
    would be pickled, sent and unpickled (model included) with every chunk.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    def __sizeof__(self) -> int:
        return 1 << 20


def _run_chunk(function: Callable[..., Any], pool: ImagePool, start: int, stop: int,
               extras: tuple[np.ndarray, ...], n_threads: int | None) -> Any:
    """Worker side: read one chunk and apply ``function`` with ``n_threads`` torch threads."""
    import torch

    previous = torch.get_num_threads()
    if n_threads is not None and n_threads != previous:
        torch.set_num_threads(n_threads)
    try:
        return function(pool[start:stop], *extras)
    finally:
        if n_threads is not None and n_threads != previous:
            torch.set_num_threads(previous)


def map_chunks(
    function: Callable[..., Any],
    pool: ImagePool,
    *,
    batch_size: int,
    n_jobs: int | None = None,
    extras: Sequence[np.ndarray] = (),
    progress: str | None = None,
) -> list[Any]:
    """Apply ``function`` to consecutive chunks of ``pool``; return the results in order.

    Parameters
    ----------
    function : callable
        ``function(images)`` with images float32 of shape (k, C, H, W); must be picklable
        for ``n_jobs`` other than 1 (a top-level function, a bound method of an estimator,
        a ``functools.partial`` of either).
    pool : ImagePool
    batch_size : int
        The images ``function`` processes at once; chunk sizes are multiples of it, so its
        batches are the same whatever ``n_jobs`` is.
    extras : sequence of ndarray of shape (n_samples, ...), optional
        Per-image arrays (e.g. regions) whose rows of the chunk are passed after the
        images: ``function(images, *extra_rows)``.
    n_jobs : int or None, default=None
        joblib's convention: ``None`` is 1 unless a ``joblib.parallel_config`` context says
        otherwise, ``-1`` uses every core. Under ``parallel_config(backend="dask")`` the
        chunks run on the Dask cluster of the active ``dask.distributed.Client``.
        Each local worker process gets ``cpu_count // n_jobs`` torch threads, each task
        on a Dask cluster one thread (a task slot is a core); under the threading backend
        torch's process-wide thread count is left alone.
    progress : str, optional
        Show a progress bar (on stderr) with this description, counting images as their
        chunks finish.

    Returns
    -------
    results : list
        ``function``'s return value for each chunk, in pool order.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.datasets.pool import as_pool, map_chunks
    >>> pool = as_pool(np.random.default_rng(0).random((10, 8, 8), dtype=np.float32))
    >>> means = map_chunks(lambda images: images.mean(axis=(1, 2, 3)), pool, batch_size=4)
    >>> np.concatenate(means).shape
    (10,)
    """
    for extra in extras:
        if len(extra) != pool.n_samples:
            raise ValueError(f"extras hold {len(extra)} rows for {pool.n_samples} images")
    from tqdm.std import tqdm

    workers, backend = _parallel_plan(n_jobs)
    results: list[Any] = []
    with tqdm(total=pool.n_samples, desc=progress, disable=progress is None, leave=False,
              unit="image") as bar:
        if workers == 1 and backend in ("LokyBackend", "SequentialBackend"):
            size = chunk_size_for(pool, batch_size)
            for rows, images in pool.iter_chunks(size):
                results.append(function(images, *(extra[rows] for extra in extras)))
                bar.update(len(images))
            return results
        from joblib import Parallel, delayed

        size = chunk_size_for(pool, batch_size, n_jobs=max(workers, 2))
        n_threads = _torch_threads_per_task(workers, backend)
        bounds = pool.chunk_bounds(size)
        shared = _SharedFunction(function) if "Dask" in backend else function
        jobs = (delayed(_run_chunk)(shared, pool.subset(slice(start, stop)), 0, stop - start,
                                    tuple(extra[start:stop] for extra in extras), n_threads)
                for start, stop in bounds)
        for result, (start, stop) in zip(Parallel(n_jobs=n_jobs, return_as="generator")(jobs),
                                         bounds, strict=True):
            results.append(result)
            bar.update(stop - start)
    return results
