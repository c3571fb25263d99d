"""Out-of-core pools (memmap, image paths, torch Dataset) and chunked, parallel scoring."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from modAL.models import ActiveLearner
from PIL import Image

from sid4ds import ReconstructionScorer, SegmentationLearner, msmr_sampling
from sid4ds.baselines import RotationPretextScorer, entropy_sampling
from sid4ds.datasets.pool import ImagePool, as_pool, channel_statistics, map_chunks
from sid4ds.ranking.scores import msmr_scores, sdr_scores

from ..conftest import TINY_NET, ImagesDataset

SCORER = {**TINY_NET, "patch_size": 4, "n_blocks": 4, "max_epochs": 1, "random_state": 0}


@pytest.fixture(scope="module")
def pool_images() -> np.ndarray:
    rng = np.random.default_rng(0)
    images = (0.5 + 0.1 * rng.standard_normal((40, 1, 16, 16))).clip(0, 1)
    images[:4, 0, 4:8, 4:8] = 1.0
    return (images * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def fitted(pool_images):
    X = pool_images.astype(np.float32) / 255
    masks = np.zeros((len(X), 16, 16), np.uint8)
    masks[:4, 4:8, 4:8] = 1
    scorer = ReconstructionScorer(**SCORER).fit(X)
    segmenter = SegmentationLearner(**TINY_NET, max_epochs=2, random_state=0).fit(X, masks)
    guided = ReconstructionScorer(**SCORER).fit(X, masks)
    return scorer, segmenter, guided


def _memmap(tmp_path, images: np.ndarray) -> np.memmap:
    path = tmp_path / "pool.npy"
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=images.dtype, shape=images.shape)
    stored[:] = images
    stored.flush()
    del stored
    return np.load(path, mmap_mode="r")


def _png_paths(tmp_path, images: np.ndarray) -> list[str]:
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"image_{index:03d}.png"
        Image.fromarray(image[0]).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(params=["memmap", "paths", "dataset"])
def lazy_pool(request, tmp_path, pool_images):
    if request.param == "memmap":
        return _memmap(tmp_path, pool_images)
    if request.param == "paths":
        return _png_paths(tmp_path, pool_images)
    return ImagesDataset(pool_images)


# ---------------------------------------------------------------------- ImagePool
def test_lazy_pools_read_the_same_images_as_the_array(lazy_pool, pool_images):
    pool = as_pool(lazy_pool)
    expected = pool_images.astype(np.float32) / 255
    assert pool.lazy and len(pool) == 40 and pool.image_shape == (1, 16, 16)
    np.testing.assert_array_equal(pool[:], expected)
    # unsorted and repeated indices come back in the order asked for
    np.testing.assert_array_equal(pool[[7, 2, 7, 30]], expected[[7, 2, 7, 30]])
    np.testing.assert_array_equal(pool[5], expected[5])
    np.testing.assert_array_equal(pool.subset([9, 3])[[1, 0]], expected[[3, 9]])


def test_an_in_memory_array_is_not_lazy_and_an_imagepool_passes_through(pool_images):
    pool = as_pool(pool_images)
    assert not pool.lazy
    assert as_pool(pool) is pool


def test_channel_statistics_do_not_depend_on_storage(tmp_path, pool_images):
    in_memory = channel_statistics(as_pool(pool_images))
    on_disk = channel_statistics(as_pool(_memmap(tmp_path, pool_images)))
    np.testing.assert_array_equal(in_memory[0], on_disk[0])
    np.testing.assert_array_equal(in_memory[1], on_disk[1])
    expected = pool_images.astype(np.float64) / 255
    assert in_memory[0][0] == pytest.approx(expected.mean(), rel=1e-6)
    assert in_memory[1][0] == pytest.approx(expected.std(), rel=1e-5)


def test_a_single_path_is_refused_with_what_to_pass(tmp_path):
    with pytest.raises(TypeError, match="single path.*list of image paths"):
        as_pool(str(tmp_path / "pool.npy"), name="X_pool")


def test_images_of_different_sizes_name_the_pool(tmp_path, pool_images):
    paths = _png_paths(tmp_path, pool_images[:3])
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(paths[2])
    pool = as_pool(paths, name="X_pool")
    with pytest.raises(ValueError, match=r"X_pool\[2\].*shape \(1, 8, 8\).*\(1, 16, 16\)"):
        pool[2]


def test_an_unreadable_file_is_named(tmp_path, pool_images):
    paths = _png_paths(tmp_path, pool_images[:3])
    (tmp_path / "image_001.png").write_bytes(b"not an image")
    pool = as_pool(paths, name="X_pool")
    with pytest.raises(ValueError, match="image_001.png"):
        pool[:]


def test_out_of_range_values_in_a_memmap_are_reported_when_read(tmp_path):
    images = np.full((6, 16, 16), 0.5, np.float32)
    images[4, 0, 0] = 3.0
    pool = as_pool(_memmap(tmp_path, images), name="X_pool")
    pool[:4]  # the good rows read fine
    with pytest.raises(ValueError, match=r"X_pool\[4\].*expected floats in \[0, 1\]"):
        pool[4]


def test_an_iterable_dataset_without_length_is_refused():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(16, 16)

    with pytest.raises(TypeError, match="X_pool is a torch Dataset without __len__"):
        as_pool(Stream(), name="X_pool")


def test_a_memmap_pool_pickles_as_a_file_reference(tmp_path):
    import pickle

    images = np.zeros((2000, 1, 16, 16), np.float32)
    pool = as_pool(_memmap(tmp_path, images))
    assert len(pickle.dumps(pool)) < 10_000  # not the 2 MB of pixels
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pool))[:3], images[:3])


def test_map_chunks_gives_extras_the_rows_of_the_chunk(pool_images):
    pool = as_pool(pool_images)
    rows = np.arange(len(pool))
    parts = map_chunks(lambda images, ids: ids, pool, batch_size=3, extras=(rows,))
    np.testing.assert_array_equal(np.concatenate(parts), rows)
    with pytest.raises(ValueError, match="extras hold 5 rows for 40 images"):
        map_chunks(lambda images, ids: ids, pool, batch_size=3, extras=(rows[:5],))


# ---------------------------------------------------------------------- scoring on pools
def test_scores_on_lazy_pools_equal_those_on_the_array(lazy_pool, pool_images, fitted):
    scorer, segmenter, guided = fitted
    X = pool_images.astype(np.float32) / 255
    np.testing.assert_array_equal(scorer.score_samples(lazy_pool), scorer.score_samples(X))
    np.testing.assert_array_equal(segmenter.predict_proba(lazy_pool), segmenter.predict_proba(X))
    np.testing.assert_array_equal(sdr_scores(segmenter, guided, lazy_pool),
                                  sdr_scores(segmenter, guided, X))


@pytest.mark.parametrize("estimator", [
    lambda: ReconstructionScorer(**SCORER),
    lambda: RotationPretextScorer(**TINY_NET, max_epochs=1, batch_size=8, random_state=0),
], ids=["ReconstructionScorer", "RotationPretextScorer"])
def test_fitting_on_a_memmap_gives_the_weights_of_fitting_on_the_array(tmp_path, pool_images,
                                                                       estimator):
    on_disk = estimator().fit(_memmap(tmp_path, pool_images))
    in_memory = estimator().fit(pool_images)
    other_images = estimator().fit(pool_images[:1])  # so that equal weights say something
    for name, weights in in_memory.module_.state_dict().items():
        assert torch.equal(weights, on_disk.module_.state_dict()[name]), name
    if hasattr(in_memory, "pixel_std_"):
        np.testing.assert_array_equal(on_disk.pixel_std_, in_memory.pixel_std_)
    assert not all(torch.equal(weights, other_images.module_.state_dict()[name])
                   for name, weights in in_memory.module_.state_dict().items())


def test_modal_query_on_an_imagepool_returns_the_selected_images(tmp_path, pool_images, fitted):
    scorer, _, _ = fitted
    pool = ImagePool(_png_paths(tmp_path, pool_images))
    learner = ActiveLearner(SegmentationLearner(**TINY_NET), query_strategy=msmr_sampling)
    indices, X_query = learner.query(pool, n_instances=5, scorer=scorer)
    np.testing.assert_array_equal(X_query, pool_images[indices].astype(np.float32) / 255)


def test_scoring_memory_does_not_grow_with_the_pool(tmp_path, fitted, monkeypatch):
    """Peak numpy memory while scoring 1600 images is that of scoring 200 (chunks of 64)."""
    scorer, _, _ = fitted
    monkeypatch.setattr("sid4ds.datasets.pool.CHUNK_VALUES", 64 * 16 * 16)
    rng = np.random.default_rng(1)
    big = (rng.random((1600, 1, 16, 16)) * 255).astype(np.uint8)
    big_pool = _memmap(tmp_path, big)

    def peak(pool) -> int:
        tracemalloc.start()
        msmr_scores(scorer, pool)
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak_bytes

    small_peak, big_peak = peak(big_pool[:200]), peak(big_pool)
    whole_pool_float32 = big.size * 4
    assert big_peak < 1.5 * small_peak
    assert big_peak < whole_pool_float32 / 4


# ---------------------------------------------------------------------- parallel
def test_parallel_scoring_is_identical_and_leaves_torch_threads_alone(pool_images, fitted):
    scorer, segmenter, guided = fitted
    threads = torch.get_num_threads()
    serial = msmr_scores(scorer, pool_images)
    parallel = msmr_scores(scorer, pool_images, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(sdr_scores(segmenter, guided, pool_images, n_jobs=2),
                                  sdr_scores(segmenter, guided, pool_images))
    assert torch.get_num_threads() == threads


def test_strategies_select_the_same_images_with_n_jobs(pool_images, fitted):
    scorer, segmenter, _ = fitted
    learner = ActiveLearner(segmenter, query_strategy=msmr_sampling)
    serial = msmr_sampling(learner, pool_images, n_instances=6, scorer=scorer)
    parallel = msmr_sampling(learner, pool_images, n_instances=6, scorer=scorer, n_jobs=2)
    np.testing.assert_array_equal(serial[0], parallel[0])
    np.testing.assert_array_equal(serial[1], parallel[1])
    by_entropy = entropy_sampling(learner, pool_images, n_instances=6)
    np.testing.assert_array_equal(
        by_entropy[0], entropy_sampling(learner, pool_images, n_instances=6, n_jobs=2)[0])


class _LogsItsArrivals:
    """A chunk function that writes a line to ``log`` each time a process unpickles it."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return images.mean(axis=(1, 2, 3))

    def __reduce__(self):
        return (_LogsItsArrivals._arrive, (self.log,))

    @staticmethod
    def _arrive(log: str) -> _LogsItsArrivals:
        with open(log, "a") as handle:
            handle.write("arrived\n")
        return _LogsItsArrivals(log)


