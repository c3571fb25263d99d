# %% [markdown]
# # Your own images: a folder of PNGs and a labelling session
#
# Your images live in a folder, and a person draws the masks in a labelling tool. This
# notebook walks through that workflow:
#
# 1. load a folder of images into arrays with `sid4ds.datasets.load_image_folder`;
# 2. create a `LabelingSession` from the folder (`sid4ds init`);
# 3. ask which images to label (`sid4ds query`), draw their masks, import them
#    (`sid4ds import`), check progress (`sid4ds status`), repeat;
# 4. export the labelled set for training elsewhere (`sid4ds export`: PNG folders, COCO,
#    Label Studio);
# 5. take a segmentation model home: train it on every label, with a cross-validated
#    threshold and an estimate of how good it is (`sid4ds train`),
#    run it on new images (`sid4ds predict`) and save it (`sid4ds export --format model`).
#
# Every step is a method here and a command on the command line; the session keeps its
# state in a folder, so the steps can be days apart. To have images to work with, the
# notebook first writes generated ones into a temporary folder, deleted at the end.

# %%
import csv
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from sid4ds import SegmentationLearner
from sid4ds.datasets import load_image_folder, make_defect_images
from sid4ds.session import LabelingSession

# %%
workdir = tempfile.TemporaryDirectory()  # everything this notebook writes goes here
root = Path(workdir.name)
X_generated, true_masks = make_defect_images(
    n_samples=200, image_size=32, defect_ratio=0.1, random_state=0
)


