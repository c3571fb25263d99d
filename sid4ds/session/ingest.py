"""``sid4ds init``: a new session folder from images (and masks that already exist).

The images are read one at a time (resized or tiled as asked) and streamed into the
session's first pool shard, ``pool_images.npy``; names, content keys and source files go to
``pool_meta.npz``; initial masks are checked (readable, binary, with an image) and copied
into ``masks/``. The folder is written under a temporary name and renamed when complete,
so a killed init leaves nothing behind. :func:`session_items` reads more images the way
``init`` read the pool (``sid4ds add``, ``sid4ds predict``).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import check_choice, check_float, check_int, check_size, describe_size
from sid4ds._version import __version__
from sid4ds.datasets.folders import folder_pairs, iter_pairs, list_image_files, suffix_hint
from sid4ds.datasets.imageio import cut_pieces, read_mask
from sid4ds.datasets.pool import ImagePool, chunk_size_for, is_path_sequence
from sid4ds.estimators.reconstruction import block_masks
from sid4ds.ranking.scores import FUSION_RULES, REGION_RULES
from sid4ds.session.errors import SessionError, SessionWarning
from sid4ds.session.lock import pid_alive
from sid4ds.session.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    manifest_marker,
)
from sid4ds.session.models import model_settings
from sid4ds.session.shards import POOL_IMAGES, POOL_META, ShardBuilder
from sid4ds.session.state import STATE, StateFile
from sid4ds.session.storage import fsync_folder, now, test_hook, write_json
from sid4ds.session.store import write_mask

__all__ = ["check_fits_networks", "check_names", "create_session", "read_binary_mask",
           "read_images_like", "session_items"]


def read_binary_mask(path: Path) -> np.ndarray:
    """A mask file as (H, W) uint8 in {0, 1}; a SessionError naming it unless binary."""
    try:
        return read_mask(path)
    except ValueError as error:
        raise SessionError(str(error)) from None


def read_images_like(settings: dict[str, Any], images: Any, *, skip_unreadable: bool = False,
                     names: Sequence[str] | None = None
                     ) -> tuple[Iterator[tuple[str, str, np.ndarray]], str]:
    """New images read as a session's ``init`` read its pool: the same resizing, tiling and
    colour mode (its ``settings``). Used by ``sid4ds predict``.

    Returns
    -------
    items : iterator of (name, source file, image)
        One float32 image of shape (n_channels, height, width) at a time.
    described : str
        Where the images came from, for messages.
    """
    items, described = session_items(settings, images, skip_unreadable=skip_unreadable,
                                     names=names)
    return ((name, source, image) for name, source, image, _ in items), described


def session_items(settings: dict[str, Any], images: Any,
                  masks: str | os.PathLike[str] | None = None, *, mask_suffix: str = "",
                  skip_unreadable: bool = False, names: Sequence[str] | None = None,
                  each_alone: bool = False, keep_channels: bool = False,
                  ) -> tuple[Iterator[tuple[str, str, np.ndarray, np.ndarray | None]], str]:
    """Images (and their masks) read as a session's ``init`` read its pool.

    The session's ``settings`` give the resizing, tiling and colour mode. ``each_alone``:
    image files are not compared with each other (the caller compares each with the
    session). ``keep_channels``: arrays keep their channels (the caller checks them)
    instead of being refused when they do not fit the session's mode.

    Returns
    -------
    items : iterator of (name, source file, image, mask or None)
        One float32 image of shape (n_channels, height, width) at a time, with its mask
        (H, W) uint8 in {0, 1} when one was given for it.
    described : str
        Where the images came from, for messages.
    """
    image_size = tuple(settings["image_size"]) if settings.get("image_size") else None
    tile = tuple(settings["tile"]) if settings.get("tile") else None
    masks_folder = Path(masks) if masks is not None else None
    if isinstance(images, (str, os.PathLike)):
        if not Path(images).is_dir():
            raise SessionError(f"images folder {images} does not exist or is not a folder")
        if names is not None:
            raise SessionError("names= is for images given as an array, paths or a "
                               "Dataset; a folder's images are named by their files")
        return _folder_items(Path(images), masks_folder, mask_suffix, settings["mode"],
                             skip_unreadable, image_size, tile, each_alone=each_alone)
    return _pool_items(images, masks_folder, mask_suffix,
                       None if keep_channels else settings["mode"], names, skip_unreadable,
                       image_size, tile, each_alone=each_alone,
                       file_mode=settings["mode"])


def create_session(path: str | os.PathLike[str], images: Any,
                   masks: str | os.PathLike[str] | None, options: dict[str, Any]) -> Path:
    """Create a session folder; return it.

    ``options`` are the keyword arguments of :meth:`LabelingSession.create` (``image_size``,
    ``tile``, ``mode``, ``mask_suffix``, ``skip_unreadable``, ``names``, ``defect_ratio``,
    ``seed``, ``scorer_params``, ``segmenter_params``, ``guided_epochs``, ``region``,
    ``fusion``), all
    given.
    """
    image_size, tile, mode = options["image_size"], options["tile"], options["mode"]
    mask_suffix, skip_unreadable = options["mask_suffix"], options["skip_unreadable"]
    names, defect_ratio, seed = options["names"], options["defect_ratio"], options["seed"]
    region = check_choice(options["region"], "region", REGION_RULES)
    fusion = check_choice(options["fusion"], "fusion", FUSION_RULES)
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
    models = model_settings(options["scorer_params"], options["segmenter_params"],
                            options["guided_epochs"], seed, options.get("final_params"))
    image_size_pair = check_size(image_size, "image_size") if image_size is not None \
        else None
    tile_pair = check_size(tile, "tile") if tile is not None else None
    masks_folder = Path(masks) if masks is not None else None
    from_folder = isinstance(images, (str, os.PathLike))
    if from_folder:
        if names is not None:
            raise SessionError("names= is for images given as an array, paths or a "
                               "Dataset; a folder's images are named by their files")
        items, described = _folder_items(
            Path(images), masks_folder, mask_suffix, mode or "L", skip_unreadable,
            image_size_pair, tile_pair)
    else:
        items, described = _pool_items(
            images, masks_folder, mask_suffix, mode, names, skip_unreadable,
            image_size_pair, tile_pair)

    for leftover in root.parent.glob(f".{root.name}.init-*"):  # from a killed init
        owner = leftover.name.rsplit("-", 1)[-1]
        if not (owner.isdigit() and pid_alive(int(owner))):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = root.parent / f".{root.name}.init-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        labels: dict[str, Any] = {}
        shard = ShardBuilder(staging, POOL_IMAGES, POOL_META, batch=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                for name, source, image, mask in items:
                    if shard.shape is None:
                        check_fits_networks(image.shape[1:], models)
                    shard.append(name, source, image)  # hashed as written: no second read
                    if mask is not None:
                        labels[name] = write_mask(staging, name, mask, version=1,
                                                  round_index=None, source=source)
            except SessionError:
                raise
            except ValueError as error:  # the readers' messages name the file
                raise SessionError(str(error)) from None
        for warning in caught:
            warnings.warn(str(warning.message), SessionWarning, stacklevel=2)
        if not len(shard):
            raise SessionError(f"no readable images in {described}")
        shape = shard.shape
        entry = shard.finish()
        created = now()
        manifest: Manifest = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "created": created, "updated": created,
            "written_by": _versions(),
            "settings": {
                "images": described,
                "masks": str(masks_folder.resolve()) if masks_folder else None,
                "image_size": list(image_size_pair) if image_size_pair else None,
                "tile": list(tile_pair) if tile_pair else None,
                "mode": "L" if shape[0] == 1 else "RGB", "mask_suffix": mask_suffix,
                "defect_ratio": defect_ratio, "seed": seed, "region": region,
                "fusion": fusion, **models,
            },
            "pool": {"dtype": "float32", "n_images": entry["n_images"],
                     "n_channels": int(shape[0]), "height": int(shape[1]),
                     "width": int(shape[2]), "shards": [entry], "next_shard": 1},
            "batches": [{"batch": 0, "command": "init", "time": created, "source": described,
                         "n_added": entry["n_images"], "n_labeled": len(labels),
                         "n_skipped": {}}],
            "labels": labels, "rounds": [], "models": {}, "model_files": {},
            "msmr_scores": {},
        }
        StateFile.create(staging / STATE, manifest)
        write_json(staging / MANIFEST, manifest_marker(manifest))
        test_hook("init:before-rename")
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(staging, root)
        fsync_folder(root.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root



def _file_items(
    pairs: list[tuple[str, Path, Path | None]], mode: str, skip_unreadable: bool,
    image_size: tuple[int, int] | None, tile: tuple[int, int] | None,
    each_alone: bool = False,
) -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None]]:
    """Read (name, image file, mask file or None) one at a time, as the loaders do.

    Yields ``(name, source file, image, mask or None)`` per image or tile. ``each_alone``:
    images are not compared with each other (the caller checks each).
    """
    with_mask = {image_path for _, image_path, mask_path in pairs if mask_path}
    groups = [[pair] for pair in pairs] if each_alone else [pairs]
    for group in groups:
        for name, image_path, image, mask in iter_pairs(
                group, image_size=image_size, tile_size=tile, mode=mode,
                on_error="warn" if skip_unreadable else "raise"):
            yield (name, str(image_path.resolve()), image,
                   mask if image_path in with_mask else None)

def _folder_items(
    folder: Path, masks_folder: Path | None, mask_suffix: str, mode: str,
    skip_unreadable: bool, image_size: tuple[int, int] | None,
    tile: tuple[int, int] | None, *, each_alone: bool = False,
) -> tuple[Iterator[tuple[str, str, np.ndarray, np.ndarray | None]], str]:
    """Stream a folder's images: ``(items, description)``."""
    _check_init_masks(None, folder, masks_folder, mask_suffix)
    try:
        pairs, _ = folder_pairs(folder, masks_folder, mask_suffix=mask_suffix,
                                recursive=False,
                                on_error="warn" if skip_unreadable else "raise")
    except ValueError as error:
        raise SessionError(str(error)) from None
    return (_file_items(pairs, mode, skip_unreadable, image_size, tile, each_alone),
            str(folder.resolve()))

