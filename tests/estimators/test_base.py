"""The scikit-learn contract of both estimators (shared base class in sid4ds.estimators.base)."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds._core.device import auto_batch_size, resolve_device

from ..conftest import TINY_NET

ESTIMATORS = [
    SegmentationLearner(**TINY_NET, max_epochs=1, random_state=0),
    ReconstructionScorer(**TINY_NET, patch_size=4, n_blocks=4, max_epochs=1, random_state=0),
]
IDS = ["segmentation", "reconstruction"]
SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_repr",
    "check_estimator_cloneable",
    "check_do_not_raise_errors_in_init_or_set_params",
]


def fit(estimator, data):
    images, masks = data
    if isinstance(estimator, SegmentationLearner):
        return estimator.fit(images, masks)
    return estimator.fit(images)


def outputs(estimator, images):
    if isinstance(estimator, SegmentationLearner):
        return estimator.predict_proba(images)
    return estimator.score_samples(images)


@pytest.mark.parametrize("check", SKLEARN_CHECKS)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_applicable_sklearn_checks(estimator, check):
    getattr(estimator_checks, check)(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fit_returns_self_and_leaves_params_alone(estimator, square_defects):
    estimator = clone(estimator)
    params_before = estimator.get_params()
    assert fit(estimator, square_defects) is estimator
    assert estimator.get_params() == params_before
    params = estimator.get_params()
    assert all(key.endswith("_") for key in vars(estimator)
               if key not in params and not key.startswith("_"))
    assert estimator.module_ is not None and estimator.history_


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_clone_of_a_fitted_estimator_is_unfitted(estimator, square_defects):
    fitted = fit(clone(estimator), square_defects)
    cloned = clone(fitted)
    assert not hasattr(cloned, "module_")
    with pytest.raises(NotFittedError):
        outputs(cloned, square_defects[0])


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_not_fitted_error_before_fit(estimator, square_defects):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        outputs(clone(estimator), square_defects[0])


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_pickle_and_joblib_round_trip(estimator, square_defects, dump, tmp_path):
    images = square_defects[0]
    fitted = fit(clone(estimator), square_defects)
    if dump == "pickle":
        restored = pickle.loads(pickle.dumps(fitted))
    else:
        joblib.dump(fitted, tmp_path / "model.joblib")
        restored = joblib.load(tmp_path / "model.joblib")
    assert np.array_equal(outputs(restored, images), outputs(fitted, images))
    assert restored.history_ == fitted.history_
    assert restored.get_params() == fitted.get_params()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_a_model_saved_for_cuda_loads_on_a_cpu_only_machine(
        estimator, square_defects, monkeypatch):
    images = square_defects[0]
    fitted = fit(clone(estimator), square_defects)
    expected = outputs(fitted, images)
    fitted.set_params(device="cuda")  # as if trained with device="cuda"
    payload = pickle.dumps(fitted)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="device='cuda', which is not available here"):
        restored = pickle.loads(payload)
    assert restored.device_.type == "cpu"
    assert np.array_equal(outputs(restored, images), expected)


def test_pickled_state_holds_no_torch_module(square_defects):
    fitted = fit(clone(ESTIMATORS[0]), square_defects)
    state = fitted.__getstate__()
    assert "module_" not in state and "optimizer_" not in state
    saved = state["_estimator_state"]  # what get_state() gives: the one state API
    assert all(value.device.type == "cpu" for value in saved["module"].values())


def test_resolve_device_picks_cuda_only_where_there_is_one(monkeypatch):
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda'.*got 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_auto_batch_size_targets_a_pixel_budget():
    cpu = torch.device("cpu")
    assert auto_batch_size(64, 64, 1, cpu) == 16
    assert auto_batch_size(64, 64, 16, cpu) == 1
    assert auto_batch_size(512, 512, 1, cpu) == 1
    assert auto_batch_size(64, 64, 1, torch.device("cuda")) > auto_batch_size(64, 64, 1, cpu)


@pytest.mark.cuda
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_cuda_fit_matches_cpu_shapes(estimator, square_defects):
    images = square_defects[0]
    on_gpu = fit(clone(estimator).set_params(device="cuda"), square_defects)
    assert on_gpu.device_.type == "cuda"
    assert outputs(on_gpu, images).shape == outputs(
        fit(clone(estimator), square_defects), images).shape


# ---------------------------------------------------------------------- the state API
def continue_training(estimator, data):
    images, masks = data
    if isinstance(estimator, SegmentationLearner):
        return estimator.partial_fit(images, masks)
    return estimator.set_params(warm_start=True).fit(images)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_state_saved_with_torch_save_loads_with_weights_only(estimator, square_defects, tmp_path):
    fitted = fit(clone(estimator), square_defects)
    path = fitted.save(tmp_path / "model.pt")
    state = torch.load(path, weights_only=True)  # tensors and plain values only
    assert state["class"] == type(estimator).__name__ and state["params"]["max_epochs"] == 1
    restored = type(estimator).load(path)
    assert np.array_equal(outputs(restored, square_defects[0]),
                          outputs(fitted, square_defects[0]))
    assert restored.get_params() == fitted.get_params()
    assert restored.history_ == fitted.history_


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_a_restored_state_has_every_fitted_attribute_as_it_was(estimator, square_defects):
    fitted = fit(clone(estimator), square_defects)
    if isinstance(fitted, ReconstructionScorer):  # arrays of other dtypes keep their dtype
        fitted.pixel_mean_ = fitted.pixel_mean_.astype(np.float64) + 1e-9
    state = fitted.get_state()
    restored = type(estimator).from_state(state)
    assert "n_channels_in_" in state["fitted"] and "history_" in state["fitted"]
    for name in state["fitted"]:
        value, back = getattr(fitted, name), getattr(restored, name)
        assert type(back) is type(value), name
        if isinstance(value, np.ndarray):
            assert back.dtype == value.dtype and np.array_equal(back, value), name
        else:
            assert back == value, name


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_a_restored_state_continues_training_bit_exactly(estimator, square_defects):
    uninterrupted = fit(clone(estimator), square_defects)
    state = uninterrupted.get_state()  # optimiser and RNG included
    restored = type(estimator).from_state(state)
    continue_training(uninterrupted, square_defects)
    continue_training(restored, square_defects)
    assert np.array_equal(outputs(restored, square_defects[0]),
                          outputs(uninterrupted, square_defects[0]))
    without_optimizer = type(estimator).from_state({**state, "optimizer": None})
    continue_training(without_optimizer, square_defects)
    assert not np.array_equal(outputs(without_optimizer, square_defects[0]),
                              outputs(uninterrupted, square_defects[0]))


def test_unpickling_and_loading_leave_torch_global_rng_alone(square_defects):
    fitted = fit(clone(ESTIMATORS[0]), square_defects)
    payload = pickle.dumps(fitted)
    before = torch.random.get_rng_state()
    pickle.loads(payload)
    SegmentationLearner.from_state(fitted.get_state())
    assert torch.equal(torch.random.get_rng_state(), before)


def test_set_state_refuses_other_states_with_a_clear_error(square_defects):
    state = fit(clone(ESTIMATORS[0]), square_defects).get_state()
    with pytest.raises(ValueError, match="state is of a SegmentationLearner, not of a "
                                         "ReconstructionScorer"):
        ReconstructionScorer.from_state(state)
    with pytest.raises(ValueError, match="format version 99.*upgrade sid4ds"):
        SegmentationLearner.from_state({**state, "format_version": 99})
    with pytest.raises(ValueError, match="expected a sid4ds estimator state"):
        SegmentationLearner().set_state({"module": {}})
    wider = SegmentationLearner(base_channels=8, depth=2)
    with pytest.raises(ValueError, match="does not fit this SegmentationLearner's parameters"):
        wider.set_state(state)
    with pytest.raises(NotFittedError):
        SegmentationLearner().get_state()


def test_saved_parameters_from_another_version_are_refused_and_lists_become_tuples(
        square_defects):
    state = fit(clone(ESTIMATORS[0]), square_defects).get_state()
    newer = {**state, "sid4ds": "9.0", "params": {**state["params"], "future_knob": 3}}
    with pytest.raises(ValueError, match=r"saved parameters \['future_knob'\] are unknown "
                                         r"to this SegmentationLearner.*\(9\.0\): use that"):
        SegmentationLearner.from_state(newer)
    as_json = {**state["params"], "augment": ["flip"]}  # JSON turns tuples into lists
    restored = SegmentationLearner.from_params(as_json, verbose=2)
    assert restored.augment == ("flip",) and restored.verbose == 2
    assert clone(restored).get_params() == restored.get_params()


# ---------------------------------------------------------------------- time estimates
@pytest.fixture
def timed_inputs():
    """The (height, width) of every input a network runs on while the test runs."""
    sizes: list[tuple[int, int]] = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, inputs: sizes.append(tuple(inputs[0].shape[-2:])))
    yield sizes
    handle.remove()


def test_the_estimate_of_a_fit_counts_the_short_last_batch_of_an_epoch(steady_clock):
    # one epoch of 17 images is a batch of 16 and a batch of 1: about 17/16 full batches,
    # not 2 (M shuffles uniformly); 32 images are 2 full batches
    scorer = ReconstructionScorer(**TINY_NET, patch_size=4, n_blocks=4, max_epochs=1,
                                  device="cpu")
    short = scorer.estimate_seconds(17, (1, 16, 16), train=True)
    full = scorer.estimate_seconds(32, (1, 16, 16), train=True)
    assert short / full == pytest.approx(17 / 32)
    # S's batches with defect_share > 0 are always full: steps count, not images
    segmenter = SegmentationLearner(**TINY_NET, max_steps=10, device="cpu")
    assert segmenter.estimate_seconds(17, (1, 16, 16), train=True) == pytest.approx(
        segmenter.estimate_seconds(32, (1, 16, 16), train=True))


def test_the_estimate_of_a_fit_on_crops_times_the_crops(timed_inputs):
    # 128 px images trained on 16 px windows: a step costs a 16 px step, not a 128 px one
    # (64x the pixels); the estimate announced 3.8x the truth before it timed the window
    cropped = SegmentationLearner(**TINY_NET, max_steps=10, crop_size=16, device="cpu")
    cropped.estimate_seconds(40, (1, 128, 128), train=True)
    assert timed_inputs and max(timed_inputs) == (16, 16)
    timed_inputs.clear()
    SegmentationLearner(**TINY_NET, max_steps=10, device="cpu").estimate_seconds(
        40, (1, 128, 128), train=True)
    assert max(timed_inputs) == (128, 128)
    # scoring runs on whole images whatever the window
    timed_inputs.clear()
    cropped.estimate_seconds(40, (1, 128, 128), train=False)
    assert max(timed_inputs) == (128, 128)


@pytest.mark.parametrize("estimator", [SegmentationLearner, ReconstructionScorer])
def test_a_time_estimate_for_other_images_sets_no_attribute(estimator, square_defects):
    X, masks = square_defects
    model = estimator(**TINY_NET, max_epochs=1, random_state=0)
    unfitted = dict(vars(model))
    model.estimate_seconds(8, (3, 16, 16), train=True)
    assert vars(model) == unfitted  # not even for the time of the estimate
    model.fit(X, masks)
    fitted = dict(vars(model))
    model.estimate_seconds(8, (3, 16, 16), train=False)  # three channels, fitted on one
    assert vars(model).keys() == fitted.keys() and model.n_channels_in_ == X.shape[1]