def save_pngs(images: np.ndarray, folder: Path, prefix: str) -> None:
    """Write grey-scale images of shape (n, 1, H, W) in [0, 1] as PREFIX_NNN.png files."""
    folder.mkdir()
    for index, image in enumerate(images):
        pixels = np.round(image[0] * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{prefix}_{index:03d}.png")


image_folder = root / "line_images"
save_pngs(X_generated, image_folder, "part")
print(f"wrote {len(list(image_folder.glob('*.png')))} PNG files to line_images/")

# %% [markdown]
# ## Loading a folder
#
# `load_image_folder` reads every image in a folder (sorted by name) into an array of
# shape (n_samples, n_channels, height, width) with values in [0, 1]. With `masks=` it
# also reads a parallel folder of masks (MVTec/anomalib layout; an image without a mask
# is normal); `image_size=` resizes and `tile=` cuts large images into tiles.
# `load_kolektorsdd` and `load_npz` read the KolektorSDD layout and npz files.

# %%
X, masks, names = load_image_folder(image_folder)
print("X:", X.shape, X.dtype, "masks:", masks, "first names:", names[:3])
print(f"largest difference to the generated images: {np.abs(X - X_generated).max():.4f} "
      f"(8-bit rounding)")

# %% [markdown]
# ## A labelling session
#
# `LabelingSession.create` copies the images into a new session folder, with the settings
# and the seed, so the same inputs give the same rounds. Small networks and short fits
# keep this example fast; for real images leave `scorer_params`, `segmenter_params` and
# `final_params` out. S's default learning rate follows its budget (1e-3 for the default
# 1000 steps, more for shorter fits); a network this small, trained 300 steps, needs the
# fast rate of short fits, so the example sets `lr=3e-3`. The command line equivalent,
# which keeps S's default rate (`--width` and `--depth` set every network):
#
# ```bash
# sid4ds init session --images line_images --defect-ratio 0.1 --width 8 --depth 2 \
#     --epochs-m 6 --patch-size 4 --steps-s 300 --final max_steps=300
# ```

# %%
tiny_network = {"base_channels": 8, "depth": 2}
session = LabelingSession.create(
    root / "session",
    image_folder,
    defect_ratio=0.1,
    seed=0,
    scorer_params={**tiny_network, "patch_size": 4, "max_epochs": 6},
    segmenter_params={**tiny_network, "max_steps": 300, "lr": 3e-3},
    final_params={"max_steps": 300},  # the final model's budget (sid4ds train)
)
print(session.status()["next"])

# %% [markdown]
# ## Round 0: which images to label (`sid4ds query session --n 20`)
#
# The first query trains the self-supervised reconstruction learner on the whole folder
# and ranks it by E_msmr. It writes `rounds/000/to_label.csv` (and `.json`) and copies the
# images to label into `rounds/000/images/`, as the session sees them.

# %%
record = session.query(n_label=20)
round_folder = session.path / record["folder"]
with open(round_folder / "to_label.csv", newline="") as listing:
    rows = list(csv.DictReader(listing))
print(f"round {record['round']} ({record['stage']}, {record['score']}): "
      f"{len(rows)} images to label, {len(record['fake_normals'])} fake normals")
for row in rows[:3]:
    print(f"  rank {row['rank']}: {row['name']} (score {float(row['score']):.4f}) {row['image']}")

# %% [markdown]
# ## The labeller
#
# In real life a person opens the listed images in a labelling tool and saves one mask
# per image, named like the image: 0 for normal pixels, 255 for defect pixels, all black
# for a normal image. Here the generated masks play the labeller.

# %%
row_of = {name: row for row, name in enumerate(names)}


def draw_masks(image_names, folder):
    """Save the true mask of every named image as a PNG: what a labeller would hand back."""
    folder.mkdir()
    for name in image_names:
        Image.fromarray(true_masks[row_of[name]] * 255).save(folder / f"{name}.png")


draw_masks(record["selected"], root / "answers_round_0")

# %% [markdown]
# ## Import and status (`sid4ds import session --masks answers_round_0`, `sid4ds status`)
#
# Every file is checked before anything is imported; a wrong size, a non-binary mask or
# a name the session did not ask for is refused with a message that names the file.

# %%
summary = session.import_masks(root / "answers_round_0")
status = session.status()
print(f"imported {len(summary['added'])} masks")
print(f"labelled {status['labeled']} of {status['n_images']}, {status['defective']} defective; "
      f"{status['fake_normals']} fake normals, {status['unlabeled']} unlabelled")
print("next:", status["next"])

# %% [markdown]
# ## Round 1: labels guide the ranking
#
# With labels in, a query trains the segmentation learner S and the label-guided
# reconstruction learner G and ranks by E_sdr. From this round on the session also writes
# S's predicted masks to `rounds/NNN/preannotations/`, to start the labeller off.

# %%
record = session.query(n_label=20)
print(f"round {record['round']} ({record['stage']}, {record['score']}): "
      f"{len(record['selected'])} images to label")
round_folder = session.path / record["folder"]

n_preannotated = 0
figure, axes = plt.subplots(2, 10, figsize=(12, 3.2))
for axis, name in zip(axes.flat, record["selected"], strict=True):
    image = np.asarray(Image.open(round_folder / "images" / f"{name}.png"))
    preannotation = np.asarray(Image.open(round_folder / "preannotations" / f"{name}.png"))
    n_preannotated += bool(preannotation.any())
    axis.imshow(image, cmap="gray", vmin=0, vmax=255)
    if preannotation.any():
        axis.contour(preannotation > 0, levels=[0.5], colors="yellow", linewidths=0.8)
    if true_masks[row_of[name]].any():
        axis.contour(true_masks[row_of[name]], levels=[0.5], colors="red", linewidths=0.8)
    axis.set_title(name, fontsize=7)
    axis.axis("off")
figure.suptitle("Round 1: to label (red: true defect, yellow: S's pre-annotation)")
plt.show()
print(f"S's pre-annotations mark defect pixels in {n_preannotated} of "
      f"{len(record['selected'])} images; with tiny networks and a handful of labelled "
      f"defects they are often empty")

# %%
draw_masks(record["selected"], root / "answers_round_1")
session.import_masks(root / "answers_round_1")
status = session.status()
for round_status in status["rounds"]:
    print(f"round {round_status['round']} ({round_status['stage']}): asked "
          f"{round_status['asked']}, labelled {round_status['labeled']}, "
          f"{round_status['defective']} defective")
print(f"found {status['defective']} of {int(true_masks.any(axis=(1, 2)).sum())} defective "
      f"images by labelling {status['labeled']} of {status['n_images']}")

# %% [markdown]
# ## Export (`sid4ds export session --format png|coco|label-studio`)
#
# - `png`: `good/`, `defect/` and `ground_truth/defect/NAME_mask.png`, the MVTec AD /
#   anomalib folder layout;
# - `coco`: `annotations.json`, one annotation per connected defect region (compressed
#   RLE, through pycocotools), and the images;
# - `label-studio`: `tasks.json` with the labelled masks as brush annotations and S's
#   predictions as pre-annotations for the images still to label, plus
#   `label_config.xml`. Masks drawn in Label Studio come back with
#   `session.import_label_studio(...)` (`sid4ds import session --label-studio FILE`).

# %%
png_export = session.export(root / "export_png", "png")
coco_export = session.export(root / "export_coco", "coco")
label_studio_export = session.export(root / "export_label_studio", "label-studio")

png_files = {folder: len(list((png_export / folder).rglob("*.png")))
             for folder in ("good", "defect", "ground_truth")}
print("png:", png_files)
coco = json.loads((coco_export / "annotations.json").read_text())
print(f"coco: {len(coco['images'])} images, {len(coco['annotations'])} defect regions")
tasks = json.loads((label_studio_export / "tasks.json").read_text())
print(f"label studio: {len(tasks)} tasks")

# %% [markdown]
# ## The model to take home (`sid4ds train`, `sid4ds predict`, `sid4ds export --format model`)
#
# A query trains S on the labels it had, for ranking the pool. The model to take home is its
# own step, `session.train()` (`sid4ds train session`): a fresh S trained on every label,
# the last round's included, whose threshold and training length are chosen by k-fold
# cross-validation over the labelled images, which also estimates how well it does on new
# images (defect IoU, defective images found, normal images flagged, with their spread
# over the folds). `session.predict` runs it on new images, read the way the pool was
# (resized, tiled, in the pool's colour mode), and writes a mask per image and
# `scores.csv` (per image: the largest defect probability, defect pixels, defective 0/1):
#
# ```bash
# sid4ds train session
# sid4ds predict session --images new_images --out predictions
# sid4ds export session --format model --out model
# ```

# %%
summary = session.train()
estimate = summary["estimate"]
print(f"threshold {summary['threshold']:g}, {summary['n_steps']} steps; expected on new "
      f"images: defect IoU {estimate['iou']['mean']:.2f} ± {estimate['iou']['std']:.2f}, "
      f"defective found {estimate['detected']['mean']:.0%}, normal flagged "
      f"{estimate['false_alarms']['mean']:.0%}")
new_images, new_masks = make_defect_images(
    n_samples=20, image_size=32, defect_ratio=0.5, random_state=1
)
new_folder = root / "new_images"
save_pngs(new_images, new_folder, "new")

predictions = session.predict(new_folder, root / "predictions")
with open(predictions / "scores.csv", newline="") as file:
    scores = list(csv.DictReader(file))
flagged = [row["name"] for row in scores if row["defective"] == "1"]
truly_defective = {f"new_{index:03d}" for index in np.flatnonzero(new_masks.any(axis=(1, 2)))}
print(f"the final model flags {len(flagged)} of {len(scores)} new images; "
      f"{len(truly_defective & set(flagged))} of the {len(truly_defective)} defective ones")

# %% [markdown]
# `export(..., "model")` writes `segmenter.pt`, the final model's whole state, which
# `SegmentationLearner.load` reads back (with `torch.load(weights_only=True)`) wherever
# sid4ds is installed, plus `unet_state_dict.pt` and `segmenter.json` (the UNet's settings,
# the cross-validated threshold, the estimate and the preprocessing) for code that uses
# the network without sid4ds.

# %%
model_folder = session.export(root / "model", "model")
segmenter = SegmentationLearner.load(model_folder / "segmenter.pt")
settings = json.loads((model_folder / "segmenter.json").read_text())
X_new, _, new_names = load_image_folder(new_folder)  # the new images as the PNGs hold them
new_predicted = segmenter.predict(X_new)
same_as_predict = all(
    np.array_equal(mask * 255, np.asarray(Image.open(predictions / "masks" / f"{name}.png")))
    for mask, name in zip(new_predicted, new_names, strict=True))
print(f"the loaded model ({settings['unet']}) gives the same masks as `predict`: {same_as_predict}")

# %%
workdir.cleanup()
