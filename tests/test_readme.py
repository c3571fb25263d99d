"""The README's set-up commands are the ones CI runs."""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from modAL.models import ActiveLearner

from sid4ds import ReconstructionScorer, SegmentationLearner, sdr_sampling, sid4ds_sampling

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line.startswith("pip install")]
    assert ci_commands == ['pip install torch==2.13.0 -e ".[test]" && python -m pytest']
    assert ci_commands[0] in readme


def test_readme_main_command_runs_the_demo_subcommand():
    readme = (ROOT / "README.md").read_text()
    assert "pip install torch==2.13.0 -e . && sid4ds demo" in readme
    from sid4ds.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.command == "demo" and args.n_samples == 1000


# --------------------------------------------------------------- the README's modAL code
def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


@pytest.fixture
def tiny_defaults(monkeypatch):
    """Run the README's code as written, with tiny networks and budgets as the defaults."""
    tiny = {SegmentationLearner: {"base_channels": 4, "depth": 2, "max_steps": 30},
            ReconstructionScorer: {"base_channels": 4, "depth": 2, "max_epochs": 2,
                                   "patch_size": 4, "n_blocks": 4}}
    for cls, changes in tiny.items():
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        defaults = tuple(changes.get(p.name, p.default) for p in parameters)
        monkeypatch.setattr(cls.__init__, "__defaults__", defaults)


def test_readme_modal_examples_do_what_the_readme_says(tiny_defaults, monkeypatch):
    first, plain = readme_python_blocks()[:2]
    namespace: dict = {}
    exec(compile(first, "README.md (DefectActiveLearner)", "exec"), namespace)
    learner = namespace["learner"]
    assert learner.estimator.base_channels == 4  # the tiny defaults reached the README code
    assert len(learner.X_training) == 20 and learner.query_strategy is sid4ds_sampling
    X, masks = namespace["X"], namespace["masks"]
    rest = np.setdiff1d(np.arange(len(X)), namespace["idx"])
    if not learner.y_training.any():  # tiny networks may miss them: the labeller finds one
        found = rest[masks[rest].reshape(len(rest), -1).any(axis=1)][:1]
        learner.teach(X[found], masks[found])
        rest = np.setdiff1d(rest, found)
    again, _ = learner.query(X[rest], n_instances=20)  # "once a defect is labelled"
    assert learner.sid4ds_state.last_round.stage == "iterative"  # no switch was made
    assert len(set(again.tolist())) == 20

    exec(compile(plain, "README.md (plain ActiveLearner)", "exec"), namespace)
    modal_learner = namespace["learner"]
    assert type(modal_learner) is ActiveLearner and len(set(namespace["idx"].tolist())) == 20
    # "Its teach and fit do not [work] on current scikit-learn": the reason the README gives
    # (modAL #196), then the masks' shape once that keyword is tolerated
    X, masks = namespace["X"], namespace["masks"]
    for method in (modal_learner.teach, modal_learner.fit):
        with pytest.raises(TypeError, match="force_all_finite"):
            method(X[:2], masks[:2])
    import modAL.models.learners as modal_learners

    strict = modal_learners.check_X_y

    def tolerant(*args, force_all_finite=None, **kwargs):
        return strict(*args, **kwargs)

    monkeypatch.setattr(modal_learners, "check_X_y", tolerant)
    for method in (modal_learner.teach, modal_learner.fit):
        with pytest.raises(ValueError, match="dim 3"):
            method(X[:2], masks[:2])
    # "the first sdr_sampling query trains G on learner.X_training / y_training"
    assert modal_learner.sid4ds_state.engine.sdr_scorer.fit_mode_ == "label_guided"
    unlabelled = ActiveLearner(modal_learner.estimator, query_strategy=sdr_sampling)
    with pytest.raises(ValueError, match="needs labelled images .* X_training/y_training"):
        unlabelled.query(X, n_instances=5)
