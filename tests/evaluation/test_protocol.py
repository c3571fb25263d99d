"""Tests for sid4ds.evaluation: the pure record functions, and tiny end-to-end runs."""

from __future__ import annotations

import csv
import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sid4ds import SegmentationLearner
from sid4ds.cli.benchmark import main
from sid4ds.datasets import make_defect_images
from sid4ds.evaluation import (
    COLD_START_COLUMNS,
    IOU_COLUMNS,
    LABELED_COLUMNS,
    SELECTION_COLUMNS,
    TIMING_COLUMNS,
    BenchmarkResult,
    aggregate,
    batch_defect_counts,
    cold_start_records,
    cumulative_defect_share,
    format_mean_std,
    histories_from_labeled,
    labeled_prefix,
    labeled_records,
    local_contrast_sampling,
    local_contrast_scores,
    plot_results,
    pool_and_test,
    read_csvs,
    run_benchmark,
    selection_records,
    split_held_out,
    write_csvs,
)

TINY = ["--n-samples", "40", "--image-size", "16", "--defect-ratio", "0.1", "--width", "4",
        "--depth", "2", "--epochs-m", "1", "--epochs-s", "1", "--patch-size", "4",
        "--rounds", "1", "--seeds", "0", "--quiet"]


def read_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


# ---------------------------------------------------------------------- (a) cold start
@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-5, 5), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.integers(1, n))))
def test_batch_counts_sum_to_the_defective_images(case):
    scores, is_defective, n_batches = case
    counts = batch_defect_counts(scores, is_defective, n_batches)
    assert counts.shape == (n_batches,)
    assert counts.sum() == sum(is_defective)
    assert (counts >= 0).all()


def test_a_perfect_ranking_puts_every_defect_in_the_first_batches():
    is_defective = np.zeros(100, dtype=bool)
    is_defective[[3, 50, 97]] = True
    scores = is_defective + 0.01 * np.random.default_rng(0).random(100)
    counts = batch_defect_counts(scores, is_defective, n_batches=10)
    assert counts.tolist() == [3] + [0] * 9
    reversed_counts = batch_defect_counts(-scores, is_defective, n_batches=10)
    assert reversed_counts.tolist() == [0] * 9 + [3]


def test_cold_start_records_add_up_per_ranking():
    rng = np.random.default_rng(1)
    is_defective = rng.random(57) < 0.2
    rankings = {"good": is_defective + rng.random(57), "noise": rng.random(57)}
    records = cold_start_records(rankings, is_defective, n_batches=10, seed=4)
    assert [set(record) for record in records[:1]] == [set(COLD_START_COLUMNS)]
    for name in rankings:
        mine = [record for record in records if record["ranking"] == name]
        assert [record["batch"] for record in mine] == list(range(1, 11))
        assert sum(record["n_images"] for record in mine) == 57
        assert sum(record["n_defective"] for record in mine) == is_defective.sum()
        assert mine[-1]["cumulative_share"] == pytest.approx(1.0)
        assert all(record["seed"] == 4 for record in mine)


def test_batch_counts_reject_more_batches_than_images():
    with pytest.raises(ValueError, match="n_batches=5 is more than the 3 pool images"):
        batch_defect_counts([0.1, 0.2, 0.3], [True, False, False], n_batches=5)


# ---------------------------------------------------------------------- (b) selection
@settings(max_examples=50, deadline=None)
@given(st.integers(2, 80).flatmap(lambda n: st.tuples(
    st.permutations(range(n)),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.integers(1, n))))
def test_cumulative_share_is_monotone_and_ends_at_most_one(case):
    order, is_defective, n_label = case
    history = [order[start : start + n_label] for start in range(0, len(order), n_label)]
    shares = cumulative_defect_share(history[:-1] or history, is_defective)
    full = cumulative_defect_share(history, is_defective)
    if not any(is_defective):
        assert np.isnan(full).all()
        return
    assert (np.diff(shares) >= 0).all() and (np.diff(full) >= 0).all()
    assert ((shares >= 0) & (shares <= 1)).all()
    assert full[-1] == pytest.approx(1.0)  # the whole pool labelled finds every defect


