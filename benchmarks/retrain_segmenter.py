"""Train S again on what a finished benchmark run labelled, with other settings of S.

    python benchmarks/retrain_segmenter.py benchmarks/results/run11_mag29 \\
        --out results/lr1e-3 --set lr=0.001 --iou-shares 0.3

Reads the run's ``settings.json`` and ``labeled.csv`` (``python -m sid4ds.evaluation`` writes
both), loads the same images, draws the same splits, trains a fresh S with the run's
settings changed by each ``--set key=value`` on the first share of the pool each strategy
labelled and on the whole pool, and prints and writes part (c) as the benchmark does:
``iou.csv``, the run's ``selection.csv`` and ``labeled.csv``, ``settings.json`` (with a
``"retrained"`` entry) and ``report.md`` (:func:`sid4ds.evaluation.retrain_folder`). Without
``--set``, on the machine that made the run, it prints the run's own IoU again. Folders of
one seed each (``--seeds``) with the same ``--set`` join with ``merge_results.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sid4ds.cli.types import count, parameter, share
from sid4ds.evaluation import format_tables, plot_results, retrain_folder, write_csvs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[1])
    parser.add_argument("run", help="output folder of a benchmark run (settings.json, "
                                    "labeled.csv)")
    parser.add_argument("--out", required=True, help="folder for the new results")
    parser.add_argument("--set", dest="changes", nargs="+", type=parameter, default=[],
                        metavar="KEY=VALUE",
                        help="parameters of SegmentationLearner to change, e.g. lr=0.001 "
                             "max_steps=2000 augment=flip,")
    parser.add_argument("--iou-shares", type=share, nargs="+", metavar="F",
                        help="labelled shares to train on (default: the run's)")
    parser.add_argument("--strategies", nargs="+", metavar="NAME",
                        help="only these strategies (default: every one in labeled.csv)")
    parser.add_argument("--seeds", type=count, nargs="+", metavar="S",
                        help="only these seeds (default: every one in labeled.csv)")
    parser.add_argument("--npz", help="where the run's .npz file lies now, if it has moved")
    parser.add_argument("--images", help="where the run's image folder lies now")
    parser.add_argument("--masks", help="where the run's mask folder lies now")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    moved = {name: getattr(args, name) for name in ("npz", "images", "masks")
             if getattr(args, name) is not None}
    try:
        result, settings = retrain_folder(
            args.run, segmenter_params=dict(args.changes), iou_shares=args.iou_shares,
            strategies=args.strategies, seeds=args.seeds, data_paths=moved,
            progress=not args.quiet)
    except (ValueError, TypeError, OSError) as error:
        sys.exit(f"retrain_segmenter.py: error: {error}")
    out = Path(args.out)
    write_csvs(result, out)
    settings_text = json.dumps(settings, indent=2, default=str)
    (out / "settings.json").write_text(settings_text + "\n", encoding="utf-8")
    label_share = settings["arguments"].get("label_share", 0.1)
    tables = format_tables(result, label_share=label_share)
    changes = ", ".join(f"{key}={value!r}" for key, value in args.changes) or "none"
    (out / "report.md").write_text(
        f"# sid4ds benchmark, S trained again\n\nrun: {args.run}\n\nchanges to S: {changes}"
        f"\n\nsettings:\n```json\n{settings_text}\n```\n\n{tables}\n", encoding="utf-8")
    try:
        plot_results(result, out, label_share=label_share)
    except ImportError as error:
        print(f"no plots: {error}")
    print(f"S trained again on {args.run}'s labels; changes to S: {changes}\n\n{tables}")


if __name__ == "__main__":
    main()
