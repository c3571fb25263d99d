"""The modAL door: query strategies over the round engine
(:mod:`~sid4ds.modal.strategies`) and :class:`~sid4ds.DefectActiveLearner`
(:mod:`~sid4ds.modal.learner`)."""

from sid4ds.modal.learner import DefectActiveLearner
from sid4ds.modal.strategies import msmr_sampling, sdr_sampling, sid4ds_sampling

__all__ = ["DefectActiveLearner", "msmr_sampling", "sdr_sampling", "sid4ds_sampling"]
