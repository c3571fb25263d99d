"""The labelling-session commands: ``init``, ``add``, ``query``, ``prune``, ``import``,
``status``, ``report``, ``export``, ``configure``, ``train`` and ``predict``; a thin layer over
:class:`sid4ds.session.LabelingSession`."""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.cli.options import add_device, add_network_arguments, add_quiet
from sid4ds.cli.types import (
    count,
    count_or_auto,
    fraction,
    open_share,
    parameter,
    positive_int,
    size,
)

__all__ = ["SESSION_EXAMPLES", "add_session_commands"]

#: Help of the options that set the final model's settings.
FINAL_HELP = ("settings of the final model of `sid4ds train`: n_folds (cross-validation "
              "folds, default 3), n_checkpoints (training lengths compared, default 5), "
              "fake_normals (train on the last round's fake normals, default True), start "
              "(scratch or in_loop, default scratch), and any parameter of "
              "SegmentationLearner that differs from S's, e.g. max_steps=800 (the default) "
              "or lr=0.001")


def add_target_recall(parser: argparse.ArgumentParser) -> None:
    """``--target-recall R``: the share of defective images the user wants found."""
    parser.add_argument("--target-recall", type=open_share, default=0.95, metavar="R",
                        help="the share of defective images to find, in (0, 1): says how "
                             "many audit labels the bound needs for it (default 0.95)")


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
    if args.steps_s is not None:
        segmenter["max_steps"] = args.steps_s
    if args.epochs_s is not None:
        segmenter["max_epochs"] = args.epochs_s
    session = LabelingSession.create(
        args.session, _images_argument(args.images), args.masks, image_size=args.image_size,
        tile=args.tile, mode="RGB" if args.rgb else None, mask_suffix=args.mask_suffix,
        skip_unreadable=args.skip_unreadable, defect_ratio=args.defect_ratio, seed=args.seed,
        scorer_params=scorer, segmenter_params=segmenter, guided_epochs=args.epochs_g,
        final_params=dict(args.final or ()))
    status = session.status()
    channels, height, width = status["image_shape"]
    print(f"created session {session.path}: {status['n_images']} images of {height}x{width} "
          f"({channels} channel{'s' if channels > 1 else ''}), {status['labeled']} labelled "
          f"({status['defective']} defective)")
    print(f"next: sid4ds query {session.path}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    summary = session.add_images(_images_argument(args.images), args.masks,
                                 mask_suffix=args.mask_suffix,
                                 skip_unreadable=args.skip_unreadable)
    if summary["batch"] is None:
        print(f"added nothing from {summary['source']}: no image is new to the pool")
    else:
        print(f"added {len(summary['added'])} images as batch {summary['batch']} (from "
              f"{summary['source']}), {len(summary['labeled'])} of them with a mask; the "
              f"pool holds {summary['n_images']} images")
        drift = summary.get("drift")
        if drift is not None:
            print(("DRIFT: " if drift["drifted"] else "drift check: ") + drift["message"])
    same, taken = summary["same_content"], summary["name_taken"]
    if same:
        print(f"left out {len(same)} images whose content is already in the pool: "
              + ", ".join(f"{name} (= {twin})" for name, twin in list(same.items())[:10])
              + (" ..." if len(same) > 10 else ""))
    if taken:
        print(f"left out {len(taken)} images whose name the pool already uses: "
              + ", ".join(taken[:10]) + (" ..." if len(taken) > 10 else "")
              + "; rename them to add them")
    status = session.status()
    print(f"next: {status['next']}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    result = session.prune(args.n, args.share, archive=args.archive, apply=args.apply,
                           list_file=args.list)
    names, estimate = result["names"], result["estimate"]
    print(f"{'moved' if result['applied'] else 'would move'} {len(names)} of the "
          f"{result['n_candidates']} unlabelled images at the bottom of round "
          f"{result['round']}'s ranking ({result['score']}) out of the pool"
          + (f" into {result['archive']}" if result["applied"] else ""))
    print(f"kept: the {result['kept_round_images']} images round {result['round']} asked "
          f"for or made fake normals (the next round needs them)"
          + (f", and {result['not_ranked']} images added since, not ranked yet"
             if result["not_ranked"] else ""))
    if names:
        print("lowest ranked: " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
              + f"; the highest of the list is rank {max(result['ranks'])} of "
              f"{result['n_ranked']} (score {result['scores'][-1]:.4g})")
        upper = ("" if estimate["upper"] is None else
                 f", at most {estimate['upper']:g} at 95% confidence")
        print(f"defective images among them: about {estimate['expected']:g}{upper}. "
              f"{estimate['assumes']}.")
    if args.list:
        print(f"the list: {args.list}")
    if result["applied"]:
        print(f"the pool holds {result['n_images']} images; bring archived ones back with "
              f"`sid4ds add {session.path} --images {result['archive']}`")
    else:
        how = f"--n {args.n}" if args.n is not None else f"--share {args.share or 0.5:g}"
        print(f"dry run: nothing was moved; to move them: `sid4ds prune {session.path} {how} "
              f"--archive DIR --apply`")
    return 0


