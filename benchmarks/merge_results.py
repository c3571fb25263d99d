"""Join benchmark runs made separately (one seed or one data set per run) into one report.

    python benchmarks/merge_results.py results/gen5_s0 results/gen5_s1 results/gen5_s2 \\
        --out results/gen5 --label-share 0.1

Reads each folder's CSVs (``python -m sid4ds.evaluation --out DIR`` or
``benchmarks/retrain_segmenter.py`` wrote them), prints the markdown tables over all the
seeds (mean ± std), and writes the joined CSVs, ``report.md``, ``settings.json`` and the
plots into ``--out``. Runs of different settings are refused, and
runs from different machines too unless ``--allow-machines`` is given
(:func:`sid4ds.evaluation.settings.merged_settings`). A run of fewer rounds joins a longer
run of the same seed when the rounds both ran agree, e.g. to add IoU at 10% and 20% to a
run that measured 30%.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sid4ds.evaluation import format_tables, plot_results, read_csvs, write_csvs
from sid4ds.evaluation.settings import merged_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="output folders of benchmark runs")
    parser.add_argument("--out", required=True, help="folder for the joined results")
    parser.add_argument("--label-share", type=float, default=0.1,
                        help="K as a share of the pool, for the column names (default 0.1)")
    parser.add_argument("--allow-machines", action="store_true",
                        help="join runs made on different machines (CPU capability, threads, "
                             "versions); only sound when they hold different seeds")
    args = parser.parse_args()
    try:
        settings = merged_settings(args.folders, allow_machines=args.allow_machines)
        result = read_csvs(args.folders)
    except ValueError as error:
        sys.exit(f"merge_results.py: error: {error}")
    out = Path(args.out)
    write_csvs(result, out)
    (out / "settings.json").write_text(json.dumps(settings, indent=2, default=str) + "\n",
                                       encoding="utf-8")
    tables = format_tables(result, label_share=args.label_share)
    sources = "\n".join(f"- {folder}" for folder in args.folders)
    (out / "report.md").write_text(f"# sid4ds benchmark, joined runs\n\n{sources}\n\n{tables}\n",
                                   encoding="utf-8")
    plot_results(result, out, label_share=args.label_share)
    print(tables)


if __name__ == "__main__":
    main()
