# %% [markdown]
# # Swap a sid4ds strategy into an existing modAL loop
#
# You already have a modAL active-learning loop with an uncertainty strategy. This
# notebook runs it on a segmentation learner, then runs the same loop with the one
# `query_strategy=` line changed to a sid4ds strategy, and prints both results side by
# side. Everything else (data, initial labels, network, budget) stays the same.
#
# Tiny settings (32×32 pixel images, small networks, few epochs) keep the run under a
# minute on a CPU.

# %%
from functools import partial

import numpy as np
from modAL.uncertainty import classifier_uncertainty
from modAL.utils.selection import multi_argmax

from sid4ds import DefectActiveLearner, ReconstructionScorer, SegmentationLearner, sdr_sampling
from sid4ds.datasets import make_defect_images

# %% [markdown]
# ## Data and the initial labelled set
#
# Uncertainty sampling needs a trained model, so the usual modAL loop starts from a few
# randomly chosen labelled images.

# %%
X, masks = make_defect_images(n_samples=200, image_size=32, defect_ratio=0.15, random_state=0)
is_defective = masks.any(axis=(1, 2))
initial = np.random.default_rng(seed=1).choice(len(X), size=20, replace=False)
print(f"pool: {len(X)} images, {int(is_defective.sum())} defective; "
      f"initial labelled set: {len(initial)} images, {int(is_defective[initial].sum())} defective")


def make_segmenter():
    """A small segmentation learner; small batches give enough steps on a tiny pool."""
    return SegmentationLearner(
        base_channels=8, depth=2, max_epochs=20, lr=3e-3, batch_size=8, random_state=0
    )


# %% [markdown]
# ## modAL's `uncertainty_sampling` and segmentation
#
# modAL's uncertainty measures expect `predict_proba` to return class probabilities of
# shape (n_samples, n_classes). A segmentation learner returns one defect probability per
# pixel, shape (n_samples, height, width), so `classifier_uncertainty` silently computes
# something else: one value per image *column*.

# %%
probe = make_segmenter().fit(X[initial], masks[initial])
print("predict_proba:", probe.predict_proba(X[:5]).shape)
print("classifier_uncertainty:", classifier_uncertainty(probe, X[:5]).shape, "(wanted: (5,))")

# %% [markdown]
# The fix is a small strategy of our own: modAL's uncertainty (1 − the probability of the
# predicted class) for every pixel, averaged over the image. sid4ds ships tested versions
# of this idea as baselines: `sid4ds.entropy_sampling` and `sid4ds.margin_sampling`.
# A modAL strategy returns `(indices, scores)`.


# %%
def pixel_uncertainty_sampling(learner, X_pool, n_instances=1):
    """modAL's uncertainty sampling, per pixel, averaged over each image."""
    defect_probability = learner.estimator.predict_proba(X_pool)  # (n, height, width)
    pixel_uncertainty = 1 - np.maximum(defect_probability, 1 - defect_probability)
    return multi_argmax(pixel_uncertainty.mean(axis=(1, 2)), n_instances=n_instances)


# %% [markdown]
# ## The existing loop
#
# `DefectActiveLearner` is modAL's `ActiveLearner` with image and mask support:
# `ActiveLearner.teach` calls scikit-learn's `check_X_y`, which rejects masks of shape
# (n, H, W) and, from scikit-learn 1.8, the keyword modAL passes it (modAL issue #196).


# %%
def active_learning_loop(query_strategy, n_rounds=2, n_instances=20):
    """Label `n_instances` images per round; return the defects found per round."""
    learner = DefectActiveLearner(
        estimator=make_segmenter(),
        query_strategy=query_strategy,
        X_training=X[initial],
        y_training=masks[initial],
    )
    unlabeled = np.setdiff1d(np.arange(len(X)), initial)
    found = []
    for _ in range(n_rounds):
        query_index, X_query = learner.query(X[unlabeled], n_instances=n_instances)
        picked = unlabeled[query_index]
        learner.teach(X_query, masks[picked])  # in real life: the labeller's masks
        unlabeled = np.setdiff1d(unlabeled, picked)
        found.append(int(is_defective[picked].sum()))
    return found, learner


found_uncertainty, _ = active_learning_loop(pixel_uncertainty_sampling)

# %% [markdown]
# ## The same loop with a sid4ds strategy
#
# `sdr_sampling` is SID4DS's strategy for rounds that have labels. It trains a
# label-guided reconstruction scorer on the labelled images the first time it is called
# and keeps it on the learner. Here `functools.partial` hands it a small scorer; with real
# images pass `sdr_sampling` itself. With a sid4ds strategy, `DefectActiveLearner` also
# adds the lowest-scored images of each round as fake normals (all-zero masks) to the
# next training set.

# %%
small_scorer = ReconstructionScorer(
    base_channels=8, depth=2, patch_size=4, max_epochs=6, random_state=0
)
found_sid4ds, sid4ds_learner = active_learning_loop(partial(sdr_sampling, scorer=small_scorer))

# %%
print("| round | defective picked, uncertainty | defective picked, sdr_sampling |")
print("|---|---|---|")
for round_index, (uncertain, sid4ds) in enumerate(
    zip(found_uncertainty, found_sid4ds, strict=True), start=1
):
    print(f"| {round_index} | {uncertain} | {sid4ds} |")
print(f"| total | {sum(found_uncertainty)} | {sum(found_sid4ds)} |")

# %% [markdown]
# ## Reading the result
#
# On a pool this small the numbers move with the seeds: read them as a demonstration of
# the API, not as a benchmark (`docs/benchmarks.md` has those). `sdr_sampling` is only as
# good as the segmentation learner behind it: E_sdr counts G's reconstruction error inside
# the pixels S marks as defect, and by default its rank is averaged with the rank of S's
# own mean probability (`fusion=None` ranks by E_sdr alone, as the paper does). Where S
# marks pixels in nearly every image, as a segmenter trained on a few defective images may,
# E_sdr mostly measures normal surface, and S's probability says little more: that happens
# while the labelled set holds only a handful of defects. The sid4ds strategies leave
# every pool image's score in `learner.pool_scores_`, and the round what it ranked by in
# `learner.sid4ds_state.last_round`, the first things to look at:

# %%
pool_scores = sid4ds_learner.pool_scores_
last_round = sid4ds_learner.sid4ds_state.last_round
print(f"last sdr_sampling query ranked {len(pool_scores)} pool images by {last_round.score}: "
      f"scores {pool_scores.min():.3f} to {pool_scores.max():.3f}")

# %% [markdown]
# SID4DS is designed to start differently: a cold-start query with `msmr_sampling`,
# which needs no labels, replaces the random initial set, so the first labelled batch
# already holds many defects and the segmentation learner has something to learn from
# (`01_quickstart`). `sid4ds.run_sid4ds` runs both stages and orders E_sdr ties by the
# cold-start score instead of a hash.
