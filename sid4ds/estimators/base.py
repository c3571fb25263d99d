"""The one base of the sid4ds estimators: :class:`TorchEstimator`.

It is made of four parts, one concern each, so the estimators only say what a batch's
loss is and how to map images to outputs:

- :mod:`sid4ds.estimators._params`: the parameters, their checks and the network they build;
- :mod:`sid4ds.estimators._fitting`: the one training loop (epochs or steps, shuffling, optimiser,
  schedule, best-weights window, history, progress bar) and the time a fit takes;
- :mod:`sid4ds.estimators._inference`: batched inference and the chunk-level interface the
  query strategies use (below);
- :mod:`sid4ds.estimators._persistence`: the estimator's state, one public API
  (:meth:`TorchEstimator.get_state` / :meth:`TorchEstimator.set_state`) that pickling and
  the labelling session both use.

The chunk-level interface
-------------------------
Query strategies score pools that need not fit in memory: they split the pool into chunks
and run one function per chunk, serially or on joblib/Dask workers. The public pieces:

- :meth:`TorchEstimator.check_pool` turns ``X`` into an :class:`~sid4ds.ImagePool` that fits
  the fitted network (channels, divisibility), naming the argument in errors;
- :meth:`TorchEstimator.map_pool` runs a chunk function over such a pool and joins the
  results (chunk boundaries are multiples of the inference batch, so results never depend
  on ``n_jobs``);
- :meth:`TorchEstimator.images_per_batch` is how many images one forward pass takes;
- methods whose name ends in ``_chunk`` (``SegmentationLearner.predict_proba_chunk``,
  ``ReconstructionScorer.region_errors_chunk``, ...) compute on one chunk: float32 images
  of shape (n, C, H, W) that :meth:`check_pool` already validated. They never validate
  and never split further than one forward pass needs.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.utils import Tags

from sid4ds.estimators._fitting import TrainingLoop
from sid4ds.estimators._inference import ChunkedInference
from sid4ds.estimators._params import EstimatorParams
from sid4ds.estimators._persistence import EstimatorState

__all__ = ["TorchEstimator", "is_fitted"]


def is_fitted(estimator: Any) -> bool:
    """True when a sid4ds estimator has a trained network (``module_``)."""
    return getattr(estimator, "module_", None) is not None


class TorchEstimator(EstimatorParams, TrainingLoop, ChunkedInference, EstimatorState,
                     BaseEstimator):
    """The base of the sid4ds estimators (see the module docstring).

    Subclasses define ``_module_kwargs`` (the network), ``_check_params`` and ``fit``, which
    calls the one training loop :meth:`_train` with a batch loss.
    """

    # Whether ``fit`` needs ``y`` (the masks): scikit-learn's target tag.
    _needs_target = False
    # Whether ``lr="auto"`` (sid4ds.nn.training.auto_learning_rate) is accepted.
    _auto_lr = False

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._needs_target
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