def test_a_twice_selected_image_counts_once():
    shares = cumulative_defect_share([[0, 1], [0, 2]], [True, False, True, True])
    assert shares.tolist() == pytest.approx([1 / 3, 2 / 3])


def test_selection_records_count_rounds_and_defects():
    is_defective = [True, False, False, True, True, False]
    records = selection_records([[0, 1], [2, 3], [4, 5]], is_defective, strategy="s", seed=2)
    assert [set(record) for record in records[:1]] == [set(SELECTION_COLUMNS)]
    assert [record["stage"] for record in records] == ["cold_start", "iterative", "iterative"]
    assert [record["n_labeled"] for record in records] == [2, 4, 6]
    assert [record["cumulative_defective"] for record in records] == [1, 2, 3]
    assert [record["cumulative_share"] for record in records] == pytest.approx(
        [1 / 3, 2 / 3, 1.0])


def test_labeled_prefix_follows_labelling_order():
    assert labeled_prefix([[5, 1, 3], [0, 2]], 4).tolist() == [5, 1, 3, 0]
    assert labeled_prefix([[5, 1, 3]], 4) is None


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.permutations(range(n)).flatmap(lambda order: st.lists(
        st.integers(0, len(order)), min_size=2, max_size=4).map(
        lambda cuts: [list(order[a:b]) for a, b in zip(
            [0, *sorted(cuts)], [*sorted(cuts), len(order)], strict=True)])),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))))
def test_labeled_records_list_each_round_in_order_and_agree_with_selection(case):
    history, is_defective, pool = case
    records = labeled_records(history, pool, is_defective, strategy="s", seed=3)
    order = [index for part in history for index in part]
    assert [record["position"] for record in records] == list(range(len(order)))
    assert [record["pool_index"] for record in records] == order
    assert [record["image_index"] for record in records] == [pool[i] for i in order]
    assert [record["defective"] for record in records] == [int(is_defective[i]) for i in order]
    per_round = [sum(record["defective"] for record in records if record["round"] == r)
                 for r in range(len(history))]
    assert per_round == [row["n_defective_selected"] for row in
                         selection_records(history, is_defective, strategy="s", seed=3)]
    for n_labeled in range(1, len(order) + 1):  # S at a share trains on a prefix of them
        assert labeled_prefix(history, n_labeled).tolist() == order[:n_labeled]
    # and back, from the rows in any order: rounds after the last one that labelled
    # anything leave no row
    restored = histories_from_labeled(records[::-1])
    last = max(r for r, part in enumerate(history) if part)
    assert list(restored) == [(3, "s")]
    assert [part.tolist() for part in restored[3, "s"]] == history[:last + 1]


def test_histories_from_labeled_refuse_gaps_repeats_and_rounds_going_back():
    records = labeled_records([[4, 1], [0, 2]], [10, 11, 12, 13, 14], [0, 1, 0, 0, 1],
                              strategy="s", seed=0)
    with pytest.raises(ValueError, match=r"seed 0, strategy 's' have positions \[0, 1, 3\]"):
        histories_from_labeled([records[0], records[1], records[3]])
    with pytest.raises(ValueError, match="positions .* each once"):
        histories_from_labeled([*records, records[2]])
    back = [dict(record) for record in records]
    back[2]["round"], back[1]["round"] = 0, 1
    with pytest.raises(ValueError, match="go back from a later round"):
        histories_from_labeled(back)
    other_seed = [{**record, "seed": 1} for record in records[:2]]
    histories = histories_from_labeled([*records, *other_seed])
    assert [part.tolist() for part in histories[1, "s"]] == [[4, 1]]


def test_labeled_records_refuse_indices_outside_the_pool():
    with pytest.raises(ValueError, match=r"history\[1\] holds indices outside the pool of 3"):
        labeled_records([[0], [3]], [5, 6, 7], [0, 1, 0], strategy="s")
    with pytest.raises(ValueError, match="pool and is_defective"):
        labeled_records([[0]], [5, 6], [0, 1, 0], strategy="s")


