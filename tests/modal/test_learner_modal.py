"""DefectActiveLearner is modAL's ActiveLearner on data that are not images (issues 12, 33).

The reference is a plain ``modAL.models.ActiveLearner`` whose ``check_X_y`` call is made to
work: modAL-python 0.4.2.1 passes ``force_all_finite``, which scikit-learn 1.8 removed (modAL
issue #196), so the ``reference`` fixture translates it to ``ensure_all_finite``. The cases
follow those of modAL's own test suite (tests/core_tests.py): random 2-D arrays with integer
and vector labels, 1-D data, sparse lil/csc/csr matrices, lists (of rows and of texts),
NaN/inf with ``force_all_finite``, ``teach`` with ``bootstrap`` × ``only_new``, ``query``
with the uncertainty strategies and with custom ones, ``predict``/``predict_proba``/``score``
and a Committee of several learners; modAL's defaults (the strategy, the order of the
constructor's arguments) and data frames on current pandas. Each test runs the same data and
seeds through both. ``benchmarks/modal_conformance.py`` runs modAL's own suite against it.
"""

from __future__ import annotations

import copy
import inspect

import modAL.models.learners
import numpy as np
import pytest
import scipy.sparse as sp
from modAL.batch import uncertainty_batch_sampling
from modAL.disagreement import max_disagreement_sampling, vote_entropy_sampling
from modAL.models import ActiveLearner, Committee
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import check_X_y

from sid4ds import (
    DefectActiveLearner,
    ReconstructionScorer,
    msmr_sampling,
    sdr_sampling,
    sid4ds_sampling,
)
from sid4ds.datasets.pool import ImagePool
from sid4ds.modal.learner import default_sampling

KINDS = ["dense", "csr", "csc", "lil", "list"]


@pytest.fixture
def reference(monkeypatch):
    """modAL's ActiveLearner, its check_X_y call translated to current scikit-learn."""

    def check_X_y_now(*args, force_all_finite=True, **kwargs):
        return check_X_y(*args, ensure_all_finite=force_all_finite, **kwargs)

    monkeypatch.setattr(modAL.models.learners, "check_X_y", check_X_y_now)
    return ActiveLearner


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Records what it was trained on; has partial_fit so a warm start would show."""

    def fit(self, X, y, **fit_kwargs):
        self.calls_ = [*getattr(self, "calls_", []),
                       ("fit", copy.deepcopy(X), copy.deepcopy(y), fit_kwargs)]
        self.classes_ = np.unique(np.asarray(y))
        return self

    def partial_fit(self, X, y, **fit_kwargs):
        self.calls_ = [*getattr(self, "calls_", []),
                       ("partial_fit", copy.deepcopy(X), copy.deepcopy(y), fit_kwargs)]
        return self

    def predict_proba(self, X):
        first = np.asarray(X[:, 0].todense() if sp.issparse(X) else X[:, 0]).ravel()
        return np.column_stack([first, 1 - first])


def make_data(kind, n_rows=20, n_features=3, seed=0, vector_labels=False):
    """Rows of one input kind and binary labels (both classes present)."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_features))
    if vector_labels:
        y = rng.integers(0, 2, size=(n_rows, n_features + 1))
    else:
        y = (dense[:, 0] > np.median(dense[:, 0])).astype(int)
    if kind == "dense":
        return dense, y
    if kind == "1d":
        return dense[:, 0], y
    if kind == "list":
        return dense.tolist(), y.tolist()
    dense[dense < 0.3] = 0.0  # some structural zeros
    return sp.csr_matrix(dense).asformat(kind), y


def rows(X, indices):
    if isinstance(X, list):
        return [X[i] for i in indices]
    return X[indices]


def assert_same_data(ours, theirs):
    assert type(ours) is type(theirs)
    if sp.issparse(theirs):
        assert ours.format == theirs.format and ours.shape == theirs.shape
        assert (ours != theirs).nnz == 0
    elif isinstance(theirs, list):
        assert ours == theirs
    else:
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)


def assert_same_calls(ours, theirs):
    assert [call[0] for call in ours] == [call[0] for call in theirs]
    for call_ours, call_theirs in zip(ours, theirs, strict=True):
        assert_same_data(call_ours[1], call_theirs[1])  # X the estimator saw
        assert_same_data(call_ours[2], call_theirs[2])  # y
        assert call_ours[3] == call_theirs[3]  # fit_kwargs