def test_scoring_on_a_dask_cluster_matches_the_serial_run(tmp_path, pool_images, fitted,
                                                          monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    from joblib import parallel_config

    scorer, _, _ = fitted
    pool = _memmap(tmp_path, pool_images)
    serial = scorer.score_samples(pool)
    log = tmp_path / "arrivals.log"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_config(backend="dask"):
        on_cluster = scorer.score_samples(pool)
        selected, _ = msmr_sampling(ActiveLearner(SegmentationLearner(**TINY_NET)), pool,
                                    n_instances=5, scorer=scorer)
        monkeypatch.setattr("sid4ds.datasets.pool.CHUNK_VALUES", 4 * 16 * 16)  # 10 chunks of 4
        means = map_chunks(_LogsItsArrivals(str(log)), as_pool(pool), batch_size=4)
    np.testing.assert_array_equal(on_cluster, serial)
    np.testing.assert_array_equal(selected, np.argsort(-serial, kind="stable")[:5])
    np.testing.assert_allclose(np.concatenate(means),
                               pool_images.mean(axis=(1, 2, 3)) / 255, rtol=1e-6)
    # the function (with the model it carries) travels once per worker, not per chunk
    assert 1 <= len(log.read_text().splitlines()) <= 2


def test_n_jobs_zero_is_refused_at_fit(pool_images):
    with pytest.raises(ValueError, match="n_jobs must be a positive int, -1"):
        ReconstructionScorer(**SCORER, n_jobs=0).fit(pool_images)


# ---------------------------------------------------------------------- precision
def test_bf16_scores_track_fp32_scores_on_the_cpu(pool_images, fitted):
    scorer, _, _ = fitted
    exact = scorer.score_samples(pool_images)
    scorer.set_params(precision="bf16")
    try:
        mixed = scorer.score_samples(pool_images)
    finally:
        scorer.set_params(precision="fp32")
    assert not np.array_equal(exact, mixed)  # bf16 really ran
    correlation = np.corrcoef(np.argsort(np.argsort(exact)), np.argsort(np.argsort(mixed)))
    assert correlation[0, 1] > 0.9


def test_fp16_without_cuda_says_what_to_use(pool_images):
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed on CUDA")
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device.*'bf16'"):
        SegmentationLearner(**TINY_NET, precision="fp16").fit(
            pool_images, np.zeros((40, 16, 16), np.uint8))


def test_unknown_precision_is_named(pool_images):
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', 'fp16'.*'auto'"):
        ReconstructionScorer(**SCORER, precision="half").fit(pool_images)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_trains_and_tracks_fp32(pool_images, precision):
    exact = ReconstructionScorer(**SCORER, device="cuda").fit(pool_images)
    mixed = ReconstructionScorer(**SCORER, device="cuda", precision=precision).fit(pool_images)
    assert np.isfinite(mixed.history_[-1]["loss"])
    scores = mixed.score_samples(pool_images)
    mixed.set_params(precision="fp32")
    correlation = np.corrcoef(scores, mixed.score_samples(pool_images))[0, 1]
    assert correlation > 0.9
    assert exact.score_samples(pool_images).shape == scores.shape


def test_run_sid4ds_on_a_memmap_picks_what_it_picks_on_the_array(tmp_path, pool_images):
    from sid4ds import run_sid4ds

    masks = np.zeros((len(pool_images), 16, 16), np.uint8)
    masks[:4, 4:8, 4:8] = 1
    settings = {
        "oracle": lambda indices: masks[indices], "n_rounds": 1, "n_label": 6,
        "segmenter": SegmentationLearner(**TINY_NET, max_epochs=2),
        "scorer": ReconstructionScorer(**SCORER), "random_state": 0,
    }
    on_disk = run_sid4ds(_memmap(tmp_path, pool_images), **settings)
    in_memory = run_sid4ds(pool_images, **settings)
    for disk_round, memory_round in zip(on_disk.rounds, in_memory.rounds, strict=True):
        np.testing.assert_array_equal(disk_round.selected, memory_round.selected)
        np.testing.assert_array_equal(disk_round.fake_normals, memory_round.fake_normals)


def _resident_file_pages_mib() -> float:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("needs Linux /proc/self/status with RssFile")


def test_streaming_a_memmap_releases_its_pages(tmp_path):
    """Reading a 64 MiB memmapped pool by chunks or by scattered rows keeps < 16 MiB of it
    resident."""
    path = tmp_path / "big.npy"
    stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                       shape=(4096, 128, 128))
    stored[:] = 7
    stored.flush()
    del stored
    pool = as_pool(np.load(path, mmap_mode="r"))
    pool[[0, 2]]  # first use of the code paths maps library pages, which are not the pool's
    before = _resident_file_pages_mib()
    total = 0.0
    for _, images in pool.iter_chunks(256):
        total += float(images[:, 0, 0, 0].sum())
    assert total == pytest.approx(4096 * 7 / 255, rel=1e-5)
    assert _resident_file_pages_mib() - before < 16
    # scattered rows, as training batches are drawn, are released as well
    rows = np.random.default_rng(0).permutation(4096)
    for start in range(0, 4096, 64):
        pool[rows[start:start + 64]]
    assert _resident_file_pages_mib() - before < 16


def _torch_threads(images):
    return np.array([torch.get_num_threads()] * len(images))


def test_local_workers_split_the_cores_between_them(pool_images):
    import os

    threads = map_chunks(_torch_threads, as_pool(pool_images), batch_size=4, n_jobs=2)
    assert set(np.concatenate(threads).tolist()) == {max(1, (os.cpu_count() or 1) // 2)}