# ---------------------------------------------------------------------- aggregation
def test_mean_and_sample_std_over_seeds_by_hand():
    records = [
        {"strategy": "sid4ds", "round": 0, "seed": 0, "value": 1.0},
        {"strategy": "random", "round": 0, "seed": 0, "value": 5.0},
        {"strategy": "sid4ds", "round": 0, "seed": 1, "value": 2.0},
        {"strategy": "sid4ds", "round": 0, "seed": 2, "value": 4.0},
        {"strategy": "sid4ds", "round": 1, "seed": 0, "value": float("nan")},
    ]
    summary = aggregate(records, ("strategy", "round"), "value")
    assert [(row["strategy"], row["round"]) for row in summary] == [
        ("sid4ds", 0), ("random", 0), ("sid4ds", 1)]
    first = summary[0]
    # mean (1 + 2 + 4) / 3 = 7/3; squared deviations 16/9 + 1/9 + 25/9 = 42/9, / (3 - 1)
    assert first["mean"] == pytest.approx(7 / 3)
    assert first["std"] == pytest.approx(math.sqrt(7 / 3))
    assert first["n"] == 3
    assert summary[1]["mean"] == 5.0 and math.isnan(summary[1]["std"])
    assert summary[2]["n"] == 0 and math.isnan(summary[2]["mean"])
    assert format_mean_std(first["mean"], first["std"]) == "2.33 ± 1.53"


# ---------------------------------------------------------------------- local contrast, split
def test_local_contrast_ranks_a_bright_spot_above_a_flat_image():
    rng = np.random.default_rng(0)
    flat = 0.5 + 0.01 * rng.standard_normal((2, 1, 32, 32))
    images = flat.astype(np.float32)
    images[1, 0, 14:16, 20:22] = 0.9
    scores = local_contrast_scores(images)
    assert scores[1] > 5 * scores[0]

    class Learner:
        pass

    learner = Learner()
    indices, _ = local_contrast_sampling(learner, images[::-1], n_instances=1)
    assert indices.tolist() == [0]  # the spot, now first in the reversed pool
    assert learner.sid4ds_state.pool_scores.shape == (2,)


def test_split_is_stratified_disjoint_and_seeded():
    is_defective = np.arange(103) % 10 == 0  # 11 defective
    pool, test = split_held_out(is_defective, 0.2, random_state=3)
    again, _ = split_held_out(is_defective, 0.2, random_state=3)
    other, _ = split_held_out(is_defective, 0.2, random_state=4)
    assert np.intersect1d(pool, test).size == 0
    assert len(pool) + len(test) == 103
    assert is_defective[test].sum() == round(0.2 * 11)
    assert (pool == again).all() and not (pool == other).all()
    everything, none = split_held_out(is_defective, 0.0)
    assert len(everything) == 103 and len(none) == 0



def test_pool_and_test_keeps_test_only_images_and_whole_groups_out_of_the_pool():
    is_defective = np.arange(60) % 6 == 0
    groups = np.arange(60) // 2  # pairs cut from one source image
    test_only = np.zeros(60, dtype=bool)
    test_only[[0, 1]] = True  # group 0
    pool, test = pool_and_test(is_defective, 0.25, random_state=2, groups=groups,
                               test_only=test_only)
    assert np.intersect1d(pool, test).size == 0 and len(pool) + len(test) == 60
    assert np.isin([0, 1], test).all()
    assert np.intersect1d(groups[pool], groups[test]).size == 0
    eligible = np.flatnonzero(~test_only)
    expected, _ = split_held_out(is_defective[eligible], 0.25, random_state=2,
                                 groups=groups[eligible])
    assert pool.tolist() == eligible[expected].tolist()
    with pytest.raises(ValueError, match="test_only has shape"):
        pool_and_test(is_defective, 0.25, test_only=test_only[:10])


# ---------------------------------------------------------------------- runs
def test_random_start_baselines_share_the_first_batch():
    X, masks = make_defect_images(n_samples=30, image_size=16, defect_ratio=0.2,
                                  random_state=0)
    result = run_benchmark(
        X, masks, strategies=["random", "entropy"], n_rounds=0, seeds=[5],
        segmenter=SegmentationLearner(base_channels=4, depth=2, max_epochs=1))
    first = [run.history[0] for run in result.runs]
    assert len(first[0]) == result.info["n_label"] == round(0.1 * result.info["n_pool"])
    assert first[0].tolist() == first[1].tolist()