def test_plain_modal_needs_the_reference_patch_but_defect_active_learner_does_not():
    X, y = make_data("dense")
    learner = DefectActiveLearner(RecordingClassifier(), uncertainty_sampling)
    learner.teach(X, y)  # no patch in this test
    assert_same_data(learner.X_training, X)
    if "force_all_finite" not in inspect.signature(check_X_y).parameters:
        with pytest.raises(TypeError, match="force_all_finite"):
            ActiveLearner(RecordingClassifier()).teach(X, y)


@pytest.mark.parametrize(("kind", "vector_labels"), [
    ("dense", False), ("dense", True), ("1d", False), ("list", False), ("list", True),
    ("csr", False), ("csr", True), ("csc", False), ("lil", False),
])
def test_add_training_data_stacks_like_modal(reference, kind, vector_labels):
    X, y = make_data(kind, n_rows=12, vector_labels=vector_labels)
    if kind == "list" and vector_labels:
        y = np.asarray(y).tolist()
    initial, first, second = range(5), range(5, 6), range(6, 12)
    learners = [cls(estimator=RecordingClassifier(), X_training=rows(X, initial),
                    y_training=rows(y, initial))
                for cls in (DefectActiveLearner, reference)]
    for learner in learners:
        for part in (first, second):
            learner._add_training_data(rows(X, part), rows(y, part))
    ours, theirs = learners
    assert_same_data(ours.X_training, theirs.X_training)
    assert_same_data(ours.y_training, theirs.y_training)
    assert len(ours.estimator.calls_) == 1  # fitted at construction, not by adding data


def test_the_initial_training_data_are_kept_as_passed(reference):
    for kind in ("dense", "list", "csr"):
        X, y = make_data(kind)
        ours = DefectActiveLearner(RecordingClassifier(), X_training=X, y_training=y)
        theirs = reference(RecordingClassifier(), X_training=X, y_training=y)
        assert ours.X_training is X and ours.y_training is y  # modAL stores, never copies
        assert theirs.X_training is X
        assert_same_calls(ours.estimator.calls_, theirs.estimator.calls_)


def test_add_training_data_rejects_what_modal_rejects(reference):
    X, y = make_data("dense", n_rows=10)
    for cls in (DefectActiveLearner, reference):
        learner = cls(estimator=RecordingClassifier(), X_training=X[:5], y_training=y[:5])
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            learner._add_training_data(X[5:], np.zeros(10, dtype=int))
        with pytest.raises(ValueError, match="dimensions of the new training data"):
            learner._add_training_data(np.hstack([X[5:], X[5:]]), y[5:])
        assert_same_data(learner.X_training, X[:5])  # nothing half-added
        assert_same_data(learner.y_training, y[:5])
    ours = DefectActiveLearner(RecordingClassifier(), X_training=X[:5], y_training=y[:5])
    with pytest.raises(ValueError, match="dimensions of the new training data"):
        ours._add_training_data(X[5:], np.zeros((5, 2), dtype=int))  # y does not stack
    assert ours.X_training.shape == (5, 3)  # modAL 0.4.2.1 would keep the new X here


@pytest.mark.parametrize("kind", ["dense", "csr", "list"])
@pytest.mark.parametrize("only_new", [False, True])
def test_teach_matches_modal(reference, kind, only_new):
    X, y = make_data(kind, n_rows=16)
    learners = [cls(estimator=RecordingClassifier(), X_training=rows(X, range(10)),
                    y_training=rows(y, range(10)))
                for cls in (DefectActiveLearner, reference)]
    for learner in learners:
        learner.teach(rows(X, range(10, 13)), rows(y, range(10, 13)), only_new=only_new)
        learner.teach(rows(X, range(13, 16)), rows(y, range(13, 16)), only_new=only_new)
    ours, theirs = learners
    assert_same_data(ours.X_training, theirs.X_training)
    assert_same_data(ours.y_training, theirs.y_training)
    # only_new: modAL fits on the new rows and does not keep them
    assert len(ours.y_training) == (10 if only_new else 16)
    assert_same_calls(ours.estimator.calls_, theirs.estimator.calls_)
    assert {call[0] for call in ours.estimator.calls_} == {"fit"}  # never partial_fit


