"""Benchmark SID4DS against the baselines with the paper's protocol (§4–5).

``python -m sid4ds.evaluation`` (or ``sid4ds benchmark``) runs, on generated images, an
``.npz`` file or a folder of images and masks, for every strategy and seed:

(a) **cold start** (paper Fig. 12): each cold-start ranking of the pool (E_msmr of SID4DS,
    PT4AL's rotation loss, random, and the no-learning local-contrast score
    ``max |image − gaussian_filter(image, 2)|``) cut into 10 batches; defective images per
    batch;
(b) **selection** (Fig. 13): the share of all defective pool images labelled after each
    round, with K = ``label_share`` of the pool per round;
(c) **segmentation IoU** (Table 5, optional): a fresh :class:`~sid4ds.SegmentationLearner`
    trained on the images each strategy had labelled at 10%, 20%, 30% of the pool, and on the
    whole pool, scored on a held-out split;
(d) **wall time per round** (Table 3).

It prints markdown tables (mean ± std over seeds), writes one tidy CSV per part,
``labeled.csv`` (which images each strategy labelled, in order), a ``settings.json`` with
every setting used, and PNG plots.

The package, one concern per module:

- :mod:`sid4ds.evaluation.protocol`: :func:`run_benchmark`, every strategy on the same
  pool, and its :class:`BenchmarkResult`;
- :mod:`sid4ds.evaluation.runs`: what one strategy does with one seed, a
  :class:`StrategyRun`: :func:`run_baseline` (the loop every baseline runs) and SID4DS
  through :func:`~sid4ds.run_sid4ds`;
- :mod:`sid4ds.evaluation.split`: the held-out split (:func:`split_held_out`,
  :func:`pool_and_test`);
- :mod:`sid4ds.evaluation.records`: the pure functions that turn rankings and selection
  histories into records (:func:`batch_defect_counts`, :func:`cold_start_records`,
  :func:`cumulative_defect_share`, :func:`selection_records`, :func:`labeled_records`,
  :func:`labeled_prefix`, :func:`histories_from_labeled`, :func:`aggregate`);
- :mod:`sid4ds.evaluation.iou`: part (c), :func:`iou_records` (S trained on each labelled
  share, scored on the held-out images);
- :mod:`sid4ds.evaluation.retrain`: part (c) again on a finished run's ``labeled.csv``, with
  S's settings changed (:func:`retrain_folder`, :func:`retrain_iou`);
- :mod:`sid4ds.evaluation.output`: tables, CSVs, plots;
- :mod:`sid4ds.evaluation.data`: :func:`load_dataset`, :func:`load_run_data`;
- :mod:`sid4ds.evaluation.settings`: :func:`~sid4ds.evaluation.settings.merged_settings`, which
  runs may be joined into one table (one protocol, one machine);
- the command line is :mod:`sid4ds.cli.benchmark`.
"""

from sid4ds.baselines import local_contrast_sampling, local_contrast_scores
from sid4ds.evaluation.data import BenchmarkData, load_dataset, load_run_data
from sid4ds.evaluation.iou import iou_records, labels_at
from sid4ds.evaluation.output import (
    format_mean_std,
    format_tables,
    markdown_table,
    plot_results,
    read_csvs,
    write_csvs,
)
from sid4ds.evaluation.protocol import (
    COLD_START_BATCH,
    DEFAULT_STRATEGIES,
    STRATEGIES,
    BenchmarkResult,
    StrategyRun,
    pool_and_test,
    run_baseline,
    run_benchmark,
    split_held_out,
)
from sid4ds.evaluation.records import (
    COLD_START_COLUMNS,
    IOU_COLUMNS,
    LABELED_COLUMNS,
    SELECTION_COLUMNS,
    TIMING_COLUMNS,
    WHOLE_POOL,
    aggregate,
    batch_defect_counts,
    cold_start_records,
    cumulative_defect_share,
    histories_from_labeled,
    labeled_prefix,
    labeled_records,
    selection_records,
)
from sid4ds.evaluation.retrain import retrain_folder, retrain_iou

__all__ = [
    "COLD_START_BATCH",
    "COLD_START_COLUMNS",
    "DEFAULT_STRATEGIES",
    "IOU_COLUMNS",
    "LABELED_COLUMNS",
    "SELECTION_COLUMNS",
    "STRATEGIES",
    "TIMING_COLUMNS",
    "WHOLE_POOL",
    "BenchmarkData",
    "BenchmarkResult",
    "StrategyRun",
    "aggregate",
    "batch_defect_counts",
    "cold_start_records",
    "cumulative_defect_share",
    "format_mean_std",
    "format_tables",
    "histories_from_labeled",
    "iou_records",
    "labeled_prefix",
    "labeled_records",
    "labels_at",
    "load_dataset",
    "load_run_data",
    "local_contrast_sampling",
    "local_contrast_scores",
    "markdown_table",
    "plot_results",
    "pool_and_test",
    "read_csvs",
    "retrain_folder",
    "retrain_iou",
    "run_baseline",
    "run_benchmark",
    "selection_records",
    "split_held_out",
    "write_csvs",
]
