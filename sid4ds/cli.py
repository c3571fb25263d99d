"""The ``sid4ds`` command line (also ``python -m sid4ds``).

``sid4ds demo`` runs SID4DS on generated images; ``init``, ``query``, ``import``,
``status``, ``report`` and ``export`` drive a labelling session with a human labeller. They
are a thin layer over :class:`sid4ds.session.LabelingSession`.

Exit codes: 0 success, 1 bad input or a session problem (the message says what to do),
2 wrong usage, 3 the session is busy with another command, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from sid4ds.active import run_sid4ds
    from sid4ds.datasets import make_defect_images
    from sid4ds.reconstruction import ReconstructionScorer
    from sid4ds.segmentation import SegmentationLearner

    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  defect_ratio=args.defect_ratio, random_state=args.seed)
    is_defective = masks.reshape(len(masks), -1).any(axis=1)
    n_label = max(1, int(round(args.label_share * len(X))))
    scorer = ReconstructionScorer(max_epochs=args.epochs_m)
    segmenter = SegmentationLearner(max_epochs=args.epochs_s)
    if args.quick:
        scorer.set_params(base_channels=8, depth=2)
        segmenter.set_params(base_channels=8, depth=2)
    print("sid4ds demo: SID4DS active learning on generated defect images")
    print(f"  pool: {len(X)} images of {args.image_size}x{args.image_size}, "
          f"{int(is_defective.sum())} defective ({is_defective.mean():.1%}), seed {args.seed}")
    print(f"  budget: K={n_label} images per round ({args.label_share:.0%} of the pool), "
          f"cold start + {args.rounds} rounds")
    print(f"  M: {scorer!r}")
    print(f"  S: {segmenter!r}")
    started = time.perf_counter()
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=args.rounds, n_label=n_label,
                     expected_defect_ratio=args.defect_ratio, segmenter=segmenter,
                     scorer=scorer, random_state=args.seed, verbose=0 if args.quiet else 1)
    elapsed = time.perf_counter() - started
    rng = np.random.default_rng(args.seed)
    random_pick = rng.permutation(len(X))[: run.rounds[-1]["n_labeled"]]
    n_total = int(is_defective.sum())
    print()
    print(run.table(n_defective_total=n_total))
    print()
    print(f"SID4DS found {run.rounds[-1]['cumulative_defective']} of {n_total} defective images "
          f"by labelling {run.rounds[-1]['n_labeled']} of {len(X)}; random sampling with the "
          f"same budget found {int(is_defective[random_pick].sum())} (seed {args.seed}).")
    print(f"total time {elapsed:.0f} s")
    return 0


# ---------------------------------------------------------------------- labelling sessions
def _size(text: str) -> int | tuple[int, int]:
    """``N`` or ``HxW`` -> an int or a (height, width) pair (argparse type)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f"expected a positive size N or HxW (e.g. 64 or 48x64), got {text!r}")
    if match.group(2):
        return int(match.group(1)), int(match.group(2))
    return int(match.group(1))


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


_positive = positive_int


def add_network_arguments(group: Any, *, epochs_s_help: str) -> None:
    """The network options shared by ``sid4ds init`` and ``sid4ds benchmark``."""
    group.add_argument("--epochs-s", type=positive_int, metavar="N", help=epochs_s_help)
    group.add_argument("--width", type=positive_int, metavar="N",
                       help="channels of the first UNet level of every network (default 16)")
    group.add_argument("--depth", type=positive_int, metavar="N",
                       help="UNet depth of every network; image sides must be divisible by "
                            "2**depth (default 3)")
    group.add_argument("--patch-size", type=positive_int, metavar="N",
                       help="side of the patches M masks during training (default 8)")