@pytest.mark.parametrize("only_new", [False, True])
def test_bootstrap_fits_a_resample_from_random_state_not_the_global_rng(reference, only_new):
    X, y = make_data("dense", n_rows=16)

    def fitted_rows(random_state):
        learner = DefectActiveLearner(RecordingClassifier(), X_training=X[:10],
                                      y_training=y[:10], random_state=random_state)
        learner.teach(X[10:], y[10:], bootstrap=True, only_new=only_new)
        _, X_fit, y_fit, _ = learner.estimator.calls_[-1]
        return X_fit, y_fit

    source_X, source_y = (X[10:], y[10:]) if only_new else (X, y)
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002
    X_fit, y_fit = fitted_rows(random_state=0)
    assert np.array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002
    assert X_fit.shape == source_X.shape  # as many rows as modAL draws
    matches = (X_fit[:, None, :] == source_X[None]).all(axis=2)
    assert matches.any(axis=1).all()  # every fitted row is a training row ...
    assert np.array_equal(y_fit, source_y[matches.argmax(axis=1)])  # ... with its label
    assert not np.array_equal(X_fit, source_X)  # resampled, not the rows in order
    again_X, _ = fitted_rows(random_state=0)
    assert np.array_equal(again_X, X_fit)

    theirs = reference(RecordingClassifier(), X_training=X[:10], y_training=y[:10])
    theirs.teach(X[10:], y[10:], bootstrap=True, only_new=only_new)
    assert theirs.estimator.calls_[-1][1].shape == X_fit.shape


def test_bootstrap_works_on_sparse_and_list_rows():
    for kind in ("csr", "list"):
        X, y = make_data(kind, n_rows=8)
        learner = DefectActiveLearner(RecordingClassifier(), X_training=X, y_training=y,
                                      bootstrap_init=True, random_state=1)
        _, X_fit, y_fit, _ = learner.estimator.calls_[-1]
        assert type(X_fit) is type(X) and len(y_fit) == 8


@pytest.mark.parametrize("kind", ["dense", "csr", "list"])
def test_fit_forgets_and_replaces_like_modal(reference, kind):
    X, y = make_data(kind, n_rows=12)
    learners = [cls(estimator=RecordingClassifier(), X_training=rows(X, range(6)),
                    y_training=rows(y, range(6)))
                for cls in (DefectActiveLearner, reference)]
    for learner in learners:
        assert learner.fit(rows(X, range(6, 12)), rows(y, range(6, 12))) is learner
    ours, theirs = learners
    assert ours.X_training is not None
    assert_same_data(ours.X_training, theirs.X_training)
    assert_same_calls(ours.estimator.calls_, theirs.estimator.calls_)


