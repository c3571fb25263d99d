"""The final model: folds, counts, the choice of threshold and checkpoint, the final fit."""

import copy

import numpy as np
import pytest
import torch

from sid4ds import SegmentationLearner
from sid4ds._core.parallel import fit_workers, torch_threads
from sid4ds.estimators.final_model import (
    CrossValidation,
    check_final_settings,
    cross_validate,
    detection_counts,
    detection_scores,
    final_model_seconds,
    final_segmenter,
    fit_final_model,
    fold_assignment,
    train_final_model,
)
from sid4ds.metrics import defect_iou, image_detection

TINY = {"base_channels": 4, "depth": 2, "augment": False, "lr": 0.03,
        "lr_schedule": "constant"}


def squares(n_samples, seed, size=16):
    """Noise with a bright 4x4 square in every other image: quick to learn."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.3, 0.05, (n_samples, 1, size, size)).clip(0, 1).astype(np.float32)
    masks = np.zeros((n_samples, size, size), np.uint8)
    for index in range(0, n_samples, 2):
        row, col = rng.integers(0, size - 4, 2)
        X[index, 0, row:row + 4, col:col + 4] = 0.9
        masks[index, row:row + 4, col:col + 4] = 1
    return X, masks


class Underconfident(SegmentationLearner):
    """A learner whose probabilities are 0.4 of what it learned: 0.5 marks nothing."""

    def predict_proba(self, X):
        return super().predict_proba(X) * np.float32(0.4)


# ---------------------------------------------------------------------- counting
def test_counts_agree_with_the_metrics_at_every_threshold():
    rng = np.random.default_rng(0)
    probabilities = rng.random((12, 8, 8))
    masks = (rng.random((12, 8, 8)) < 0.1).astype(np.uint8)
    masks[:5] = 0  # five normal images
    counts = detection_counts(probabilities, masks, [0.3, 0.7, 0.95])
    scores = detection_scores(counts)
    for position, threshold in enumerate((0.3, 0.7, 0.95)):
        predicted = probabilities >= threshold
        assert scores["iou"][position] == pytest.approx(defect_iou(masks, predicted))
        rates = image_detection(masks, predicted)
        assert scores["detected"][position] == pytest.approx(rates["detected"])
        assert scores["false_alarms"][position] == pytest.approx(rates["false_alarms"])


def test_defect_ratio_weighs_normal_images_as_if_they_were_that_common():
    rng = np.random.default_rng(1)
    probabilities = rng.random((4, 6, 6))
    masks = np.zeros((4, 6, 6), np.uint8)
    masks[:2, 1:4, 1:4] = 1  # two defective, two normal
    # a third defective: as if the two normal images were each there twice
    doubled = np.concatenate([probabilities, probabilities[2:]])
    doubled_masks = np.concatenate([masks, masks[2:]])
    weighted = detection_scores(detection_counts(probabilities, masks, [0.5]),
                                defect_ratio=1 / 3)
    plain = detection_scores(detection_counts(doubled, doubled_masks, [0.5]))
    assert weighted["iou"][0] == pytest.approx(plain["iou"][0])
    assert weighted["iou"][0] < detection_scores(
        detection_counts(probabilities, masks, [0.5]))["iou"][0]


def test_scores_are_nan_where_there_is_nothing_to_measure():
    masks = np.zeros((3, 4, 4), np.uint8)
    scores = detection_scores(detection_counts(np.full((3, 4, 4), 0.9), masks, [0.5]),
                              defect_ratio=0.1)
    assert np.isnan(scores["iou"][0]) and np.isnan(scores["detected"][0])
    assert scores["false_alarms"][0] == 1.0


def test_choose_takes_the_best_mean_iou_and_the_estimate_its_spread():
    # two folds, two checkpoints, three thresholds: the middle threshold of the second
    # checkpoint is best on average
    intersection = np.array([[[1, 5, 2], [2, 8, 1]], [[1, 3, 2], [2, 6, 1]]])
    counts = {"intersection": intersection, "union": np.full((2, 2, 3), 10),
              "false_pixels": np.zeros((2, 2, 3), int), "found": np.ones((2, 2, 3), int),
              "flagged": np.zeros((2, 2, 3), int)}
    cv = CrossValidation(thresholds=np.array([0.2, 0.5, 0.8]), steps=np.array([10, 20]),
                         counts=counts, n_defective=np.array([1, 1]),
                         n_normal=np.array([1, 1]), n_training=np.array([4, 4]),
                         defect_ratio=None).choose()
    assert (cv.threshold, cv.n_steps) == (0.5, 20)
    assert cv.estimate()["iou"] == pytest.approx({"mean": 0.7, "std": 0.1})
    assert cv.curve("steps")["iou"].tolist() == pytest.approx([0.4, 0.7])
    restored = CrossValidation.from_dict(cv.to_dict())
    assert (restored.threshold, restored.n_steps) == (0.5, 20)
    assert restored.estimate() == cv.estimate()


def test_weighted_counts_are_the_counts_of_the_images_repeated_by_weight():
    rng = np.random.default_rng(2)
    probabilities = rng.random((6, 5, 5))
    masks = (rng.random((6, 5, 5)) < 0.2).astype(np.uint8)
    masks[:2] = 0
    weights = np.array([3, 0, 1, 2, 0, 4])
    repeated = detection_counts(np.repeat(probabilities, weights, axis=0),
                                np.repeat(masks, weights, axis=0), [0.2, 0.6])
    weighted = detection_counts(probabilities, masks, [0.2, 0.6], weights=weights)
    for key, value in repeated.items():
        assert np.asarray(weighted[key]) == pytest.approx(np.asarray(value), abs=1e-9), key
    with pytest.raises(ValueError, match="weights must be finite and >= 0.*got -1"):
        detection_counts(probabilities, masks, [0.5], weights=[1, 1, 1, 1, 1, -1])
    with pytest.raises(ValueError, match=r"weights has shape \(2,\); expected one weight"):
        detection_counts(probabilities, masks, [0.5], weights=[1, 1])


def test_a_weighted_estimate_restores_with_the_cross_validation():
    counts = {key: np.ones((2, 1, 1), int) for key in
              ("intersection", "union", "found", "flagged")}
    counts["false_pixels"] = np.zeros((2, 1, 1), int)
    weighted = {**{key: value * 1.0 for key, value in counts.items()},
                "found": np.array([[[1.0]], [[0.5]]]),
                "n_defective": np.array([1.0, 2.0]), "n_normal": np.array([1.0, 1.0])}
    cv = CrossValidation(thresholds=np.array([0.5]), steps=np.array([10]), counts=counts,
                         n_defective=np.array([1, 1]), n_normal=np.array([1, 1]),
                         n_training=np.array([2, 2]), defect_ratio=None,
                         weighted_counts=weighted).choose()
    assert cv.estimate()["detected"]["mean"] == 1.0
    assert cv.estimate(weighted=True)["detected"] == pytest.approx({"mean": 0.625,
                                                                    "std": 0.375})
    assert "weighted to the population" in cv.summary()
    restored = CrossValidation.from_dict(cv.to_dict())
    assert restored.estimate(weighted=True) == cv.estimate(weighted=True)
    plain = CrossValidation.from_dict({**cv.to_dict(), "weighted_counts": None})
    with pytest.raises(ValueError, match="weighted=True needs .* estimate weights"):
        plain.estimate(weighted=True)
    assert "weighted" not in plain.summary()


# ---------------------------------------------------------------------- folds
def test_folds_keep_groups_whole_and_spread_the_defective_images():
    defective = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    groups = np.array(["a", "a", "b", "c", "d", "e", "a", "f", "g", "h", "i", "j", "k", "l"])
    folds = fold_assignment(defective, 3, groups=groups, random_state=0)
    assert len(set(folds[groups == "a"])) == 1
    assert all(defective[folds == fold].any() for fold in range(3))


def test_train_only_images_are_never_validated_and_few_defects_mean_fewer_folds():
    defective = np.array([1, 1, 0, 0, 0, 0, 1], bool)
    train_only = np.array([0, 0, 0, 0, 1, 1, 1], bool)
    folds = fold_assignment(defective, 5, train_only=train_only, random_state=0)
    assert set(folds[~train_only]) == {0, 1}  # two defective images to validate: 2 folds
    assert (folds[train_only] == -1).all()
    with pytest.raises(ValueError, match="at least 2 source images"):
        fold_assignment(defective, 3, groups=["a", "a", "b", "c", "d", "e", "f"],
                        train_only=train_only)


def test_fold_assignment_is_seeded():
    defective = np.arange(20) < 6
    first = fold_assignment(defective, 3, random_state=3)
    assert (first == fold_assignment(defective, 3, random_state=3)).all()
    assert not all((first == fold_assignment(defective, 3, random_state=seed)).all()
                   for seed in range(4, 8))


def test_estimate_weights_deal_every_weight_across_the_folds_and_equal_ones_change_nothing():
    defective = np.r_[np.ones(9, bool), np.zeros(12, bool)]
    weights = np.r_[np.ones(6), np.full(3, 10.0), np.ones(8), np.full(4, 10.0)]
    folds = fold_assignment(defective, 3, weights=weights, random_state=0)
    audit = weights == 10.0
    assert sorted(folds[audit & defective].tolist()) == [0, 1, 2]
    assert sorted(np.bincount(folds[audit & ~defective]).tolist()) == [1, 1, 2]
    plain = fold_assignment(defective, 3, random_state=0)
    assert (fold_assignment(defective, 3, weights=np.ones(21), random_state=0) == plain).all()


# ---------------------------------------------------------------------- settings
def test_final_settings_are_checked_by_name():
    assert check_final_settings({"lr": 1e-3})["n_folds"] == 3
    with pytest.raises(ValueError, match="unknown setting 'nfolds'"):
        check_final_settings({"nfolds": 3})
    with pytest.raises(ValueError, match="n_folds must be >= 2"):
        check_final_settings({"n_folds": 1})
    with pytest.raises(ValueError, match="does not take 'max_epochs'"):
        check_final_settings({"max_epochs": 30})
    with pytest.raises(ValueError, match="start must be one of"):
        check_final_settings({"start": "warm"})
    with pytest.raises(ValueError, match="lr must be in"):
        check_final_settings({"lr": -1.0})
    with pytest.raises(ValueError, match="parallel_fits must be 'auto' or an int"):
        check_final_settings({"parallel_fits": "all"})
    with pytest.raises(TypeError, match="paste_defects must be True or False; got 'yes'"):
        check_final_settings({"paste_defects": "yes"})


def test_final_segmenter_keeps_the_recipe_and_counts_in_steps():
    final = final_segmenter(SegmentationLearner(lr=1e-3, max_epochs=30, best_window=20,
                                                warm_start=True).get_params(),
                            {"max_steps": 700})
    assert (final.lr, final.max_steps, final.max_epochs, final.best_window,
            final.warm_start) == (1e-3, 700, None, 0, False)


def test_the_final_model_pastes_defects_onto_s_s_own_augmentations():
    own = SegmentationLearner(augment=("flip", "rot90")).get_params()
    assert final_segmenter(own).augment == ("paste", "flip", "rot90")
    assert final_segmenter(own, {"paste_defects": False}).augment == ("flip", "rot90")
    assert final_segmenter(own, {"augment": ["paste", "flip"]}).augment == ("paste", "flip")
    assert final_segmenter(SegmentationLearner(augment=False).get_params()).augment == (
        "paste",)
    # S's default pastes already; paste_defects=False takes the pasting out of the final model
    pasting = SegmentationLearner(augment=("paste", "flip")).get_params()
    assert final_segmenter(pasting, {"paste_defects": False}).augment == ("flip",)


# ---------------------------------------------------------------------- training
def test_on_step_stops_the_fit_where_an_unstopped_fit_passed():
    X, masks = squares(8, 0)
    seen = {}

    def watch(done):
        if done == 3:
            seen["weights"] = copy.deepcopy(full.module_.state_dict())

    full = SegmentationLearner(**TINY, max_steps=6, random_state=0)
    full.fit(X, masks, on_step=watch)
    stopped = SegmentationLearner(**TINY, max_steps=6, random_state=0)
    stopped.fit(X, masks, on_step=lambda done: done >= 3)
    assert sum(entry["steps"] for entry in stopped.history_) == 3
    for key, value in stopped.module_.state_dict().items():
        assert torch.equal(value, seen["weights"][key]), key


def test_predicting_at_checkpoints_does_not_change_the_training():
    X, masks = squares(8, 0)
    plain = SegmentationLearner(**TINY, max_steps=5, random_state=0).fit(X, masks)
    watched = SegmentationLearner(**TINY, max_steps=5, random_state=0)
    watched.fit(X, masks, on_step=lambda done: watched.predict_proba(X[:2]) is None)
    assert np.array_equal(plain.predict_proba(X), watched.predict_proba(X))


def test_the_cross_validated_threshold_beats_half_where_half_is_wrong():
    X, masks = squares(24, 0)
    X_test, masks_test = squares(24, 1)
    learner = Underconfident(**TINY, max_steps=20, random_state=0)
    model, cv = fit_final_model(learner, X, masks, n_folds=2, n_checkpoints=2,
                                random_state=0)
    assert cv.threshold < 0.5 and model.threshold == cv.threshold
    probabilities = model.predict_proba(X_test)
    at_half = defect_iou(masks_test, probabilities >= 0.5)
    chosen = defect_iou(masks_test, probabilities >= cv.threshold)
    assert at_half == 0.0 and chosen > 0.3
    assert cv.estimate()["iou"]["mean"] > 0.3


def test_fake_normals_are_trained_on_but_never_validated():
    X, masks = squares(20, 2)
    train_only = np.arange(20) >= 16  # four normal images given as fake normals
    cv = cross_validate(SegmentationLearner(**TINY, max_steps=4, random_state=0), X, masks,
                        train_only=train_only, n_folds=2, n_checkpoints=1, random_state=0)
    assert cv.n_defective.sum() + cv.n_normal.sum() == 16
    assert (cv.n_training == 20 - np.array([cv.n_defective + cv.n_normal]).ravel()).all()


def faint_squares(n_samples, seed, size=16):
    """Defective images whose square is as faint as the noise: S cannot find them."""
    X, masks = squares(n_samples, seed, size)
    X[masks.astype(bool)[:, None]] = np.float32(0.32)
    return X, masks


def test_the_weighted_estimate_is_for_the_population_the_images_stand_for():
    # a ranked set holds clear defects; a random audit of the rest holds faint ones that
    # stand for 4 images each: the pool's truth is mostly faint defects
    X_clear, masks_clear = squares(16, 4)
    X_faint, masks_faint = faint_squares(12, 5)
    X, masks = np.concatenate([X_clear, X_faint]), np.concatenate([masks_clear, masks_faint])
    weights = np.r_[np.ones(16), np.full(12, 4.0)]
    model, cv = fit_final_model(SegmentationLearner(**TINY, max_steps=80, random_state=0),
                                X, masks, estimate_weight=weights, n_folds=2,
                                n_checkpoints=1, random_state=0)
    pool_clear, pool_masks_clear = squares(16, 6)
    pool_faint, pool_masks_faint = faint_squares(48, 7)
    pool_masks = np.concatenate([pool_masks_clear, pool_masks_faint])
    predicted = model.predict(np.concatenate([pool_clear, pool_faint]))
    truth = {"iou": defect_iou(pool_masks, predicted),
             "detected": image_detection(pool_masks, predicted)["detected"]}
    for key, true_value in truth.items():
        plain = cv.estimate()[key]["mean"]
        weighted = cv.estimate(weighted=True)[key]["mean"]
        assert abs(weighted - true_value) < abs(plain - true_value) and weighted < plain, key


def test_estimate_weight_is_checked_by_name():
    X, masks = squares(12, 8)
    tiny = SegmentationLearner(**TINY, max_steps=2, random_state=0)
    with pytest.raises(ValueError, match=r"estimate_weight has shape \(3,\)"):
        cross_validate(tiny, X, masks, estimate_weight=[1, 2, 3], parallel_fits=1)
    zero_on_defects = np.where(masks.any(axis=(1, 2)), 0.0, 1.0)
    with pytest.raises(ValueError, match="every defective image .* a weight of 0"):
        cross_validate(tiny, X, masks, estimate_weight=zero_on_defects, parallel_fits=1)


def test_the_final_fit_trains_the_chosen_length_and_is_seeded():
    X, masks = squares(16, 3)
    learner = SegmentationLearner(**TINY, max_steps=8)
    first, cv = fit_final_model(learner, X, masks, n_folds=2, n_checkpoints=4,
                                random_state=5)
    assert sum(entry["steps"] for entry in first.history_) == cv.n_steps
    assert cv.n_steps in (2, 4, 6, 8)
    again, cv_again = fit_final_model(learner, X, masks, n_folds=2, n_checkpoints=4,
                                      random_state=5)
    assert cv_again.to_dict()["counts"] == cv.to_dict()["counts"]
    assert np.array_equal(first.predict_proba(X), again.predict_proba(X))
    assert learner.random_state is None  # the configuration is not changed


@pytest.mark.parametrize("chosen", [0, -1])
def test_fits_side_by_side_train_the_models_the_fits_in_turn_train(monkeypatch, chosen):
    def choose(cv):  # the first checkpoint (in the middle of an epoch) or the last
        cv.n_steps, cv.threshold = int(cv.steps[chosen]), 0.3
        return cv

    monkeypatch.setattr(CrossValidation, "choose", choose)
    X, masks = squares(24, 3)  # 2 steps an epoch of 16: checkpoints at 3, 6, 9 and 12 steps
    learner = SegmentationLearner(**TINY, max_steps=12)
    said = []
    side, cv_side = fit_final_model(learner, X, masks, n_folds=2, n_checkpoints=4,
                                    parallel_fits=3, random_state=5, say=said.append)
    _, threads = fit_workers(3, 3, torch.device("cpu"), learner.max_steps)
    with torch_threads(threads):  # each worker's threads, here, one fit after another
        turn, cv_turn = fit_final_model(learner, X, masks, n_folds=2, n_checkpoints=4,
                                        parallel_fits=1, random_state=5)
    assert cv_side.to_dict()["counts"] == cv_turn.to_dict()["counts"]
    assert cv_side.n_steps == cv_turn.n_steps == (3 if chosen == 0 else 12)
    assert side.threshold == 0.3 and side.verbose == learner.verbose
    # the whole budget's fit of a worker, kept at the chosen checkpoint: the model a fit
    # stopped there makes, weights, history, optimiser and RNG
    assert np.array_equal(side.predict_proba(X), turn.predict_proba(X))
    assert [(entry["steps"], entry["loss"]) for entry in side.history_] == [
        (entry["steps"], entry["loss"]) for entry in turn.history_]
    assert sum(entry["steps"] for entry in side.history_) == cv_side.n_steps
    side_state, turn_state = side.get_state(), turn.get_state()
    assert side_state["rng"] == turn_state["rng"]
    for key, value in turn_state["optimizer"]["state"].items():
        assert torch.equal(side_state["optimizer"]["state"][key]["exp_avg"], value["exp_avg"])
    assert any("3 fits side by side" in message for message in said)
    assert not any("training the final model" in message for message in said)


def test_train_final_model_applies_the_settings():
    X, masks = squares(16, 4)
    train_only = np.arange(16) >= 14
    in_loop = SegmentationLearner(**TINY, max_steps=3, random_state=0).fit(X, masks)
    model, cv = train_final_model(in_loop, X, masks, train_only=train_only,
                                  settings={"max_steps": 4, "n_folds": 2, "n_checkpoints": 1,
                                            "fake_normals": False},
                                  random_state=0)
    assert cv.n_training.sum() == 14  # without the fake normals
    warm, _ = train_final_model(in_loop, X, masks,
                                settings={"max_steps": 4, "n_folds": 2, "n_checkpoints": 1,
                                          "start": "in_loop"}, random_state=0)
    assert sum(entry["steps"] for entry in warm.history_) == 3 + 4  # trained further
    with pytest.raises(ValueError, match="not fitted"):
        train_final_model(SegmentationLearner(**TINY), X, masks,
                          settings={"start": "in_loop"})


@pytest.mark.parametrize("has_amx, same_as", [(True, "bf16"), (False, "fp32")])
def test_the_final_model_trains_in_bf16_only_on_a_cpu_with_amx(cpu_units, has_amx, same_as):
    cpu_units(has_amx)
    X, masks = squares(12, 6)
    in_loop = SegmentationLearner(**TINY, max_steps=3, random_state=0)  # fp32 in the rounds
    # one training length; the fits in this process, whose CPU units are patched
    small = {"max_steps": 4, "n_folds": 2, "n_checkpoints": 1, "parallel_fits": 1}

    def final(settings):
        model, _ = train_final_model(in_loop, X, masks, settings={**small, **settings},
                                     random_state=0)
        return model.set_params(precision="fp32").predict_proba(X)  # as "auto" predicts

    default = final({})
    np.testing.assert_array_equal(default, final({"precision": same_as}))
    other = final({"precision": "fp32" if same_as == "bf16" else "bf16"})
    assert not np.array_equal(default, other)


def test_the_announced_time_counts_every_fit_of_the_final_models_budget(steady_clock):
    in_loop = SegmentationLearner(**TINY, max_steps=3)
    shape = (1, 16, 16)

    def announced(**settings):
        return final_model_seconds(in_loop, 32, shape, settings)

    base = announced(max_steps=40, n_folds=2, parallel_fits=1)
    assert base > 0
    assert announced(max_steps=80, n_folds=2, parallel_fits=1) == pytest.approx(2 * base)
    assert announced(max_steps=40, n_folds=4, parallel_fits=1) == pytest.approx(5 / 3 * base)
    # two at a time: the 3 fits take two fits' time, and so do 4
    assert announced(max_steps=40, n_folds=2, parallel_fits=2) == pytest.approx(2 / 3 * base)
    assert announced(max_steps=40, n_folds=3, parallel_fits=2) == pytest.approx(2 / 3 * base)
    with pytest.raises(ValueError, match="unknown setting 'folds'"):
        final_model_seconds(in_loop, 32, shape, {"folds": 2})