def test_plots_without_matplotlib_say_how_to_get_them(monkeypatch, tmp_path):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    result = BenchmarkResult(selection=selection_records([[0], [1]], [True, False],
                                                         strategy="s", seed=0),
                             strategies=["s"])
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_results(result, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plots_of_one_strategy_over_two_seeds_raise_no_warning(tmp_path):
    timing = [dict(seed=seed, strategy="sid4ds", round=round_index,
                   stage="cold_start" if round_index == 0 else "iterative",
                   selection_seconds=1.0, training_seconds=seconds, seconds=1.0 + seconds)
              for seed, seconds in ((0, 2.0), (1, 4.0)) for round_index in (0, 1)]
    iou = [dict(seed=seed, strategy="sid4ds", labeled_share=0.3, n_labeled=3,
                n_defective_labeled=1, n_test=4, n_defective_test=2, iou=value, detected=0.5,
                false_alarms=0.0) for seed, value in ((0, 0.2), (1, 0.4))]
    result = BenchmarkResult(timing=timing, iou=iou, strategies=["sid4ds"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one bar once made matplotlib warn (a (2, 1) yerr)
        paths = plot_results(result, tmp_path)
    assert sorted(path.name for path in paths) == ["iou.png", "timing.png"]
    assert all(path.stat().st_size > 0 for path in paths)


def test_end_to_end_tiny_run(tmp_path, capsys):
    out = tmp_path / "results"
    code = main([*TINY, "--strategies", "sid4ds", "random", "--iou", "--iou-shares", "0.1",
                 "0.2", "--test-defective", "6", "--set-s", "lr=0.002", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0

    settings_record = json.loads((out / "settings.json").read_text())
    assert settings_record["arguments"]["strategies"] == ["sid4ds", "random"]
    assert settings_record["data"]["n_images"] == 46  # 40 + 6 defective, only held out
    assert settings_record["data"]["n_test_only"] == 6
    assert settings_record["split"]["n_pool"] == 32
    assert settings_record["models"]["segmenter_S"]["base_channels"] == 4
    assert settings_record["models"]["segmenter_S"]["lr"] == 0.002  # --set-s
    assert settings_record["models"]["scorer_M_G"]["patch_size"] == 4
    assert printed.index("settings") < printed.index("## (a)")
    versions = settings_record["versions"]  # what a figure from another machine needs
    assert versions["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(versions["cpu"], str) and versions["cpu"]

    for name, columns, n_rows in (("cold_start.csv", COLD_START_COLUMNS, 3 * 10),
                                  ("selection.csv", SELECTION_COLUMNS, 2 * 2),
                                  ("labeled.csv", LABELED_COLUMNS, 2 * 2 * 3),
                                  ("timing.csv", TIMING_COLUMNS, 2 * 2),
                                  ("iou.csv", IOU_COLUMNS, 2 * 2 + 1)):
        header, rows = read_csv(out / name)
        assert header == list(columns)
        assert len(rows) == n_rows, name
    _, selection = read_csv(out / "selection.csv")
    assert {row["n_selected"] for row in selection} == {"3"}  # K = 10% of 32
    shares = [float(row["cumulative_share"]) for row in selection]
    assert all(0 <= share <= 1 for share in shares)
    _, cold_start = read_csv(out / "cold_start.csv")
    assert {row["ranking"] for row in cold_start} == {"msmr", "random", "local_contrast"}
    _, iou_rows = read_csv(out / "iou.csv")
    assert {row["n_defective_test"] for row in iou_rows} == {"7"}  # 1 of the 4 drawn, + 6
    # labeled.csv says which images each strategy chose; they explain selection.csv and the
    # IoU rows (S at a share trained on a prefix of them)
    joined = read_csvs([out])
    for strategy in ("sid4ds", "random"):
        rows = [row for row in joined.labeled if row["strategy"] == strategy]
        assert [row["position"] for row in rows] == list(range(6))
        assert len({row["image_index"] for row in rows}) == 6
        assert all(0 <= row["image_index"] < 46 for row in rows)
        for selected in (row for row in joined.selection if row["strategy"] == strategy):
            assert selected["n_defective_selected"] == sum(
                row["defective"] for row in rows if row["round"] == selected["round"])
        for scored in (row for row in joined.iou if row["strategy"] == strategy):
            assert scored["n_defective_labeled"] == sum(
                row["defective"] for row in rows[:scored["n_labeled"]])
    assert all(0 <= float(row["detected"]) <= 1 and 0 <= float(row["false_alarms"]) <= 1
               for row in iou_rows)

    for part in ("## (a)", "## (b)", "## (c)", "## (d)"):
        assert part in printed
    for section in printed.split("## ")[2:]:  # (b), (c), (d): a row or column per strategy
        assert "sid4ds" in section and "random" in section
    assert {path.name for path in out.glob("*.png")} == {
        "cold_start.png", "selection.png", "timing.png", "iou.png"}


def test_npz_data_and_bad_options(tmp_path, capsys):
    X, masks = make_defect_images(n_samples=48, image_size=16, defect_ratio=0.25,
                                  random_state=1)
    path = tmp_path / "toy.npz"
    np.savez(path, images=np.round(X[:, 0] * 255).astype(np.uint8), masks=masks)
    out = tmp_path / "npz"
    code = main([*TINY, "--npz", str(path), "--defect-fraction", "0.1", "--strategies",
                 "local_contrast", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "settings.json").read_text())["data"]
    assert data["source"] == "npz" and data["n_images"] == 36 + 4  # 36 normal, 4 defective
    assert "local_contrast" in capsys.readouterr().out

    assert main(["--defect-fraction", "0.1", "--out", str(tmp_path / "x")]) == 1
    assert "--defect-fraction" in capsys.readouterr().err
    assert main([*TINY, "--iou", "--rounds", "0", "--out", str(tmp_path / "y")]) == 1
    assert "--rounds" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # refused before writing anything
    assert main([*TINY, "--set-s", "lr=-1", "--out", str(tmp_path / "z")]) == 1
    assert "lr must be in" in capsys.readouterr().err and not (tmp_path / "z").exists()


def test_sid4ds_benchmark_subcommand_parses_the_same_options():
    from sid4ds.cli import build_parser
    from sid4ds.cli.benchmark import run_from_args as _benchmark

    args = build_parser().parse_args(["benchmark", "--strategies", "random", "pt4al",
                                      "--seeds", "1", "2", "--iou"])
    assert args.handler is _benchmark
    assert args.strategies == ["random", "pt4al"] and args.seeds == [1, 2] and args.iou


def test_the_held_out_split_keeps_source_groups_whole():
    is_defective = np.array([True, True, False, False, False, False] * 5)
    groups = np.repeat(np.arange(10), 3)  # three tiles per source image
    pool, test = split_held_out(is_defective, 0.3, random_state=0, groups=groups)
    assert not set(groups[pool]) & set(groups[test])
    assert sorted(np.concatenate([pool, test]).tolist()) == list(range(30))
    with pytest.raises(ValueError, match="groups has 4 entries for 30 images"):
        split_held_out(is_defective, 0.3, groups=[1, 2, 3, 4])


def test_test_only_images_are_held_out_and_never_labelled():
    X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.5,
                                  random_state=0)
    test_only = np.zeros(40, dtype=bool)
    test_only[masks.reshape(40, -1).any(axis=1).nonzero()[0][:8]] = True
    result = run_benchmark(X, masks, strategies=["random"], n_rounds=1, seeds=[0],
                           test_only=test_only, iou=True, iou_shares=[0.1],
                           segmenter=SegmentationLearner(base_channels=4, depth=2,
                                                         max_steps=2))
    assert result.info["n_pool"] == 26  # 32 eligible images, 20% held out
    assert {row["n_test"] for row in result.iou} == {6 + 8}  # the 8 test-only join the test
    # eligible: 12 defective, 20 normal; 20% of each held out (2 + 4), plus the 8 test-only
    assert result.info["n_defective_test"] == [2 + 8]


def test_labels_at_whole_rounds():
    from sid4ds.evaluation import labels_at

    assert labels_at(0.3, 805, 80, 0.1) == 240  # three rounds, not round(0.3 * 805) = 242
    assert labels_at(0.25, 100, 10, 0.1) == 25


def test_each_table_counts_the_seeds_of_its_own_records():
    """Selection over three seeds, IoU for seed 0 only: the IoU tables must say 1 seed."""
    from sid4ds.evaluation.output import format_tables

    selection = [{"seed": seed, "strategy": "random", "round": 0, "stage": "cold_start",
                  "n_selected": 8, "n_labeled": 8, "labeled_share": 0.1,
                  "n_defective_selected": seed, "cumulative_defective": seed,
                  "n_defective_pool": 4, "cumulative_share": seed / 4} for seed in range(3)]
    iou = [{"seed": 0, "strategy": "random", "labeled_share": 0.1, "n_labeled": 8,
            "n_defective_labeled": 0, "n_test": 20, "n_defective_test": 5, "iou": 0.25,
            "detected": 0.4, "false_alarms": 0.1}]
    text = format_tables(BenchmarkResult(selection=selection, iou=iou, strategies=["random"]))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert "mean ± std over 3 seeds" in headings[0] and "(b)" in headings[0]
    assert all("(1 seed" in heading for heading in headings[1:]), headings
    assert len(headings) == 3


def _iou_row(seed, strategy, iou):
    return {"seed": seed, "strategy": strategy, "labeled_share": 1.0 if strategy == "whole pool"
            else 0.3, "n_labeled": 24, "n_defective_labeled": 2, "n_test": 20,
            "n_defective_test": 5, "iou": iou, "detected": 0.5, "false_alarms": 0.25}


def _selection_row(seed, strategy):
    return {"seed": seed, "strategy": strategy, "round": 0, "stage": "cold_start",
            "n_selected": 8, "n_labeled": 8, "labeled_share": 0.1, "n_defective_selected": 1,
            "cumulative_defective": 1, "n_defective_pool": 4, "cumulative_share": 0.25}


def test_read_csvs_counts_a_row_two_runs_of_one_seed_wrote_once(tmp_path):
    """Two runs of seed 0 (different strategies) both train S on the whole pool."""
    for folder, strategy in (("base", "random"), ("sid", "sid4ds")):
        write_csvs(BenchmarkResult(selection=[_selection_row(0, strategy)],
                                   iou=[_iou_row(0, strategy, 0.1),
                                        _iou_row(0, "whole pool", 0.4)]), tmp_path / folder)
    write_csvs(BenchmarkResult(selection=[_selection_row(1, "sid4ds")],
                               iou=[_iou_row(1, "sid4ds", 0.2),
                                    _iou_row(1, "whole pool", 0.6)]), tmp_path / "sid1")
    result = read_csvs([tmp_path / "base", tmp_path / "sid", tmp_path / "sid1"])
    whole = [row["iou"] for row in result.iou if row["strategy"] == "whole pool"]
    assert whole == [0.4, 0.6]
    assert result.strategies == ["random", "sid4ds"]
    assert [row["seed"] for row in result.selection] == [0, 0, 1]
    summary = {row["strategy"]: row for row in
               aggregate(result.iou, ["strategy", "labeled_share"], "iou")}
    assert summary["whole pool"]["n"] == 2
    assert summary["whole pool"]["std"] == pytest.approx(np.std([0.4, 0.6], ddof=1))


def test_read_csvs_refuses_two_different_rows_for_one_seed(tmp_path):
    for folder, iou in (("machine_a", 0.4), ("machine_b", 0.5)):
        write_csvs(BenchmarkResult(selection=[_selection_row(0, "random")],
                                   iou=[_iou_row(0, "random", iou)]), tmp_path / folder)
    with pytest.raises(ValueError, match=r"machine_a.*machine_b.*selection|machine_a.*"
                                         r"machine_b.*iou") as error:
        read_csvs([tmp_path / "machine_a", tmp_path / "machine_b"])
    assert "'seed': 0, 'strategy': 'random'" in str(error.value)


# ---------------------------------------------------------------------- joining runs
def test_merged_settings_joins_runs_of_one_protocol_and_refuses_others(tmp_path):
    """Two real runs (seeds 0 and 1) join; a changed model setting or machine is refused."""
    from sid4ds.evaluation.settings import merged_settings

    for seed in (0, 1):
        assert main([*TINY[:-3], "--seeds", str(seed), "--quiet", "--strategies", "random",
                     "--out", str(tmp_path / f"s{seed}")]) == 0
    merged = merged_settings([tmp_path / "s0", tmp_path / "s1"])
    assert merged["arguments"]["seeds"] == [0, 1]
    assert merged["arguments"]["strategies"] == ["random"]
    assert merged["merged_from"] == [str(tmp_path / "s0"), str(tmp_path / "s1")]
    assert "started" not in merged and "machines" not in merged
    assert set(merged["split"]["n_defective_pool"]) == {"0", "1"}
    joined = tmp_path / "joined"  # a joined folder joins again, with a third run
    joined.mkdir()
    (joined / "settings.json").write_text(json.dumps(merged))

    def variant(name, change):
        record = json.loads((tmp_path / "s1" / "settings.json").read_text())
        record["arguments"]["seeds"] = [2]
        change(record)
        (tmp_path / name).mkdir()
        (tmp_path / name / "settings.json").write_text(json.dumps(record))
        return tmp_path / name

    same = variant("same", lambda record: None)
    assert merged_settings([joined, same])["arguments"]["seeds"] == [0, 1, 2]
    longer = variant("longer", lambda record: record["models"]["segmenter_S"].update(
        max_steps=7))
    with pytest.raises(ValueError, match=r"models\.segmenter_S\.max_steps is \d+ in .*joined"
                                         r" but 7 in .*longer"):
        merged_settings([joined, longer])
    other_cpu = variant("other_cpu", lambda record: record["versions"].update(
        torch_cpu_capability="AVX512_OTHER"))
    with pytest.raises(ValueError, match=r"different machines: versions\.torch_cpu_capabili"
                                         r"ty.*allow_machines"):
        merged_settings([joined, other_cpu])
    allowed = merged_settings([joined, other_cpu], allow_machines=True)
    capabilities = {machine["versions.torch_cpu_capability"]
                    for machine in allowed["machines"].values()}
    assert capabilities == {torch.backends.cpu.get_cpu_capability(), "AVX512_OTHER"}
    with pytest.raises(ValueError, match="no settings.json"):
        merged_settings([joined, tmp_path])


def test_a_shorter_run_of_one_seed_joins_a_longer_one(tmp_path):
    """Seed 0 run for one round with IoU at 10%, then for two with IoU at 30%: the rounds
    and S on the whole pool that both ran agree, so they join into one table of every share;
    a round timed twice counts once."""
    from sid4ds.evaluation.settings import merged_settings

    base = [*TINY[:-5], "--seeds", "0", "--quiet", "--strategies", "random", "--iou",
            "--test-defective", "4"]
    assert main([*base, "--rounds", "1", "--iou-shares", "0.1",
                 "--out", str(tmp_path / "short")]) == 0
    assert main([*base, "--rounds", "2", "--iou-shares", "0.3",
                 "--out", str(tmp_path / "long")]) == 0
    folders = [tmp_path / "short", tmp_path / "long"]
    merged = merged_settings(folders)
    assert merged["arguments"]["rounds"] == 2
    assert merged["arguments"]["iou_shares"] == [0.1, 0.3]
    result = read_csvs(folders)
    assert sorted((row["strategy"], row["labeled_share"]) for row in result.iou) == [
        ("random", 0.1), ("random", 0.3), ("whole pool", 1.0)]
    assert [row["round"] for row in result.selection] == [0, 1, 2]
    assert [row["round"] for row in result.timing] == [0, 1, 2]
    short_times = {row["round"]: row["seconds"] for row in
                   read_csvs([tmp_path / "short"]).timing}
    assert [row["seconds"] for row in result.timing[:2]] == [short_times[0], short_times[1]]
    changed = tmp_path / "changed"  # a round that ran differently still refuses to join
    changed.mkdir()
    for name in ("selection.csv", "settings.json"):
        (changed / name).write_text((tmp_path / "short" / name).read_text())
    rows = (changed / "selection.csv").read_text().splitlines()
    fields = rows[2].split(",")
    fields[7] = str(int(fields[7]) + 1)  # one more defective image selected in round 1
    rows[2] = ",".join(fields)
    (changed / "selection.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"selection row .*'round': 1"):
        read_csvs([changed, tmp_path / "long"])