def test_nan_and_inf_follow_force_all_finite(reference):
    y = np.array([0, 1] * 5)
    for bad in (np.nan, np.inf):
        X = np.full((10, 2), bad)
        for cls in (DefectActiveLearner, reference):
            # modAL takes force_all_finite through **fit_kwargs (and hands it to fit as well)
            learner = cls(estimator=RecordingClassifier(), X_training=X, y_training=y,
                          force_all_finite=False)
            learner.teach(X, y)
            assert len(learner.X_training) == 20
            strict = cls(estimator=RecordingClassifier())
            with pytest.raises(ValueError, match="NaN|infinity"):
                strict.teach(X, y)
            assert strict.X_training is None
        ours = DefectActiveLearner(RecordingClassifier(), X_training=X, y_training=y,
                                   force_all_finite=False)
        assert ours.estimator.calls_[0][3] == {"force_all_finite": False}  # as modAL


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=5, random_state=0),
    LogisticRegression(),
])
def test_predict_predict_proba_and_score_match_modal(reference, estimator):
    X, y = make_data("dense", n_rows=30)
    ours = DefectActiveLearner(copy.deepcopy(estimator), X_training=X[:10], y_training=y[:10])
    theirs = reference(copy.deepcopy(estimator), X_training=X[:10], y_training=y[:10])
    for learner in (ours, theirs):
        learner.fit(X[10:20], y[10:20])
        learner.teach(X[20:25], y[20:25])
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    assert ours.score(X, y) == theirs.score(X, y)
    # and it is the estimator's own answer, trained on the same 15 rows
    np.testing.assert_array_equal(ours.predict(X), ours.estimator.predict(X))
    assert len(ours.X_training) == 15


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", [uncertainty_sampling, margin_sampling, entropy_sampling])
def test_query_and_teach_with_modal_strategies_match_modal(reference, kind, strategy):
    X_pool, y_pool = make_data(kind, n_rows=16, seed=3)
    initial = [0, 1, 2, 3, 8]
    learners = [cls(estimator=RandomForestClassifier(n_estimators=5, random_state=0),
                    query_strategy=strategy, X_training=rows(X_pool, initial),
                    y_training=rows(y_pool, initial))
                for cls in (DefectActiveLearner, reference)]
    answers = []
    for learner in learners:
        answer = []
        for _ in range(2):
            query_idx, X_query, metrics = learner.query(X_pool, n_instances=3,
                                                        return_metrics=True)
            learner.teach(X_query, rows(y_pool, query_idx))
            answer.append((np.asarray(query_idx), X_query, metrics))
        answers.append(answer)
    for (idx_ours, X_ours, m_ours), (idx_theirs, X_theirs, m_theirs) in zip(*answers, strict=True):
        np.testing.assert_array_equal(idx_ours, idx_theirs)
        assert_same_data(X_ours, X_theirs)
        np.testing.assert_array_equal(m_ours, m_theirs)
    ours, theirs = learners
    assert_same_data(ours.X_training, theirs.X_training)
    assert_same_data(ours.y_training, theirs.y_training)
    np.testing.assert_array_equal(ours.predict_proba(X_pool), theirs.predict_proba(X_pool))


def test_query_returns_what_custom_strategies_return(reference):
    X, y = make_data("dense", n_rows=10)
    chosen = np.array([7, 2, 2])

    def with_metrics(learner, X_pool):
        return chosen, np.array([0.9, 0.5, 0.5])

    def old_interface(learner, X_pool):  # returns the instances, not metrics
        return chosen, X_pool[[0, 1, 3]]

    for strategy in (with_metrics, old_interface):
        results = [cls(estimator=RecordingClassifier(), query_strategy=strategy).query(X)
                   for cls in (DefectActiveLearner, reference)]
        for ours, theirs in zip(*results, strict=True):
            np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(results[0][1], X[chosen])  # rows of the pool
    ours = DefectActiveLearner(RecordingClassifier(), with_metrics)
    _, _, metrics = ours.query(X, return_metrics=True)
    np.testing.assert_array_equal(metrics, [0.9, 0.5, 0.5])


def test_n_normal_has_no_effect_on_tabular_data():
    X, y = make_data("dense", n_rows=20)
    learner = DefectActiveLearner(RecordingClassifier(), uncertainty_sampling,
                                  X_training=X[:5], y_training=y[:5], n_normal=6)
    query_idx, X_query, fake = learner.query(X[5:], n_instances=3, return_fake_normals=True)
    assert len(query_idx) == 3 and len(fake) == 0 and learner.X_fake_normal is None
    learner.teach(X_query, y[5:][query_idx])
    _, X_fit, y_fit, _ = learner.estimator.calls_[-1]
    assert_same_data(X_fit, np.concatenate([X[:5], X_query]))  # no fake normals added
    assert_same_data(y_fit, np.concatenate([y[:5], y[5:][query_idx]]))


def test_the_image_strategies_say_what_to_pass_for_tabular_data():
    X, y = make_data("dense")
    for strategy in (msmr_sampling, sdr_sampling, sid4ds_sampling):
        learner = DefectActiveLearner(RecordingClassifier(), strategy, X_training=X,
                                      y_training=y)
        with pytest.raises(ValueError, match=rf"query_strategy {strategy.__name__} ranks "
                                             r"images.*uncertainty_sampling.*default_sampling"):
            learner.query(X)


# ------------------------------------------------------------------ modAL's defaults


def test_the_constructor_takes_modals_arguments_in_modals_order():
    ours = list(inspect.signature(DefectActiveLearner).parameters)
    theirs = list(inspect.signature(ActiveLearner).parameters)
    assert ours[:6] == theirs[:6] == ["estimator", "query_strategy", "X_training",
                                      "y_training", "bootstrap_init", "on_transformed"]
    X, y = make_data("dense", n_rows=10)
    learner = DefectActiveLearner(RecordingClassifier(), uncertainty_sampling, X, y, True, True,
                                  random_state=0)
    assert learner.on_transformed is True
    _, X_fit, _, _ = learner.estimator.calls_[-1]
    assert X_fit.shape == X.shape and not np.array_equal(X_fit, X)  # bootstrap_init=True