def _query(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession
    from sid4ds.session.audit import audit_needed_text

    session = LabelingSession.open(args.session)
    record = session.query(args.n, args.normals, device=args.device,
                           verbose=0 if args.quiet else 1, skip_missing=args.skip_missing,
                           audit=args.audit, target_recall=args.target_recall)
    folder = session.path / record["folder"]
    reused = record.get("n_reused", 0)
    print(f"round {record['round']} ({record['stage']}): {record['reason']}"
          + (f"; the {record['score']} of the unchanged models was reused for every image"
             if record.get("reused_scores") else
             f"; {reused} scores were reused (unchanged models), only the other images "
             f"were scored" if reused else ""))
    print(f"label these {len(record['selected'])} images (ranked by {record['score']}):")
    for rank, (name, score) in enumerate(zip(record["selected"], record["scores"],
                                             strict=True), start=1):
        print(f"  {rank:4d}  {name}  {score:.6g}")
    if record["audit"]:
        print(f"and label these {len(record['audit'])} audit images, drawn at random from "
              f"the {record['audit_population']} unlabelled images the ranking left (in "
              f"{folder / 'audit.csv'}; they bound the share of defective images found):")
        print("  " + ", ".join(record["audit"][:20])
              + (" ..." if len(record["audit"]) > 20 else ""))
    print(f"{len(record['fake_normals'])} fake normals (in {folder / 'fake_normals.csv'})")
    print(audit_needed_text(record["audit_needed"], record["target_recall"],
                            str(session.path)).capitalize()
          + (f" (this round's audit: {len(record['audit'])})" if record["audit"] else ""))
    print(f"images to label: {folder / 'images'}; list: {folder / 'to_label.csv'}"
          + (f"; pre-annotations: {folder / 'preannotations'}"
             if record["stage"] == "iterative" else ""))
    print(f"next: draw a mask per image (0 = normal, 255 = defect, all black for a normal "
          f"image), named like the image, then `sid4ds import {session.path} --masks DIR`")
    return 0


def _import(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    options = {"replace": args.replace, "any_image": args.any}
    if args.masks is not None:
        summary = session.import_masks(args.masks, mask_suffix=args.mask_suffix, **options)
    elif args.coco is not None:
        summary = session.import_coco(args.coco, **options)
    else:
        summary = session.import_label_studio(args.label_studio, **options)
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

    status = LabelingSession.open(args.session).status(target_recall=args.target_recall)
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    channels, height, width = status["image_shape"]
    print(f"session      {status['path']} (format {status['format_version']})")
    print(f"images       {status['n_images']} of {height}x{width}, {channels} channel"
          f"{'s' if channels > 1 else ''}")
    print(f"rounds       {status['n_rounds']}")
    print(f"labelled     {status['labeled']} ({status['defective']} defective; "
          f"{status['initially_labeled']} without a round asking)")
    print(f"waiting      {status['n_waiting']} (asked for, no mask yet)")
    print(f"fake normals {status['fake_normals']} (the last round's)")
    print(f"unlabelled   {status['unlabeled']} (the rest)")
    if status["rounds"]:
        print("round  stage       asked  labelled  defective  rate  audit")
        for entry in status["rounds"]:
            rate = "" if entry["defect_rate"] is None else f"{entry['defect_rate']:.0%}"
            audit = (f"{entry['audit_labeled']}/{entry['audit']}" if entry.get("audit")
                     else "")
            print(f"{entry['round']:5d}  {entry['stage']:<10s}  {entry['asked']:5d}  "
                  f"{entry['labeled']:8d}  {entry['defective']:9d}  {rate:>4s}  {audit}")
    if len(status["batches"]) > 1:
        print(f"batch  {'by':<4s}  {'when (UTC)':<25s}  images  labelled  defective  from")
        for entry in status["batches"]:
            print(f"{entry['batch']:5d}  {entry['command']:<4s}  {entry['time']:<25s}  "
                  f"{entry['in_pool']:6d}  {entry['labeled']:8d}  {entry['defective']:9d}  "
                  f"{entry['source']}")
    for entry in status["batches"]:
        if entry.get("drift_words"):
            print(f"drift        {entry['drift_words']}")
    recall = status["recall"]
    bound = recall["bound"]
    if bound is None:
        print("recall       no audit yet")
    else:
        estimate = "" if bound["recall"] != bound["recall"] else f", estimate {bound['recall']:.1%}"
        print(f"recall       at least {math.floor(bound['lower'] * 1000) / 10:g}% at "
              f"{bound['confidence']:.0%} confidence{estimate} (audit of round "
              f"{recall['audit_round']}: {bound['audit_defective']} defective of "
              f"{bound['audit_size']})")
    print(f"             {recall['statement']}")
    print(f"             {recall['advice'][0].upper()}{recall['advice'][1:]}.")
    if status["waiting"]:
        print(f"waiting for {len(status['waiting'])} masks: "
              + ", ".join(status["waiting"][:10]) + (" ..." if len(status["waiting"]) > 10
                                                     else ""))
    if status["lock"] and status["lock"].get("stale"):
        lock = status["lock"]
        print(f"stale lock of sid4ds {lock.get('command')} (pid {lock.get('pid')}, started "
              f"{lock.get('started')}): the next command removes it")
    final = status.get("final_model")
    if final is not None:
        stale = (f"; {final['labels_not_seen']} labels came after it: `sid4ds train` again"
                 if final["labels_not_seen"] else "")
        print(f"final model  round {final['round']}, threshold {final['threshold']:g}, "
              f"{final['n_steps']} steps{stale}")
        print(f"             {describe_estimate(final)}")
    print(f"next: {status['next']}")
    return 0


def _configure(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    settings = session.configure(segmenter=dict(args.segmenter or ()),
                                 final=dict(args.final or ()))
    for part, values in settings["changed"].items():
        for key, value in values.items():
            print(f"changed {part} {key} = {value!r}")
    if not settings["changed"]:
        print("nothing changed" if (args.segmenter or args.final) else "the settings now:")
    budget = {key: settings["segmenter"][key] for key in ("max_steps", "max_epochs", "lr")}
    print(f"S of the rounds: {', '.join(f'{key}={value!r}' for key, value in budget.items())}")
    print("final model: " + ", ".join(f"{key}={value!r}"
                                      for key, value in settings["final"].items()))
    return 0


def describe_estimate(summary: dict[str, Any]) -> str:
    """The final model's estimate in words (``sid4ds train`` and ``sid4ds status``)."""
    estimate = summary["estimate"]

    def share(key: str) -> str:
        value = estimate[key]
        if value["mean"] != value["mean"]:  # NaN: no fold had such images
            return "–"
        return f"{value['mean']:.0%} ± {value['std']:.0%}"

    ratio = summary["defect_ratio"]
    mix = "" if ratio is None else f" (images {ratio:g} defective, the session's defect ratio)"
    return (f"defect IoU {estimate['iou']['mean']:.3f} ± {estimate['iou']['std']:.3f}{mix}, "
            f"defective images found {share('detected')}, normal images flagged "
            f"{share('false_alarms')} (mean ± std over {summary['n_folds']} folds)")


def _train(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    summary = session.train(device=args.device, verbose=0 if args.quiet else 1)
    fake = summary["n_fake_normals"] or 0
    if summary["trained"]:
        print(f"trained the final model on {summary['n_training'] - fake} labelled images"
              + (f" and {fake} fake normals" if fake else ""))
    else:
        print("the final model was already trained on every label with these settings")
    print(f"chosen by cross-validation: threshold {summary['threshold']:g}, "
          f"{summary['n_steps']} training steps")
    print(f"expected on new images: {describe_estimate(summary)}")
    print(f"next: `sid4ds predict {session.path} --images DIR --out DIR`, or "
          f"`sid4ds export {session.path} --format model`; `sid4ds report {session.path}` "
          f"shows the cross-validated curves")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    out = LabelingSession.open(args.session).predict(
        _images_argument(args.images), args.out, threshold=args.threshold,
        device=args.device, overwrite=args.overwrite, skip_unreadable=args.skip_unreadable)
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    flagged = sorted(rows, key=lambda row: -float(row["defect_score"]))
    flagged = [row for row in flagged if row["defective"] == "1"]
    print(f"flagged {len(flagged)} of {len(rows)} images as defective"
          + (": " + ", ".join(row["name"] for row in flagged[:10])
             + (" ..." if len(flagged) > 10 else "") if flagged else ""))
    print(f"wrote the masks (each at its image's size) to {out / 'masks'} and the scores to "
          f"{out / 'scores.csv'}")
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
        args.out, args.format, image_url_prefix=args.image_url_prefix, device=args.device,
        overwrite=args.overwrite)
    print(f"wrote {args.format} export to {out}")
    return 0


#: The steps of a session, shown at the end of ``sid4ds --help``.
SESSION_EXAMPLES = """\
a labelling session, step by step:
  sid4ds init run1 --images photos/ --image-size 128
  sid4ds query run1 --n 50          # lists 50 images in run1/rounds/000/
  (draw a mask for each, 0 = normal, 255 = defect, named like the image, in answers/)
  sid4ds import run1 --masks answers/
  sid4ds query run1 --n 50          # round 1: trains S and G, ranks again
  sid4ds status run1
  sid4ds add run1 --images shift2/  # the next images of the line join the pool
  sid4ds report run1                # run1/report/index.html
  sid4ds export run1 --format coco
"""


def add_session_commands(commands: Any) -> None:
    """Add ``init``, ``query``, ``import``, ``status``, ``report`` and ``export``."""
    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
            description: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("session", metavar="SESSION", help="the session folder")
        parser.set_defaults(handler=handler)
        return parser

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
    sizing = init.add_mutually_exclusive_group()
    sizing.add_argument("--image-size", type=size, metavar="N|HxW",
                      help="resize every image (and mask) to this size")
    sizing.add_argument("--tile", type=size, metavar="N|HxW",
                      help="cut every image (and mask) into tiles of this size; tile k of "
                           "image a is named a_tk")
    init.add_argument("--rgb", action="store_true", help="colour images (default grey-scale)")
    init.add_argument("--skip-unreadable", action="store_true",
                      help="skip unreadable image files with a warning instead of refusing")
    init.add_argument("--defect-ratio", type=fraction, default=0.05, metavar="R",
                      help="expected share of defective images; sets V with --normals auto "
                           "(default 0.05)")
    init.add_argument("--seed", type=count, default=0, help="random seed (default 0)")
    models = init.add_argument_group(
        "models", "defaults are those of ReconstructionScorer (M, G) and SegmentationLearner "
                  "(S)")
    models.add_argument("--epochs-m", type=positive_int, metavar="N",
                        help="epochs of the reconstruction learner M (default 12)")
    models.add_argument("--epochs-g", type=positive_int, metavar="N",
                        help="epochs of the label-guided learner G (default: as M)")
    add_network_arguments(models)
    models.add_argument("--n-blocks", type=positive_int, metavar="N",
                        help="blocks of M's sequential-mask score E_msmr (default 16)")
    models.add_argument("--final", nargs="+", type=parameter, metavar="KEY=VALUE",
                        help=FINAL_HELP)

    adding = add("add", _add, "add images to the pool of a session",
                 "Add images to the pool (the next shift's images, say), read as init read "
                 "the pool: the same resizing, tiling and colour mode. The images already in "
                 "the pool are never rewritten; new images whose content is already in the "
                 "pool, or whose name the pool uses, are left out and named. Masks given with "
                 "them count as labels. A folder written by `sid4ds prune --apply` is read "
                 "back as its images were. The next query ranks the new images with the "
                 "rest; without new labels in between only the new images are scored.")
    adding.add_argument("--images", required=True, metavar="DIR|FILE",
                        help="folder of images, an .npy array or a .txt list of image paths "
                             "(as for init), or an archive folder of `sid4ds prune`")
    adding.add_argument("--masks", metavar="DIR",
                        help="folder of masks of some of the new images, named like them")
    adding.add_argument("--mask-suffix", default="", metavar="S",
                        help="ending of mask names to ignore when matching, e.g. _mask")
    adding.add_argument("--skip-unreadable", action="store_true",
                        help="skip unreadable image files with a warning instead of refusing")
    add_quiet(adding)

    query = add("query", _query, "train, rank the unlabelled images and list those to label",
                "Run one round: train what the round needs (M on the first round; S and G "
                "once labels exist), rank the unlabelled images and write rounds/NNN/ with "
                "to_label.csv and .json (names, scores, ranks), the images to label, the "
                "pre-annotations of S (PNG masks, from the second round on) and "
                "fake_normals.csv. A query that was killed is resumed by running it again.")
    query.add_argument("--n", type=positive_int, metavar="K",
                       help="images to label this round (default 10%% of the pool)")
    query.add_argument("--normals", type=count_or_auto, default="auto", metavar="V",
                       help="fake normals: a number, or auto = K x (1 - defect ratio) "
                            "(default auto); 0 turns them off")
    query.add_argument("--audit", type=count, default=0, metavar="N",
                       help="also list N images drawn at random from the unlabelled images "
                            "the ranking left (a random audit, listed apart in audit.csv): "
                            "once labelled, `status` bounds the share of defective images "
                            "found (default 0)")
    add_target_recall(query)
    query.add_argument("--skip-missing", action="store_true",
                       help="start the round although the last one still waits for masks; "
                            "those images go back to the pool")
    add_device(query)
    add_quiet(query)

    pruner = add("prune", _prune, "list (and move out) the images the ranking puts at "
                                  "the bottom",
                 "List the unlabelled images the last round's ranking puts at the bottom, "
                 "with an estimate of how many defective images the list holds and what it "
                 "assumes (a dry run: nothing changes). With --apply --archive DIR, move them "
                 "out of the pool: each is written to DIR/NAME.png (listed in "
                 "DIR/sid4ds_archive.csv) and removed from the session; sid4ds deletes no "
                 "file of yours, and `sid4ds add SESSION --images DIR` brings them back. The "
                 "last round's asked images and fake normals are kept, and so are images "
                 "added since (not ranked yet).")
    amount = pruner.add_mutually_exclusive_group()
    amount.add_argument("--n", type=count, metavar="N", help="how many images to prune")
    amount.add_argument("--share", type=fraction, metavar="F",
                        help="share of the ranked unlabelled images to prune (default 0.5)")
    pruner.add_argument("--archive", metavar="DIR",
                        help="folder (outside the session) the images are moved to")
    pruner.add_argument("--apply", action="store_true",
                        help="move them (without it: a dry run)")
    pruner.add_argument("--list", metavar="FILE.csv",
                        help="also write the list (name, rank, score) to this file")
    add_quiet(pruner)

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
    source.add_argument("--coco", metavar="ANNOTATIONS.json",
                        help="a COCO annotations file (polygons or RLE), e.g. from `sid4ds "
                             "export --format coco` after editing in another tool")
    importer.add_argument("--mask-suffix", default="", metavar="S",
                          help="ending of mask names to ignore when matching, e.g. _mask")
    importer.add_argument("--replace", action="store_true",
                          help="replace the mask of an image that is already labelled")
    importer.add_argument("--any", action="store_true",
                          help="also take masks of images no round asked for (e.g. a fake "
                               "normal you saw a defect in)")
    add_quiet(importer)

    status = add("status", _status, "show rounds and labelled / waiting / fake-normal / "
                                    "unlabelled counts",
                 "Show the session's rounds, the labelled, waiting, fake-normal and unlabelled "
                 "counts, the defects found per round, the share of defective images found "
                 "with a 95%% confidence bound from the newest random audit (`query --audit "
                 "N`) and what it assumes, whether a command is running, and what to do "
                 "next. Reads only.")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    add_target_recall(status)

    report = add("report", _report, "write an HTML report with plots",
                 "Write SESSION/report/index.html with PNG plots: the last round's score "
                 "histogram with the K and V cut lines, the images it asked for with their "
                 "reconstruction-error maps and predicted masks, a random sample of the fake "
                 "normals, the defects found per round, and the final model's estimate and "
                 "cross-validated curves; when the scores tie, what the ranking fell back on.")
    report.add_argument("--out", metavar="DIR", help="output folder (default SESSION/report)")
    report.add_argument("--samples", type=count, default=16, metavar="N",
                        help="fake normals to show (default 16)")
    add_device(report)
    add_quiet(report)

    export = add("export", _export, "export the masks (PNG folders, COCO, Label Studio) or "
                                    "the model",
                 "Export the labelled images and masks. png: OUT/good, OUT/defect and "
                 "OUT/ground_truth/defect/NAME_mask.png (MVTec AD / anomalib layout). coco: "
                 "OUT/annotations.json with compressed RLE masks (pycocotools), one "
                 "annotation per connected defect. label-studio: OUT/tasks.json with brush-RLE "
                 "annotations (labelled images) and pre-annotations (images still to label), "
                 "plus OUT/label_config.xml. model: the final model of `sid4ds train` with "
                 "its cross-validated threshold (OUT/segmenter.pt for SegmentationLearner.load, "
                 "OUT/unet_state_dict.pt and OUT/segmenter.json with the threshold, the "
                 "estimate and the preprocessing); run `sid4ds train` first.")
    export.add_argument("--format", required=True,
                        choices=("png", "coco", "label-studio", "model"))
    export.add_argument("--out", metavar="DIR",
                        help="output folder, new or empty (default SESSION/exports/FORMAT)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace the output folder if it is not empty")
    export.add_argument("--image-url-prefix", default="images/", metavar="P",
                        help="label-studio: prefix of each task's data.image, e.g. "
                             "'/data/local-files/?d=FOLDER/images/' when Label Studio serves "
                             "the exported images as local files (see the user guide; "
                             "default images/)")
    add_device(export)
    add_quiet(export)

    configure = add("configure", _configure, "change the settings of S and of the final "
                                             "model",
                    "Change settings of an existing session: the budget and training of the "
                    "segmentation learner S of the rounds (used by the next query; once S is "
                    "trained only the settings of how it trains may change: max_steps, "
                    "max_epochs, batch_size, lr, lr_schedule, warmup, defect_share, loss, "
                    "bce_weight, dice_weight, augment, best_window, ...) and the settings of "
                    "the final model of `sid4ds train`. Every value is checked before any is "
                    "written; the change is recorded in the manifest. Without options: print "
                    "the settings.")
    configure.add_argument("--segmenter", nargs="+", type=parameter, metavar="KEY=VALUE",
                           help="parameters of S, e.g. max_steps=500 lr=0.001")
    configure.add_argument("--final", nargs="+", type=parameter, metavar="KEY=VALUE",
                           help=FINAL_HELP)

    train = add("train", _train, "train the final model on every label: the model to take "
                                 "home",
                "Train the final model: a fresh segmentation learner on every labelled image "
                "(and, by default, the last round's fake normals), its threshold and training "
                "length chosen by k-fold cross-validation over the labelled images (grouped "
                "by source file), and print the estimate of how well it does on new images "
                "(defect IoU, defective images found, normal images flagged, mean ± std over "
                "the folds). predict and export --format model use it; the S of the rounds is "
                "not changed. Its settings: `sid4ds configure SESSION --final KEY=VALUE`.")
    add_device(train)
    add_quiet(train)

    predict = add("predict", _predict, "the final model's masks and defect scores for new "
                                       "images",
                  "Run the session's final model (sid4ds train; before it, the segmentation "
                  "learner S of the rounds) on new images, read like the pool (the session's "
                  "resizing, tiling and colour mode): OUT/masks/NAME.png (0 / 255), one per "
                  "image at the image's own size (the resizing or tiling undone), and "
                  "OUT/scores.csv (largest defect probability, defect pixels, defective 0/1, "
                  "size per image); prints how many images it flagged.")
    predict.add_argument("--images", required=True, metavar="DIR|FILE",
                         help="folder of images, an .npy array or a .txt list of image paths")
    predict.add_argument("--out", required=True, metavar="DIR",
                         help="output folder, new or empty")
    predict.add_argument("--threshold", type=fraction, metavar="P",
                         help="defect probability at or above which a pixel is a defect "
                              "(default the final model's cross-validated threshold)")
    predict.add_argument("--overwrite", action="store_true",
                         help="replace the output folder if it is not empty")
    predict.add_argument("--skip-unreadable", action="store_true",
                         help="skip unreadable image files with a warning")
    add_device(predict)
    add_quiet(predict)

