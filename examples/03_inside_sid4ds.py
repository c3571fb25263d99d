# %% [markdown]
# # Inside SID4DS: the three learners, made visible
#
# SID4DS (Li et al., 2023) ranks an unlabelled pool with three networks:
#
# - **M**, a self-supervised reconstruction learner: it learns to paint in hidden parts of
#   an image. Trained on a pool that is mostly normal, it paints normal surface, so a
#   hidden defect comes back wrong. Its score is **E_msmr**.
# - **S**, the segmentation learner, trained on the labelled images; its predicted defect
#   pixels are *pseudolabels* for the unlabelled ones.
# - **G**, a label-guided reconstruction learner started from M's weights: it learns to
#   paint normal surface over labelled defects. Its score is **E_sdr**, the
#   reconstruction error inside S's pseudolabels.
#
# This notebook trains tiny versions of all three and plots what each one sees.

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from sid4ds import (
    ReconstructionScorer,
    SegmentationLearner,
    rank_pool,
    resolve_n_normal,
    sdr_scores,
)
from sid4ds.datasets import make_defect_images
from sid4ds.estimators.reconstruction import block_masks

# %%
X, masks = make_defect_images(n_samples=200, image_size=32, defect_ratio=0.1, random_state=0)
is_defective = masks.any(axis=(1, 2))
height, width = X.shape[2:]
print(f"pool: {len(X)} images of {height}x{width}, {int(is_defective.sum())} defective")

# %% [markdown]
# ## M: self-supervised masked reconstruction
#
# `fit(X)` without masks trains M: every step hides a random 75% of the 4×4 patches of
# each image (`mask_ratio`, `patch_size`) and asks the network for the whole image
# back (paper eq. 2).

# %%
msmr_scorer = ReconstructionScorer(
    base_channels=8, depth=2, patch_size=4, n_blocks=16, max_epochs=6, random_state=0
)
msmr_scorer.fit(X)
print(f"trained M for {len(msmr_scorer.history_)} epochs, "
      f"final loss {msmr_scorer.history_[-1]['loss']:.3f}")

# %% [markdown]
# `reconstruct(X, mask=...)` shows what M paints where pixels are hidden. Here a random
# patch mask like the ones used in training, on a defective image and a normal one.

