# %% [markdown]
# # Quickstart: label the defective images first
#
# A production line makes thousands of images, and only a few per cent show a defect.
# Drawing a pixel mask for every image is expensive, so we want the first images we
# label to be the defective ones. This notebook runs SID4DS in a modAL loop:
#
# 1. **Cold start** (no labels yet): `msmr_sampling` ranks the pool by how badly a
#    self-supervised network reconstructs each image when parts of it are hidden.
# 2. **Next round**: `sdr_sampling` uses the labels of the first round: a segmentation
#    network marks suspected defects and a label-guided network measures the
#    reconstruction error inside them.
#
# The settings are tiny (32×32 pixel images, small networks, few epochs) so that the
# notebook runs in well under a minute on a laptop CPU. Real images need the defaults;
# see the user guide.

# %%
import matplotlib.pyplot as plt
import numpy as np

from sid4ds import (
    DefectActiveLearner,
    ReconstructionScorer,
    SegmentationLearner,
    msmr_sampling,
    sdr_sampling,
)
from sid4ds.datasets import make_defect_images

# %% [markdown]
# ## A pool of images
#
# `make_defect_images` draws machined metal surfaces; 10% of them carry one scratch,
# crack, pit or inclusion, marked in `masks`. In a real project the masks do not exist
# yet: they are what the human labeller draws for the images we pick. Here we use them to
# play the labeller and to count what each round found.

# %%
X, masks = make_defect_images(n_samples=200, image_size=32, defect_ratio=0.1, random_state=0)
is_defective = masks.any(axis=(1, 2))
n_defective_total = int(is_defective.sum())
print(f"pool: {X.shape[0]} images of shape {X.shape[1:]}, {n_defective_total} defective")

# %% [markdown]
# ## The learners
#
# `DefectActiveLearner` is modAL's `ActiveLearner` for images and pixel masks. Its
# estimator is the segmentation learner S. The cold-start strategy needs a reconstruction
# scorer M; we pass a small one to the first query (left out, a default-sized one is
# trained). With so few images per epoch, the segmentation learner gets small batches and
# a higher learning rate to make enough optimisation steps.

# %%
segmenter = SegmentationLearner(
    base_channels=8, depth=2, max_epochs=40, lr=3e-3, batch_size=8, random_state=0
)
scorer = ReconstructionScorer(base_channels=8, depth=2, patch_size=4, max_epochs=6, random_state=0)
learner = DefectActiveLearner(segmenter, query_strategy=msmr_sampling, expected_defect_ratio=0.1)

n_label = 20  # K, images sent to the labeller per round (10% of the pool)
unlabeled = np.arange(len(X))  # pool indices not labelled yet
rounds = []  # what each round picked and found

# %% [markdown]
# ## Round 0: cold start with `msmr_sampling`
#
# `query` returns positions in the array it was given, so we map them back to pool
# indices. Besides the K images to label, the learner keeps the V lowest-scored images as
# *fake normals*: they join the next training round with all-zero masks, without anyone
# looking at them.

# %%
query_index, X_query = learner.query(X[unlabeled], n_instances=n_label, scorer=scorer)
picked_cold_start = unlabeled[query_index]
fake_normals = unlabeled[learner.fake_normal_indices_]
learner.teach(X_query, masks[picked_cold_start])  # the labeller's masks
unlabeled = np.setdiff1d(unlabeled, picked_cold_start)
rounds.append({"round": 0, "strategy": "msmr_sampling", "picked": picked_cold_start,
               "defective": int(is_defective[picked_cold_start].sum())})
print(f"cold start: labelled {n_label}, {rounds[-1]['defective']} defective; "
      f"{len(fake_normals)} fake normals, {int(is_defective[fake_normals].sum())} of them "
      f"actually defective")

# %% [markdown]
# What the cold start picked, best-ranked first. A red outline marks the true defect.

# %%
figure, axes = plt.subplots(2, 10, figsize=(12, 2.8))
for axis, index in zip(axes.flat, picked_cold_start, strict=True):
    axis.imshow(X[index, 0], cmap="gray", vmin=0, vmax=1)
    if is_defective[index]:
        axis.contour(masks[index], levels=[0.5], colors="red", linewidths=0.8)
    axis.set_title("defect" if is_defective[index] else "normal", fontsize=8)
    axis.axis("off")
figure.suptitle("Round 0 (msmr_sampling): the images sent to the labeller")
plt.show()

# %% [markdown]
# ## Round 1: `sdr_sampling`
#
# From now on the learner uses its labels. One line changes the strategy; the
# label-guided scorer G is trained on the first call (starting from M's weights) and kept
# on the learner for later rounds.

# %%
learner.query_strategy = sdr_sampling
query_index, X_query = learner.query(X[unlabeled], n_instances=n_label)
picked = unlabeled[query_index]
learner.teach(X_query, masks[picked])
unlabeled = np.setdiff1d(unlabeled, picked)
rounds.append({"round": 1, "strategy": "sdr_sampling", "picked": picked,
               "defective": int(is_defective[picked].sum())})
print(f"round 1: labelled {n_label}, {rounds[-1]['defective']} defective")

# %% [markdown]
# ## Defects found per round, against random sampling
#
# Picking images at random finds, on average, the pool's defect share of every batch.

# %%
defect_share = n_defective_total / len(X)
found_so_far = 0
print("| round | strategy | labelled so far | defective picked | found so far | random |")
print("|---|---|---|---|---|---|")
for record in rounds:
    found_so_far += record["defective"]
    labelled_so_far = n_label * (record["round"] + 1)
    record["random_expected"] = labelled_so_far * defect_share
    print(f"| {record['round']} | {record['strategy']} | {labelled_so_far} | "
          f"{record['defective']} | {found_so_far} of {n_defective_total} | "
          f"{record['random_expected']:.1f} |")

# %%
labelled = [n_label * (record["round"] + 1) for record in rounds]
found = np.cumsum([record["defective"] for record in rounds])
figure, axis = plt.subplots(figsize=(5, 3.5))
axis.plot([0, *labelled], [0, *found], "o-", label="SID4DS")
axis.plot([0, *labelled], [0, *(n * defect_share for n in labelled)], "s--", label="random")
axis.axhline(n_defective_total, color="gray", linewidth=0.8, label="all defective images")
axis.set_xlabel("images labelled")
axis.set_ylabel("defective images found")
axis.legend()
plt.show()

# %% [markdown]
# With 200 tiny images and six training epochs this is a sketch of the method, not a
# measurement: `docs/benchmarks.md` has the numbers at realistic sizes. To run every
# round at once with an oracle, use `sid4ds.run_sid4ds`; for a folder of your own
# images and a human labeller, see `04_your_own_images`.