def _pool_items(
    images: Any, masks_folder: Path | None, mask_suffix: str, mode: str | None,
    names: Sequence[str] | None, skip_unreadable: bool,
    image_size: tuple[int, int] | None, tile: tuple[int, int] | None, *,
    each_alone: bool = False, file_mode: str | None = None,
) -> tuple[Iterator[tuple[str, str, np.ndarray, np.ndarray | None]], str]:
    """Stream images given as paths, an array, a memmap or a Dataset (see create).

    ``file_mode``: the colour mode image files are read in when ``mode`` is None (arrays
    then keep their channels).
    """
    if isinstance(images, (list, tuple)) and not images:
        raise SessionError("images is an empty list; pass a folder, image paths, an array "
                           "or a Dataset holding at least one image")
    if is_path_sequence(images):
        paths = [Path(entry) for entry in images]
        argument = "names" if names is not None else "the file names of images"
        names = [entry.stem for entry in paths] if names is None else list(names)
        check_names(names, len(paths), argument)
        mask_files = _check_init_masks(set(names), None, masks_folder, mask_suffix)
        pairs = [(name, entry, mask_files.get(name))
                 for name, entry in zip(names, paths, strict=True)]
        return (_file_items(pairs, mode or file_mode or "L", skip_unreadable, image_size, tile,
                            each_alone), f"{len(paths)} image paths")
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
    check_names(names, len(pool), "names")
    mask_files = _check_init_masks(set(names), None, masks_folder, mask_suffix)

    def items() -> Iterator[tuple[str, str, np.ndarray, np.ndarray | None]]:
        for rows, chunk in pool.iter_chunks(chunk_size_for(pool, 1)):
            for row, image in zip(range(rows.start, rows.stop), chunk, strict=True):
                mask_path = mask_files.get(names[row])
                mask = (read_binary_mask(mask_path) if mask_path is not None else
                        np.zeros(image.shape[1:], np.uint8))
                if mask.shape != image.shape[1:]:
                    raise SessionError(
                        f"mask file {mask_path} is {mask.shape[0]}x{mask.shape[1]} but "
                        f"its image {names[row]!r} is {image.shape[1]}x{image.shape[2]} "
                        f"(height x width); a mask must have the size of its image")
                for piece_name, piece, piece_mask in cut_pieces(
                        names[row], image, mask, image_size=image_size, tile_size=tile,
                        where=f"image {names[row]!r}"):
                    yield (piece_name, "", piece,
                           piece_mask if mask_path is not None else None)

    return items(), f"{type(images).__name__} of {len(pool)} images"