def _count_or_auto(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 0 or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'auto', got {text!r}")
    return value


def _images_argument(images: str) -> Any:
    """``--images``: a folder, an .npy file (memory-mapped) or a .txt list of image paths."""
    path = Path(images)
    if path.suffix.lower() == ".npy" and path.is_file():
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if path.suffix.lower() == ".txt" and path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [str(path.parent / line) for line in lines if line and not line.startswith("#")]
    return images


def _init(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    network = {}
    if args.width is not None:
        network["base_channels"] = args.width
    if args.depth is not None:
        network["depth"] = args.depth
    scorer = dict(network)
    segmenter = dict(network)
    for key, value in (("max_epochs", args.epochs_m), ("patch_size", args.patch_size),
                       ("n_blocks", args.n_blocks)):
        if value is not None:
            scorer[key] = value
    if args.epochs_s is not None:
        segmenter["max_epochs"] = args.epochs_s
    session = LabelingSession.create(
        args.session, _images_argument(args.images), args.masks, image_size=args.image_size,
        tile=args.tile, mode="RGB" if args.rgb else None, mask_suffix=args.mask_suffix,
        skip_unreadable=args.skip_unreadable, defect_ratio=args.defect_ratio, seed=args.seed,
        scorer_params=scorer, segmenter_params=segmenter, guided_epochs=args.epochs_g)
    status = session.status()
    channels, height, width = status["image_shape"]
    print(f"created session {session.path}: {status['n_images']} images of {height}x{width} "
          f"({channels} channel{'s' if channels > 1 else ''}), {status['labeled']} labelled "
          f"({status['defective']} defective)")
    print(f"next: sid4ds query {session.path}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    record = session.query(args.n, args.normals, device=args.device,
                           verbose=0 if args.quiet else 1, skip_missing=args.skip_missing)
    folder = session.path / record["folder"]
    print(f"round {record['round']} ({record['stage']}, ranked by {record['score']}): "
          f"label these {len(record['selected'])} images")
    for rank, (name, score) in enumerate(zip(record["selected"], record["scores"],
                                             strict=True), start=1):
        print(f"  {rank:4d}  {name}  {score:.6g}")
    print(f"{len(record['fake_normals'])} fake normals (in {folder / 'fake_normals.csv'})")
    print(f"images to label: {folder / 'images'}; list: {folder / 'to_label.csv'}"
          + (f"; pre-annotations: {folder / 'preannotations'}"
             if record["stage"] == "iterative" else ""))
    print(f"next: draw a mask per image (0 = normal, 255 = defect, all black for a normal "
          f"image), named like the image, then sid4ds import {session.path} --masks DIR")
    return 0


def _import(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    if args.masks is not None:
        summary = session.import_masks(args.masks, mask_suffix=args.mask_suffix,
                                       replace=args.replace)
    else:
        summary = session.import_label_studio(args.label_studio, replace=args.replace)
    print(f"imported {len(summary['added'])} new masks, replaced {len(summary['replaced'])}, "
          f"{len(summary['unchanged'])} unchanged")
    if summary.get("not_annotated"):
        print(f"{len(summary['not_annotated'])} tasks have no annotation yet: "
              + ", ".join(summary["not_annotated"][:10])
              + (" ..." if len(summary["not_annotated"]) > 10 else ""))
    status = session.status()
    print(f"labelled {status['labeled']} of {status['n_images']} "
          f"({status['defective']} defective); next: {status['next']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    status = LabelingSession.open(args.session).status()
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    channels, height, width = status["image_shape"]
    print(f"session      {status['path']} (format {status['format_version']})")
    print(f"images       {status['n_images']} of {height}x{width}, {channels} channel"
          f"{'s' if channels > 1 else ''}")
    print(f"rounds       {status['n_rounds']}")
    print(f"labelled     {status['labeled']} ({status['defective']} defective; "
          f"{status['initially_labeled']} from init)")
    print(f"fake normals {status['fake_normals']} (last round)")
    print(f"unlabelled   {status['unlabeled']} (besides the fake normals)")
    if status["rounds"]:
        print("round  stage       asked  labelled  defects found")
        for entry in status["rounds"]:
            print(f"{entry['round']:5d}  {entry['stage']:<10s}  {entry['asked']:5d}  "
                  f"{entry['labeled']:8d}  {entry['defective']:13d}")
    if status["waiting"]:
        print(f"waiting for {len(status['waiting'])} masks: "
              + ", ".join(status["waiting"][:10]) + (" ..." if len(status["waiting"]) > 10
                                                     else ""))
    if status["lock"]:
        lock = status["lock"]
        state = "stale lock of" if lock.get("stale") else "running:"
        print(f"{state} sid4ds {lock.get('command')} (pid {lock.get('pid')}, started "
              f"{lock.get('started')})")
    print(f"next: {status['next']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    index = LabelingSession.open(args.session).report(
        args.out, n_fake_normal_samples=args.samples, device=args.device)
    print(f"wrote {index}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    out = LabelingSession.open(args.session).export(
        args.out, args.format, image_url_prefix=args.image_url_prefix, device=args.device)
    print(f"wrote {args.format} export to {out}")
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from sid4ds.benchmark import run_from_args

    return run_from_args(args)


_EXAMPLES = """\
a labelling session, step by step:
  sid4ds init run1 --images photos/ --image-size 128
  sid4ds query run1 --n 50          # lists 50 images in run1/rounds/000/
  (draw a mask for each, 0 = normal, 255 = defect, named like the image, in answers/)
  sid4ds import run1 --masks answers/
  sid4ds query run1 --n 50          # round 1: trains S and G, ranks again
  sid4ds status run1
  sid4ds report run1                # run1/report/index.html
  sid4ds export run1 --format coco
"""


def _add_session_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            description: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("session", metavar="SESSION", help="the session folder")
        parser.set_defaults(handler=handler)
        return parser

    def add_device(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", default="auto",
                            help="where to run the networks: auto (CUDA when available), "
                                 "cpu, cuda, cuda:N (default auto)")

    def add_quiet(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true",
                            help="no progress messages or progress bars")

    init = add("init", _init, "create a labelling session from a folder of images",
               "Create a session folder from a folder of images (and, optionally, masks that "
               "already exist: their images count as labelled). The images are copied into "
               "the session as the networks will see them (resized or tiled). Settings and "
               "seed are recorded, so the same inputs give the same rounds.")
    init.add_argument("--images", required=True, metavar="DIR|FILE",
                      help="folder of images (.png .jpg .bmp .tif), sorted by name; or an "
                           ".npy array (n, C, H, W) or (n, H, W), read memory-mapped; or a "
                           ".txt file listing image paths, one per line (relative to it)")
    init.add_argument("--masks", metavar="DIR",
                      help="folder of existing masks, named like their images (0 = normal, "
                           "one non-zero value = defect)")
    init.add_argument("--mask-suffix", default="", metavar="S",
                      help="ending of mask names to ignore when matching, e.g. _mask")
    size = init.add_mutually_exclusive_group()
    size.add_argument("--image-size", type=_size, metavar="N|HxW",
                      help="resize every image (and mask) to this size")
    size.add_argument("--tile", type=_size, metavar="N|HxW",
                      help="cut every image (and mask) into tiles of this size; tile k of "
                           "image a is named a_tk")
    init.add_argument("--rgb", action="store_true", help="colour images (default grey-scale)")
    init.add_argument("--skip-unreadable", action="store_true",
                      help="skip unreadable image files with a warning instead of refusing")
    init.add_argument("--defect-ratio", type=float, default=0.05, metavar="R",
                      help="expected share of defective images; sets V with --normals auto "
                           "(default 0.05)")
    init.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    models = init.add_argument_group(
        "models", "defaults are those of ReconstructionScorer (M, G) and SegmentationLearner "
                  "(S)")
    models.add_argument("--epochs-m", type=_positive, metavar="N",
                        help="epochs of the reconstruction learner M (default 12)")
    models.add_argument("--epochs-g", type=_positive, metavar="N",
                        help="epochs of the label-guided learner G (default: as M)")
    add_network_arguments(models,
                          epochs_s_help="epochs of the segmentation learner S (default 30)")
    models.add_argument("--n-blocks", type=_positive, metavar="N",
                        help="blocks of M's sequential-mask score E_msmr (default 16)")

    query = add("query", _query, "train, rank the unlabelled images and list those to label",
                "Run one round: train what the round needs (M on the first round; S and G "
                "once labels exist), rank the unlabelled images and write rounds/NNN/ with "
                "to_label.csv and .json (names, scores, ranks), the images to label, the "
                "pre-annotations of S (PNG masks, from the second round on) and "
                "fake_normals.csv. A query that was killed is resumed by running it again.")
    query.add_argument("--n", type=_positive, metavar="K",
                       help="images to label this round (default 10%% of the pool)")
    query.add_argument("--normals", type=_count_or_auto, default="auto", metavar="V",
                       help="fake normals: a number, or auto = K x (1 - defect ratio) "
                            "(default auto); 0 turns them off")
    query.add_argument("--skip-missing", action="store_true",
                       help="start the round although the last one still waits for masks; "
                            "those images go back to the pool")
    add_device(query)
    add_quiet(query)

    importer = add("import", _import, "take the labeller's masks back",
                   "Import masks for the images the session asked for (or already knows). "
                   "Every file is checked first; if one is wrong nothing is imported and the "
                   "message names the file. Masks are copied into the session.")
    source = importer.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", metavar="DIR",
                        help="folder of mask files named like the images (0 = normal, "
                             "255 = defect; all black for a normal image)")
    source.add_argument("--label-studio", metavar="EXPORT.json",
                        help="a Label Studio JSON export with brush annotations")
    importer.add_argument("--mask-suffix", default="", metavar="S",
                          help="ending of mask names to ignore when matching, e.g. _mask")
    importer.add_argument("--replace", action="store_true",
                          help="replace the mask of an image that is already labelled")
    add_quiet(importer)

    status = add("status", _status, "show rounds and labelled / fake-normal / unlabelled counts",
                 "Show the session's rounds, the labelled, fake-normal and unlabelled counts, "
                 "the defects found per round and what to do next. Reads only.")
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    report = add("report", _report, "write an HTML report with plots",
                 "Write SESSION/report/index.html with PNG plots: the last round's score "
                 "histogram with the K and V cut lines, the images it asked for with their "
                 "reconstruction-error maps and predicted masks, a random sample of the fake "
                 "normals, and the defects found per round.")
    report.add_argument("--out", metavar="DIR", help="output folder (default SESSION/report)")
    report.add_argument("--samples", type=int, default=16, metavar="N",
                        help="fake normals to show (default 16)")
    add_device(report)
    add_quiet(report)

    export = add("export", _export, "export the masks as PNG folders, COCO or Label Studio",
                 "Export the labelled images and masks. png: OUT/good, OUT/defect and "
                 "OUT/ground_truth/defect/NAME_mask.png (MVTec AD / anomalib layout). coco: "
                 "OUT/annotations.json with uncompressed RLE masks, one annotation per "
                 "connected defect. label-studio: OUT/tasks.json with brush-RLE annotations "
                 "(labelled images) and pre-annotations (images still to label), plus "
                 "OUT/label_config.xml.")
    export.add_argument("--format", required=True, choices=("png", "coco", "label-studio"))
    export.add_argument("--out", metavar="DIR",
                        help="output folder, new or empty (default SESSION/exports/FORMAT)")
    export.add_argument("--image-url-prefix", default="images/", metavar="P",
                        help="label-studio: prefix of each task's data.image (default images/)")
    add_device(export)
    add_quiet(export)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sid4ds`` command."""
    parser = argparse.ArgumentParser(
        prog="sid4ds",
        description="Pick the images of a production line worth labelling (SID4DS).",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run SID4DS on generated defect images and print what it found",
        description="Run the SID4DS active-learning loop (Algorithm 1) on built-in generated "
                    "defect images, with the true masks as the labeller, and compare the "
                    "defects found with random sampling.")
    demo.add_argument("--n-samples", type=int, default=1000, help="pool size (default 1000)")
    demo.add_argument("--image-size", type=int, default=64, help="image side (default 64)")
    demo.add_argument("--defect-ratio", type=float, default=0.05,
                      help="share of defective images (default 0.05)")
    demo.add_argument("--label-share", type=float, default=0.1,
                      help="share of the pool labelled per round, K (default 0.1)")
    demo.add_argument("--rounds", type=int, default=2,
                      help="iterations after the cold start (default 2)")
    demo.add_argument("--epochs-m", type=int, default=12,
                      help="epochs of the reconstruction learner M (default 12)")
    demo.add_argument("--epochs-s", type=int, default=30,
                      help="epochs of the segmentation learner S (default 30)")
    demo.add_argument("--quick", action="store_true", help="smaller networks, for a fast look")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.set_defaults(handler=_demo)
    _add_session_commands(commands)
    from sid4ds.benchmark import add_arguments

    benchmark = commands.add_parser(
        "benchmark", help="compare SID4DS with baseline strategies (the paper's protocol)",
        description="Compare SID4DS with baseline active-learning strategies: cold-start "
                    "batches, defects found per round, segmentation IoU (--iou) and time per "
                    "round; the same as python -m sid4ds.benchmark.")
    add_arguments(benchmark).set_defaults(handler=_benchmark)
    return parser


# Python argument names in messages of the library, and the options that set them.
_OPTION_HINTS = (
    (re.compile(r"\b\w+=\S+ \((?:sid4ds \w+ )?(--[\w-]+(?: [\dx]+)?)\)"), r"\1"),
    (re.compile(r"on_error='warn'"), "--skip-unreadable"),
    (re.compile(r"\bimage_size= "), "--image-size "),
    (re.compile(r"\btile=(?=\S)"), "--tile "),
    (re.compile(r"\btile= "), "--tile "),
)


def _for_the_shell(message: str) -> str:
    for pattern, replacement in _OPTION_HINTS:
        message = pattern.sub(replacement, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sid4ds`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    from sid4ds.session import SessionBusyError

    def show_warning(message: Any, category: Any, *rest: Any, **kwargs: Any) -> None:
        print(f"sid4ds {args.command}: warning: {_for_the_shell(str(message))}",
              file=sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            if getattr(args, "quiet", False):
                warnings.filterwarnings("ignore", category=UserWarning,
                                        message="removed a stale lock")
            return args.handler(args)
    except SessionBusyError as error:
        print(f"sid4ds {args.command}: error: {error}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError) as error:
        print(f"sid4ds {args.command}: error: {_for_the_shell(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sid4ds {args.command}: interrupted; the session is as it was after the last "
              f"finished step: run the command again to go on", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