@pytest.mark.parametrize("kind", ["dense", "csr", "list"])
def test_without_a_strategy_tabular_data_are_queried_as_modal_queries_them(reference, kind):
    X_pool, y_pool = make_data(kind, n_rows=20, seed=4)
    initial = [0, 1, 2, 3, 10]
    learners = [cls(RandomForestClassifier(n_estimators=5, random_state=0),
                    X_training=rows(X_pool, initial), y_training=rows(y_pool, initial))
                for cls in (DefectActiveLearner, reference)]
    ours, theirs = learners
    assert ours.query_strategy is default_sampling
    assert theirs.query_strategy is uncertainty_sampling  # modAL's default
    for _ in range(2):
        answers = [learner.query(X_pool, n_instances=3, return_metrics=True)
                   for learner in learners]
        (idx_ours, X_ours, m_ours), (idx_theirs, X_theirs, m_theirs) = answers
        np.testing.assert_array_equal(idx_ours, idx_theirs)
        assert_same_data(X_ours, X_theirs)
        np.testing.assert_array_equal(m_ours, m_theirs)
        for learner in learners:
            learner.teach(X_ours, rows(y_pool, idx_ours))
    assert_same_data(ours.X_training, theirs.X_training)
    np.testing.assert_array_equal(ours.predict_proba(X_pool), theirs.predict_proba(X_pool))


def test_without_a_strategy_images_are_ranked_by_sid4ds_sampling(square_defects):
    images, _ = square_defects
    scorer = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
                                  max_epochs=1, random_state=0).fit(images)
    answers = []
    for strategy in (None, sid4ds_sampling):
        learner = (DefectActiveLearner(ImageSpy(), n_normal=3) if strategy is None else
                   DefectActiveLearner(ImageSpy(), strategy, n_normal=3))
        indices, _, scores, fake = learner.query(images, n_instances=4, scorer=scorer,
                                                 return_metrics=True, return_fake_normals=True)
        assert learner.pool_scores_ is not None and len(learner.pool_scores_) == len(images)
        answers.append((indices, scores, fake, learner.pool_scores_))
    for ours, explicit in zip(*answers, strict=True):
        np.testing.assert_array_equal(ours, explicit)
    assert len(answers[0][2]) == 3  # fake normals picked from the E_msmr ranking
    msmr = scorer.score_samples(images)  # no labels yet: the cold start
    np.testing.assert_allclose(answers[0][1], msmr[answers[0][0]], rtol=1e-5)


def test_default_sampling_works_as_the_strategy_of_modals_own_learner(reference):
    X, y = make_data("dense", n_rows=20, seed=2)
    learners = [reference(RandomForestClassifier(n_estimators=5, random_state=0), strategy,
                          X_training=X[:6], y_training=y[:6])
                for strategy in (default_sampling, uncertainty_sampling)]
    answers = [learner.query(X, n_instances=4) for learner in learners]
    np.testing.assert_array_equal(answers[0][0], answers[1][0])


def test_a_committee_as_estimator_with_the_default_strategy(reference):
    # modAL's ensemble example: an ActiveLearner around a Committee, queried by the default
    X_pool, y_pool = make_data("dense", n_rows=40, seed=6)

    def ensemble(cls):
        members = [cls(RandomForestClassifier(n_estimators=5, random_state=seed),
                       X_training=X_pool[:10], y_training=y_pool[:10])
                   for seed in range(3)]
        return cls(estimator=Committee(members))

    ours, theirs = ensemble(DefectActiveLearner), ensemble(reference)
    idx_ours, X_ours = ours.query(X_pool, n_instances=2)
    idx_theirs, _ = theirs.query(X_pool, n_instances=2)
    np.testing.assert_array_equal(idx_ours, idx_theirs)
    for learner in (ours, theirs):
        learner.teach(X_ours, y_pool[idx_ours])
    assert_same_data(ours.X_training, X_ours)
    for member_ours, member_theirs in zip(ours.estimator, theirs.estimator, strict=True):
        # the Committee's fit replaced each member's data with the taught rows
        assert_same_data(member_ours.X_training, member_theirs.X_training)
        assert len(member_ours.X_training) == 2


