"""Precision rules of sid4ds._core.device: what "auto" resolves to, and that the estimators
and their time estimates run the arithmetic it names."""

import numpy as np
import pytest
import torch

from sid4ds import SegmentationLearner
from sid4ds._core.device import autocast, computes_bf16, resolve_precision
from sid4ds.datasets import make_defect_images
from tests.conftest import TINY_NET

CPU = torch.device("cpu")


@pytest.mark.parametrize("has_amx, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_on_a_cpu_with_amx(monkeypatch, cpu_units, has_amx, expected):
    cpu_units(has_amx)
    # AVX512-BF16 instructions alone train slower in bf16 than in fp32: they do not count
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert computes_bf16(CPU) is has_amx
    assert resolve_precision("auto", CPU, training=True) == expected
    assert resolve_precision("auto", CPU, training=False) == "fp32"  # predicts in fp32
    for training in (True, False):  # explicit names are kept
        assert resolve_precision("fp32", CPU, training=training) == "fp32"
        assert resolve_precision("bf16", CPU, training=training) == "bf16"


def test_a_torch_without_the_amx_check_counts_as_a_cpu_without_amx(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", CPU, training=True) == "fp32"


def test_autocast_runs_bf16_only_when_asked():
    layer = torch.nn.Linear(4, 4)
    inputs = torch.ones(2, 4)
    with autocast("bf16", CPU, training=False):
        assert layer(inputs).dtype == torch.bfloat16
    with autocast("fp32", CPU, training=True):
        assert layer(inputs).dtype == torch.float32


@pytest.mark.parametrize("has_amx, same_as", [(True, "bf16"), (False, "fp32")])
def test_an_auto_segmenter_trains_as_it_resolves_and_predicts_in_fp32(
        cpu_units, has_amx, same_as):
    cpu_units(has_amx)
    X, masks = make_defect_images(n_samples=8, image_size=16, defect_ratio=0.5,
                                  random_state=0)

    def probabilities(trained_in: str, predicted_in: str) -> np.ndarray:
        model = SegmentationLearner(**TINY_NET, max_steps=3, precision=trained_in,
                                    random_state=0).fit(X, masks)
        return model.set_params(precision=predicted_in).predict_proba(X)

    auto = probabilities("auto", "auto")
    np.testing.assert_array_equal(auto, probabilities(same_as, "fp32"))
    other = "fp32" if same_as == "bf16" else "bf16"
    assert not np.array_equal(auto, probabilities(other, "fp32"))  # trained otherwise
    assert not np.array_equal(auto, probabilities(same_as, "bf16"))  # predicted in bf16


@pytest.fixture
def entered(monkeypatch):
    """The dtypes of every ``torch.autocast`` entered while the test runs."""
    dtypes = []
    real = torch.autocast

    def recording(*args, **kwargs):
        dtypes.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", recording)
    return dtypes


@pytest.mark.parametrize("train", [True, False])
def test_the_time_estimate_runs_the_estimators_precision(entered, train):
    model = SegmentationLearner(**TINY_NET, max_steps=2, precision="bf16", device="cpu")
    assert model.estimate_seconds(4, (1, 16, 16), train=train) > 0
    assert entered and set(entered) == {torch.bfloat16}
    entered.clear()
    model.set_params(precision="fp32").estimate_seconds(4, (1, 16, 16), train=train)
    assert entered == []


@pytest.mark.parametrize("train", [True, False])
def test_the_time_estimate_of_auto_times_bf16_training_and_fp32_inference(
        entered, cpu_units, train):
    cpu_units(True)
    model = SegmentationLearner(**TINY_NET, max_steps=2, precision="auto", device="cpu")
    model.estimate_seconds(4, (1, 16, 16), train=train)
    assert set(entered) == ({torch.bfloat16} if train else set())