# %%
rng = np.random.default_rng(0)
patch_grid = rng.random((height // 4, width // 4)) < 0.75
patch_mask = np.kron(patch_grid, np.ones((4, 4))).astype(np.uint8)  # 1 = hidden pixel
defective_image = int(np.flatnonzero(is_defective)[0])
normal_image = int(np.flatnonzero(~is_defective)[0])
shown = [defective_image, normal_image]
reconstructions = msmr_scorer.reconstruct(X[shown], mask=patch_mask)

figure, axes = plt.subplots(2, 3, figsize=(6, 4.2))
for row, index in enumerate(shown):
    masked_input = np.where(patch_mask == 1, np.nan, X[index, 0])
    for axis, picture, title in zip(
        axes[row],
        (X[index, 0], masked_input, reconstructions[row, 0]),
        ("image", "masked input", "M's reconstruction"),
        strict=True,
    ):
        axis.imshow(picture, cmap="gray", vmin=0, vmax=1)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    if is_defective[index]:
        axes[row, 0].contour(masks[index], levels=[0.5], colors="red", linewidths=0.8)
figure.suptitle("top: defective (red outline), bottom: normal")
plt.show()

# %% [markdown]
# ## E_msmr: the maximum sequential-mask reconstruction error
#
# To score an image, M hides one block of a grid at a time (`n_blocks=16`, a 4×4 grid),
# reconstructs it, and measures the error. `block_errors` returns all 16 errors per image;
# E_msmr (`score_samples`) is their maximum (paper eq. 3; sid4ds measures each block's
# error as its largest squared pixel error, `error_region="block_max"`).

# %%
errors = msmr_scorer.block_errors(X)  # (n_samples, n_blocks)
msmr = msmr_scorer.score_samples(X)
print("E_msmr is the maximum of the block errors:", np.allclose(errors.max(axis=1), msmr))

blocks = block_masks(height, width, msmr_scorer.n_blocks)  # (n_blocks, height, width)
best_defective = int(np.flatnonzero(is_defective)[msmr[is_defective].argmax()])
worst_block = int(errors[best_defective].argmax())
image = X[best_defective, 0]
reconstruction = msmr_scorer.reconstruct(X[[best_defective]], mask=blocks[worst_block])[0, 0]
painted_in = np.where(blocks[worst_block], reconstruction, image)
squared_error = np.where(blocks[worst_block], (reconstruction - image) ** 2, 0.0)

figure, axes = plt.subplots(1, 6, figsize=(13, 2.6))
axes[0].imshow(image, cmap="gray", vmin=0, vmax=1)
axes[0].contour(masks[best_defective], levels=[0.5], colors="red", linewidths=0.8)
axes[0].set_title("highest-ranked\ndefective image", fontsize=9)
axes[1].imshow(np.where(blocks[worst_block], np.nan, image), cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"block {worst_block} hidden\n(its largest error)", fontsize=9)
axes[2].imshow(painted_in, cmap="gray", vmin=0, vmax=1)
axes[2].set_title("M paints it in", fontsize=9)
axes[3].imshow(squared_error, cmap="magma")
axes[3].set_title("squared error", fontsize=9)
for axis, index, label in ((axes[4], best_defective, "defective"),
                           (axes[5], normal_image, "normal")):
    grid = axis.imshow(errors[index].reshape(4, 4), cmap="magma", vmin=0,
                       vmax=errors[[best_defective, normal_image]].max())
    axis.set_title(f"16 block errors,\n{label} image", fontsize=9)
figure.colorbar(grid, ax=axes[4:], shrink=0.8)
for axis in axes:
    axis.axis("off")
plt.show()

# %% [markdown]
# ## The cold-start split: top K to label, bottom V as fake normals
#
# Algorithm 1 sends the K highest-scored images to the labeller and gives the V
# lowest-scored ones all-zero masks without looking at them (*fake normals*).
# `resolve_n_normal("auto", ...)` takes V = K · (1 − expected defect share).

# %%
n_label = 20
n_normal = resolve_n_normal("auto", n_instances=n_label, n_pool=len(X),
                            expected_defect_ratio=0.1)
top, bottom = rank_pool(msmr, n_instances=n_label, n_normal=n_normal)
print(f"top K={len(top)}: {int(is_defective[top].sum())} defective; "
      f"bottom V={len(bottom)}: {int(is_defective[bottom].sum())} defective")

bins = np.linspace(msmr.min(), msmr.max(), 40)
figure, axis = plt.subplots(figsize=(7, 3.2))
axis.hist([msmr[~is_defective], msmr[is_defective]], bins=bins, stacked=True,
          label=["normal", "defective"], color=["tab:blue", "tab:red"])
axis.axvline(msmr[top].min(), color="black", linestyle="--", label=f"top K={n_label}")
axis.axvline(msmr[bottom].max(), color="gray", linestyle=":", label=f"bottom V={n_normal}")
axis.set_xlabel("E_msmr")
axis.set_ylabel("images")
axis.legend()
plt.show()

# %% [markdown]
# ## S and G, trained on the labelled images and the fake normals
#
# This is what `run_sid4ds` does after the cold start: S learns to segment defects, and G
# starts as a copy of M (`warm_start=True`) and learns, from the masks, to replace defects
# by normal surface (paper eq. 5–7).

# %%
train = np.concatenate([top, bottom])
X_train = X[train]
y_train = np.concatenate([masks[top], np.zeros_like(masks[bottom])])  # fake normals: zeros

segmenter = SegmentationLearner(
    base_channels=8, depth=2, max_steps=300, random_state=0
).fit(X_train, y_train)
sdr_scorer = copy.deepcopy(msmr_scorer).set_params(warm_start=True).fit(X_train, y_train)
print("G's training:", sdr_scorer.fit_mode_)

# %% [markdown]
# ## E_sdr: reconstruction error inside the pseudolabels
#
# On the images nobody has labelled yet, S's predicted masks (`predict`, probability ≥ 0.5)
# are the pseudolabels. G reconstructs each whole image; E_sdr sums the squared error
# inside the pseudolabel (paper eq. 8–9). That is the paper's rule, `region="threshold"`;
# the default rule is the last section's.

# %%
unlabeled = np.setdiff1d(np.arange(len(X)), top)
pseudolabels = segmenter.predict(X[unlabeled])
sdr = sdr_scores(segmenter, sdr_scorer, X[unlabeled], region="threshold")
print(f"{np.count_nonzero(sdr)} of {len(unlabeled)} unlabelled images have a pseudolabel "
      f"(E_sdr > 0)")

highest = np.argsort(-sdr)[:4]
reconstructed = sdr_scorer.reconstruct(X[unlabeled[highest]])
figure, axes = plt.subplots(len(highest), 4, figsize=(7, 7))
for row, (position, reconstruction) in enumerate(zip(highest, reconstructed, strict=True)):
    index = unlabeled[position]
    region_error = pseudolabels[position] * (reconstruction[0] - X[index, 0]) ** 2
    panels = (X[index, 0], masks[index], pseudolabels[position], region_error)
    titles = (f"E_sdr {sdr[position]:.1e}", "true mask", "pseudolabel (S)",
              "G's error inside it")
    for axis, picture, title in zip(axes[row], panels, titles, strict=True):
        axis.imshow(picture, cmap="magma" if title.startswith("G's") else "gray")
        axis.set_title(title, fontsize=8)
        axis.axis("off")
figure.suptitle("The four highest E_sdr in the unlabelled pool")
plt.show()

# %% [markdown]
# The next round's split: the top K of E_sdr go to the labeller. Under the paper's rule
# every image where S marks no pixel has E_sdr = 0; `run_sid4ds` orders such ties by
# their cold-start E_msmr, as `tie_keys` does here. When fewer than K images have a
# pseudolabel, the top K also takes images with E_sdr = 0, and the histogram (of
# E_sdr > 0) has no cut line.

# %%
next_top, next_bottom = rank_pool(sdr, n_instances=n_label, n_normal=n_normal,
                                  tie_keys=msmr[unlabeled])
print(f"next round, top K={len(next_top)}: {int(is_defective[unlabeled[next_top]].sum())} "
      f"defective; remaining defective in the pool: {int(is_defective[unlabeled].sum())}")

figure, axis = plt.subplots(figsize=(7, 3.2))
flagged = sdr > 0
log_sdr = np.log10(sdr[flagged])
axis.hist([log_sdr[~is_defective[unlabeled][flagged]], log_sdr[is_defective[unlabeled][flagged]]],
          bins=30, stacked=True, label=["normal", "defective"], color=["tab:blue", "tab:red"])
if sdr[next_top].min() > 0:  # else fewer than K images have a pseudolabel
    axis.axvline(np.log10(sdr[next_top].min()), color="black", linestyle="--",
                 label=f"top K={n_label}")
axis.set_xlabel("log10 E_sdr (images with E_sdr > 0)")
axis.set_ylabel("images")
axis.legend()
plt.show()

# %% [markdown]
# ## The default: a region in every image (`region="adaptive"`)
#
# An S trained on a few labels often marks no pixel at 0.5 in an image that holds a
# defect, and the paper's rule then gives that image E_sdr = 0, tied with every normal
# image. The default rule keeps S's region where it marks one, and elsewhere takes the
# image's most probable 1% of pixels (`region_share=0.01`), so every image keeps S's
# evidence. Those fallback regions are guesses: G's error inside a guess on a normal image
# can exceed its error inside a small region S did mark on a defective one. So the images
# S marks keep the paper's E_sdr and rank first, and the others score in [-1, 0), ordered
# by the error inside their guess (`rank_below_marked`).

# %%
sdr_adaptive = sdr_scores(segmenter, sdr_scorer, X[unlabeled])  # region="adaptive"
marked = pseudolabels.any(axis=(1, 2))
print(f"S marks {int(marked.sum())} of {len(unlabeled)} images; their E_sdr is unchanged: "
      f"{np.allclose(sdr_adaptive[marked], sdr[marked])}; the other "
      f"{int((~marked).sum())} score in [{sdr_adaptive[~marked].min():.3f}, "
      f"{sdr_adaptive[~marked].max():.3f}]")
for name, scores in (("threshold", sdr), ("adaptive", sdr_adaptive)):
    print(f"ROC AUC of E_sdr ({name}), defective vs normal unlabelled images: "
          f"{roc_auc_score(is_defective[unlabeled], scores):.3f}")

# %% [markdown]
# ## The rounds' score: E_sdr fused with S's own probability (`fusion="rank"`)
#
# S's mean probability over an image is evidence of its own, and the rounds of
# `run_sid4ds`, the modAL strategies and a labelling session rank by the mean of the two
# ranks (`fuse_ranks`): on the benchmark sets it labelled more defects than E_sdr alone
# (`docs/method.md`). `fusion=None` is the paper's E_sdr.

# %%
fused = sdr_scores(segmenter, sdr_scorer, X[unlabeled], fusion="rank")
print(f"ROC AUC of the fused score: {roc_auc_score(is_defective[unlabeled], fused):.3f}")