def test_data_frames_are_stacked_and_queried_on_current_pandas(reference):
    pd = pytest.importorskip("pandas")
    X_pool = pd.DataFrame(np.random.default_rng(1).random((12, 4)),
                          index=[f"r{i}" for i in range(12)])
    y_pool = (X_pool[0] > 0.5).to_numpy().astype(int)
    y_pool[:2] = [0, 1]
    estimator = make_pipeline(FunctionTransformer(pd.DataFrame.to_numpy),
                              RandomForestClassifier(n_estimators=5, random_state=0))
    learner = DefectActiveLearner(estimator, uncertainty_batch_sampling,
                                  X_training=X_pool.iloc[:3], y_training=y_pool[:3],
                                  on_transformed=True)
    query_idx, X_query = learner.query(X_pool, n_instances=2)
    assert isinstance(X_query, pd.DataFrame)
    pd.testing.assert_frame_equal(X_query, X_pool.iloc[query_idx])
    learner.teach(X_query, y_pool[query_idx])
    learner.teach(X_pool.iloc[[5]], y_pool[[5]], only_new=True)  # fitted on, not kept
    expected = pd.concat([X_pool.iloc[:3], X_query])
    pd.testing.assert_frame_equal(learner.X_training, expected)
    np.testing.assert_array_equal(learner.y_training, np.concatenate([y_pool[:3],
                                                                      y_pool[query_idx]]))
    theirs = reference(copy.deepcopy(estimator), uncertainty_batch_sampling,
                       X_training=X_pool.iloc[:3], y_training=y_pool[:3], on_transformed=True)
    if not hasattr(pd.DataFrame, "append"):  # pandas 2 removed what modAL 0.4.2.1 calls
        with pytest.raises(AttributeError, match="append"):
            theirs.teach(X_query, y_pool[query_idx])


def test_text_lists_are_data_and_path_lists_are_images(reference, tmp_path):
    # modAL's suite: CountVectorizer on lists of words, a ranked-batch strategy on_transformed
    X_labeled, X_pool, y = ["Dog", "Cat", "Tree"], ["Airplane", "House"], [0, 1, 1, 0, 1]
    learners = [cls(estimator=make_pipeline(CountVectorizer(),
                                            RandomForestClassifier(n_estimators=5,
                                                                   random_state=0)),
                    query_strategy=uncertainty_batch_sampling, X_training=X_labeled,
                    y_training=y[:3], on_transformed=True)
                for cls in (DefectActiveLearner, reference)]
    for learner in learners:
        for _ in X_pool:
            query_idx, _ = learner.query(X_pool, n_instances=1)
            learner.teach(X=[X_pool[query_idx[0]]], y=[y[query_idx[0]]])
    ours, theirs = learners
    assert ours.X_training == theirs.X_training and len(ours.X_training) == 5
    assert ours.y_training == theirs.y_training

    paths = []
    for index in range(3):
        paths.append(str(tmp_path / f"image_{index}.PNG"))
        Image.fromarray(np.full((8, 8), 40 * index, np.uint8)).save(paths[-1])
    seen = []

    def first(learner, X_pool, n_instances=1):
        seen.append(X_pool)
        return np.arange(n_instances), np.zeros(n_instances)

    learner = DefectActiveLearner(RecordingClassifier(), query_strategy=first)
    _, X_query = learner.query(paths, n_instances=2)
    assert isinstance(seen[-1], ImagePool) and X_query.shape == (2, 1, 8, 8)
    learner.query(["Dog", "Cat"], n_instances=1)
    assert seen[-1] == ["Dog", "Cat"]


