"""``python -m sid4ds.evaluation`` and ``sid4ds benchmark``: the benchmark's command line.

Parses the options, loads the data (:func:`sid4ds.evaluation.load_run_data`), runs
:func:`sid4ds.evaluation.run_benchmark`, prints the settings and the tables, and writes the
CSVs, ``settings.json``, ``report.md`` and the plots.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sid4ds._core.device import resolve_device
from sid4ds.baselines import RotationPretextScorer
from sid4ds.cli.options import add_network_arguments
from sid4ds.cli.types import count, fraction, parameter, positive_int, share
from sid4ds.engine.rounds import labels_per_round
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.evaluation import (
    COLD_START_BATCH,
    DEFAULT_STRATEGIES,
    STRATEGIES,
    format_tables,
    load_run_data,
    plot_results,
    pool_and_test,
    run_benchmark,
    write_csvs,
)
from sid4ds.evaluation.protocol import check_protocol
from sid4ds.evaluation.settings import machine_versions
from sid4ds.metrics import defective_rows

__all__ = ["add_arguments", "add_benchmark_command", "build_parser", "main", "run_from_args"]


_EXAMPLES = """\
examples:
  python -m sid4ds.evaluation --out results/synthetic --seeds 0 1 2 --iou
  python -m sid4ds.evaluation --npz magnetic_tile_128.npz --image-size 64 \\
      --defect-fraction 0.05 --out results/magnetic --strategies sid4ds random local_contrast
  sid4ds benchmark --images photos/ --masks truth/ --image-size 128 --out results/line3
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (used by ``sid4ds benchmark`` too)."""
    data = parser.add_argument_group(
        "data", "generated images by default; or --npz; or --images with --masks")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--npz", metavar="PATH",
                        help="an .npz file with images and masks (e.g. magnetic_tile_128.npz)")
    source.add_argument("--images", metavar="DIR", help="a folder of images")
    data.add_argument("--masks", metavar="DIR",
                      help="with --images: the folder of their masks (0 = normal, >0 = defect)")
    data.add_argument("--mask-suffix", default="", metavar="S",
                      help="ending of mask names to ignore when matching, e.g. _mask")
    data.add_argument("--image-size", type=positive_int, metavar="N",
                      help="resize loaded images to NxN; the side of generated images "
                           "(default 64)")
    data.add_argument("--defect-fraction", type=fraction, metavar="F",
                      help="with --npz: keep every normal image and a seeded subset of the "
                           "defective ones so that they make up F (e.g. 0.05)")
    data.add_argument("--n-samples", type=positive_int, default=1000, metavar="N",
                      help="generated images (default 1000)")
    data.add_argument("--defect-ratio", type=fraction, default=0.05, metavar="R",
                      help="share of defective generated images (default 0.05)")
    data.add_argument("--data-seed", type=count, default=0, metavar="S",
                      help="seed of the generated images and of the --defect-fraction subset "
                           "(default 0)")

    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--strategies", nargs="+", choices=STRATEGIES,
                          default=list(DEFAULT_STRATEGIES),
                          metavar="NAME",
                          help=f"strategies to compare (default: "
                               f"{' '.join(DEFAULT_STRATEGIES)}; sid4ds ranks by E_sdr "
                               f"fused with S's probability, sid4ds_esdr by E_sdr alone, "
                               f"sid4ds_threshold by E_sdr alone with the paper's regions: "
                               f"ablations)")
    protocol.add_argument("--rounds", type=count, default=2, metavar="T",
                          help="rounds after the cold start (default 2)")
    protocol.add_argument("--label-share", type=share, default=0.1, metavar="F",
                          help="K, images labelled per round, as a share of the pool "
                               "(default 0.1)")
    protocol.add_argument("--seeds", type=count, nargs="+", default=[0, 1, 2], metavar="S",
                          help="seeds of the split and the models; tables show mean ± std over "
                               "them (default 0 1 2)")
    protocol.add_argument("--test-defective", type=count, default=100, metavar="N",
                          help="with --iou: defective images only ever held out, so that the "
                               "IoU sees enough defects (generated afresh, or those a "
                               "--defect-fraction subset left out; default 100)")
    protocol.add_argument("--test-share", type=fraction, default=0.2, metavar="F",
                          help="share of the images held out of the pool, stratified and "
                               "seeded, for --iou (default 0.2; 0 keeps all in the pool)")
    protocol.add_argument("--n-batches", type=positive_int, default=10, metavar="N",
                          help="batches of the cold-start rankings (default 10)")
    protocol.add_argument("--expected-defect-ratio", type=fraction, default=0.05, metavar="R",
                          help="SID4DS fake normals per round V = K x (1 - R) (default 0.05)")
    protocol.add_argument("--iou", action="store_true",
                          help="also train a fresh S on what each strategy labelled and score "
                               "its IoU on the held-out images (the slowest part)")
    protocol.add_argument("--iou-shares", type=share, nargs="+", default=[0.1, 0.2, 0.3],
                          metavar="F", help="labelled shares to train on (default 0.1 0.2 0.3)")

    models = parser.add_argument_group(
        "models", "defaults are those of SegmentationLearner (S) and ReconstructionScorer (M, "
                  "G); PT4AL's rotation model is sized like S, with M's epochs")
    models.add_argument("--epochs-m", type=positive_int, metavar="N",
                        help="epochs of the self-supervised models: M and PT4AL's rotation "
                             "model (default 12)")
    add_network_arguments(models)
    models.add_argument("--set-s", dest="set_s", nargs="+", type=parameter, default=[],
                        metavar="KEY=VALUE",
                        help="other parameters of S, e.g. lr=0.003 crop_size=64 (after "
                             "--steps-s, --width, ...)")
    models.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda, cuda:N (default auto)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", default="sid4ds-benchmark", metavar="DIR",
                        help="folder for the CSV files, settings.json, report.md and plots "
                             "(default ./sid4ds-benchmark)")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m sid4ds.evaluation``."""
    parser = argparse.ArgumentParser(
        prog="python -m sid4ds.evaluation",
        description="Compare SID4DS with baseline active-learning strategies with the paper's "
                    "protocol: cold-start batches, defects found per round, segmentation IoU "
                    "(--iou) and time per round.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser)


def _models(args: argparse.Namespace) -> tuple[SegmentationLearner, ReconstructionScorer,
                                                RotationPretextScorer]:
    network = {"device": args.device}
    if args.width is not None:
        network["base_channels"] = args.width
    if args.depth is not None:
        network["depth"] = args.depth
    segmenter = SegmentationLearner(**network)
    scorer = ReconstructionScorer(**network)
    if args.steps_s is not None:
        segmenter.set_params(max_steps=args.steps_s)
    if args.epochs_s is not None:
        segmenter.set_params(max_epochs=args.epochs_s)
    segmenter.set_params(**dict(getattr(args, "set_s", [])))
    segmenter.check_params()  # a bad --set-s fails now, not after the cold start
    if args.epochs_m is not None:
        scorer.set_params(max_epochs=args.epochs_m)
    if args.patch_size is not None:
        scorer.set_params(patch_size=args.patch_size)
    pretext = RotationPretextScorer(base_channels=segmenter.base_channels,
                                    depth=segmenter.depth, dilation=segmenter.dilation,
                                    max_epochs=scorer.max_epochs, device=args.device)
    return segmenter, scorer, pretext


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments (of :func:`build_parser` or ``sid4ds benchmark``).

    Returns
    -------
    exit_code : int
        0.
    """
    check_protocol(args.rounds, args.label_share, args.test_share, args.iou, args.iou_shares)
    data = load_run_data(vars(args))
    X, truth, description = data.X, data.masks, data.description
    segmenter, scorer, pretext = _models(args)
    side = 2 ** segmenter.depth
    height, width = X.shape[2:]
    if height % side or width % side:
        raise ValueError(
            f"the images are {height}x{width} pixels but --depth {segmenter.depth} needs sides "
            f"divisible by {side}: pass --image-size {max(side, height // side * side)} or a "
            f"smaller --depth"
        )
    is_defective = defective_rows(truth)
    pool, test = pool_and_test(is_defective, args.test_share, random_state=args.seeds[0],
                               groups=data.groups, test_only=data.test_only)
    arguments = {key: value for key, value in vars(args).items()
                 if key not in ("handler", "command")}
    settings = {
        "arguments": arguments, "data": description,
        "split": {"n_pool": len(pool), "n_test": len(test),
                  "n_label_per_round": labels_per_round(args.label_share, len(pool)),
                  "held_out": "stratified by defective/normal, by source group where the "
                              "data has groups, drawn with each seed, plus the test-only "
                              "defective images (--test-defective)"},
        "models": {"segmenter_S": segmenter.get_params(), "scorer_M_G": scorer.get_params(),
                   "pt4al_pretext": pretext.get_params(),
                   "device": str(resolve_device(args.device))},
        "query_settings": {
            "sid4ds": "run_sid4ds: n_normal='auto', tie_break='msmr', region='adaptive', "
                      "fusion='rank' (sid4ds_esdr: fusion=None; sid4ds_threshold: "
                      "region='threshold', fusion=None), G trained once",
            "baselines": "the library defaults of sid4ds.baselines (entropy/margin "
                         "reduction='mean', sa n_models=3, learning_loss epochs=100, pt4al "
                         "n_batches=10); no fake normals; S warm-started every round",
            "cold_start": {name: ("shared seeded random batch" if how == "random" else
                                  "own query") for name, how in COLD_START_BATCH.items()},
        },
        "versions": machine_versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings_text = json.dumps(settings, indent=2, default=str)
    print("# sid4ds benchmark\n\nsettings:\n```json\n" + settings_text + "\n```", flush=True)
    (out / "settings.json").write_text(settings_text + "\n", encoding="utf-8")

    started = time.perf_counter()
    result = run_benchmark(
        X, truth, strategies=args.strategies, n_rounds=args.rounds,
        label_share=args.label_share, seeds=args.seeds, test_share=args.test_share,
        segmenter=segmenter, scorer=scorer, pretext=pretext,
        expected_defect_ratio=args.expected_defect_ratio, n_batches=args.n_batches,
        iou=args.iou, iou_shares=args.iou_shares, groups=data.groups,
        test_only=data.test_only, progress=not args.quiet,
        on_seed=lambda partial: write_csvs(partial, out))  # finished seeds survive a stop
    elapsed = time.perf_counter() - started
    settings["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    settings["seconds"] = round(elapsed, 1)
    settings["split"]["n_defective_pool"] = result.info["n_defective_pool"]
    settings["split"]["n_defective_test"] = result.info["n_defective_test"]
    settings_text = json.dumps(settings, indent=2, default=str)
    (out / "settings.json").write_text(settings_text + "\n", encoding="utf-8")

    tables = format_tables(result, label_share=args.label_share)
    print("\n" + tables + "\n")
    written = write_csvs(result, out)
    (out / "report.md").write_text(
        "# sid4ds benchmark\n\nsettings:\n```json\n" + settings_text + "\n```\n\n" + tables
        + "\n", encoding="utf-8")
    written += [out / "settings.json", out / "report.md"]
    try:
        written += plot_results(result, out, label_share=args.label_share)
    except ImportError as error:
        print(f"no plots: {error}")
    print(f"total time {elapsed:.0f} s; wrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m sid4ds.evaluation`` with ``argv``; returns the exit code.

    Prints the settings, then the markdown tables of every part; writes ``settings.json``,
    ``report.md``, ``cold_start.csv``, ``selection.csv``, ``labeled.csv``, ``timing.csv``
    (``iou.csv`` with ``--iou``) and PNG plots (drawn with matplotlib) into ``--out``. Bad
    input prints an error naming the option and returns 1.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        0 success, 1 bad input, 2 wrong usage (from argparse, as SystemExit).

    Examples
    --------
    >>> import tempfile
    >>> from sid4ds.cli.benchmark import main
    >>> folder = tempfile.TemporaryDirectory()
    >>> main(["--n-samples", "40", "--image-size", "16", "--width", "4", "--depth", "2",
    ...       "--epochs-s", "1", "--strategies", "random", "local_contrast", "--rounds", "1",
    ...       "--seeds", "0", "--out", folder.name, "--quiet"])  # doctest: +ELLIPSIS
    # sid4ds benchmark
    ...
    0
    >>> folder.cleanup()
    """
    args = build_parser().parse_args(argv)
    try:
        return run_from_args(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"sid4ds benchmark: error: {error}", file=sys.stderr)
        return 1



def add_benchmark_command(commands: Any) -> None:
    """Add ``sid4ds benchmark`` (the same options as ``python -m sid4ds.evaluation``)."""
    benchmark = commands.add_parser(
        "benchmark", help="compare SID4DS with baseline strategies (the paper's protocol)",
        description="Compare SID4DS with baseline active-learning strategies: cold-start "
                    "batches, defects found per round, segmentation IoU (--iou) and time per "
                    "round; the same as python -m sid4ds.evaluation.")
    add_arguments(benchmark).set_defaults(handler=run_from_args)