def check_names(names: list[Any], n_images: int, argument: str) -> None:
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



def _versions() -> dict[str, str]:
    import torch

    return {"sid4ds": __version__, "torch": torch.__version__,
            "numpy": np.__version__}

def check_fits_networks(shape: Sequence[int], models: dict[str, Any]) -> None:
    """Refuse images whose sides the networks of ``models`` (the settings' ``scorer`` and
    ``segmenter``) cannot take, saying which size would do."""
    height, width = (int(side) for side in shape)
    for key in ("scorer", "segmenter"):
        factor = 2 ** models[key]["depth"]
        if height % factor or width % factor:
            fitting = [-(-side // factor) * factor for side in (height, width)]
            hint = (str(fitting[0]) if fitting[0] == fitting[1]
                    else f"{fitting[0]}x{fitting[1]}")
            raise SessionError(
                f"the images are {describe_size((height, width))} but the networks "
                f"(depth {models[key]['depth']}) need sides divisible by {factor}; pass "
                f"image_size={hint} (sid4ds init --image-size {hint}) or a tile size "
                f"divisible by {factor}, or a smaller depth"
            )
    try:
        block_masks(height, width, models["scorer"]["n_blocks"])
    except ValueError as error:
        raise SessionError(f"{error} (n_blocks of the reconstruction learner)") from None

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
    mask_files = list_image_files(masks, recursive=False)
    if same_folder:  # masks are the files with the suffix (the loader insists on one)
        mask_files = [(n, p) for n, p in mask_files
                      if mask_suffix and n.endswith(mask_suffix)]
    if image_names is None:
        if images is None or not images.is_dir():
            return {}  # _folder_pairs reports it
        image_names = {name for name, _ in list_image_files(images, recursive=False)
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
                f"remove the mask" + suffix_hint(stem, image_names)
            )
        read_binary_mask(mask_path)
        stems[stem] = mask_path
    return stems