@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_committee_of_learners_matches_modal(reference, kind, mixed):
    X_pool, y_pool = make_data(kind, n_rows=30, seed=5)
    subsets = [[0, 1, 2, 3], [4, 5, 6, 7, 8], [9, 10, 11]]

    def committee(ours):
        learners = []
        for seed, subset in enumerate(subsets):
            # mixed: a DefectActiveLearner can stand in for one modAL learner among others
            cls = DefectActiveLearner if ours and (not mixed or seed == 1) else reference
            learners.append(cls(estimator=RandomForestClassifier(n_estimators=5,
                                                                 random_state=seed),
                                X_training=X_pool[subset], y_training=y_pool[subset]))
        return Committee(learner_list=learners, query_strategy=vote_entropy_sampling)

    ours, theirs = committee(True), committee(False)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    for only_new in (False, True):
        idx_ours, X_ours = ours.query(X_pool, n_instances=2)
        idx_theirs, X_theirs = theirs.query(X_pool, n_instances=2)
        np.testing.assert_array_equal(idx_ours, idx_theirs)
        assert_same_data(X_ours, X_theirs)
        for member in (ours, theirs):
            member.teach(X_pool[idx_ours], y_pool[idx_ours], only_new=only_new)
        np.testing.assert_array_equal(ours.vote(X_pool), theirs.vote(X_pool))
        np.testing.assert_array_equal(ours.vote_proba(X_pool), theirs.vote_proba(X_pool))
        np.testing.assert_array_equal(ours.predict(X_pool), theirs.predict(X_pool))
    for learner_ours, learner_theirs in zip(ours, theirs, strict=True):
        # Committee.teach adds the data to every learner, only_new or not
        assert_same_data(learner_ours.X_training, learner_theirs.X_training)
        assert_same_data(learner_ours.y_training, learner_theirs.y_training)
    assert [learner.X_training.shape[0] for learner in ours] == [8, 9, 7]

    idx_ours, _ = Committee(ours.learner_list, max_disagreement_sampling).query(X_pool)
    idx_theirs, _ = Committee(theirs.learner_list, max_disagreement_sampling).query(X_pool)
    np.testing.assert_array_equal(idx_ours, idx_theirs)

    for member in (ours, theirs):
        member.fit(X_pool[:20], y_pool[:20])
        member.rebag()  # bootstrapped refits (their rows come from different RNGs)
    for learner_ours, learner_theirs in zip(ours, theirs, strict=True):
        assert_same_data(learner_ours.X_training, learner_theirs.X_training)
        assert learner_ours.estimator.n_features_in_ == 3


# ------------------------------------------------------------------ the image path stays


class ImageSpy(BaseEstimator):
    def fit(self, X, y):
        self.calls_ = [*getattr(self, "calls_", []), ("fit", X.copy(), y.copy())]
        return self

    def score(self, X, y):
        return float(len(X))


def test_images_still_take_masks_and_a_label_per_image_errors_clearly(square_defects):
    images, masks = square_defects
    learner = DefectActiveLearner(ImageSpy())
    learner.teach(images[:4, 0], masks[:4])  # (n, H, W) images, (n, H, W) masks
    _, X_seen, y_seen = learner.estimator.calls_[-1]
    assert X_seen.shape == (4, 1, 16, 16) and y_seen.shape == (4, 16, 16)
    assert X_seen.dtype == np.float32 and y_seen.dtype == np.uint8
    with pytest.raises(ValueError, match=r"y must be their pixel masks of shape \(2, 16, 16\)"):
        learner.teach(images[4:6], np.array([0, 1]))
    with pytest.raises(ValueError, match="y has shape"):
        learner.teach(images[4:6], masks[4:6, :8])
    with pytest.raises(ValueError, match=r"values in \[0, 2\]|expected floats in \[0, 1\]"):
        learner.teach(2 * images[4:6], masks[4:6])
    assert len(learner.X_training) == 4


def test_one_learner_does_not_mix_images_and_other_data(square_defects):
    images, masks = square_defects
    with_images = DefectActiveLearner(ImageSpy())
    with_images.teach(images[:4], masks[:4])
    with pytest.raises(ValueError, match="keeps images and other data apart"):
        with_images.teach(images[4:6].reshape(2, -1), np.array([0, 1]))
    X, y = make_data("dense")
    tabular = DefectActiveLearner(RecordingClassifier(), X_training=X, y_training=y)
    with pytest.raises(ValueError, match="keeps images and other data apart"):
        tabular.teach(images[:2], masks[:2])
    assert len(with_images.X_training) == 4 and tabular.X_training is X
    tabular.fit(images[:2], masks[:2])  # fit replaces the training data: allowed
    assert tabular.X_training.shape == (2, 1, 16, 16)
