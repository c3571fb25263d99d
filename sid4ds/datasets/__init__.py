"""Data for sid4ds: generated defect images and loaders for real image folders.

- :func:`make_defect_images`: seeded synthetic images of machined surfaces with labelled
  scratches, cracks, pits and inclusions (:mod:`sid4ds.datasets.synthetic`).
- :func:`load_image_folder`, :func:`load_kolektorsdd`, :func:`load_npz`, :func:`resize`,
  :func:`tile`: loaders for image folders with their masks, the KolektorSDD layout and npz
  files (:mod:`sid4ds.datasets.loaders`), built on :mod:`sid4ds.datasets.folders` (listing
  and matching files) and :mod:`sid4ds.datasets.imageio` (reading one image or mask).
"""

from sid4ds.datasets.loaders import load_image_folder, load_kolektorsdd, load_npz, resize, tile
from sid4ds.datasets.synthetic import DEFECT_KINDS, DRIFT_KINDS, make_defect_images

__all__ = [
    "DEFECT_KINDS",
    "DRIFT_KINDS",
    "load_image_folder",
    "load_kolektorsdd",
    "load_npz",
    "make_defect_images",
    "resize",
    "tile",
]
