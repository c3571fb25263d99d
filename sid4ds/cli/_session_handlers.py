"""What each session command does once its arguments are parsed: one ``run_*`` function per
command, which calls a :class:`sid4ds.session.LabelingSession` method and prints what it
returned. The parser of :mod:`sid4ds.cli.session` hands each command to its function."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def images_argument(images: str) -> Any:
    """``--images``: a folder, an .npy file (memory-mapped) or a .txt list of image paths."""
    path = Path(images)
    if path.suffix.lower() == ".npy" and path.is_file():
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if path.suffix.lower() == ".txt" and path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [str(path.parent / line) for line in lines if line and not line.startswith("#")]
    return images


def run_init(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession
    from sid4ds.session.configure import check_ranking

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
        args.session, images_argument(args.images), args.masks, image_size=args.image_size,
        tile=args.tile, mode="RGB" if args.rgb else None, mask_suffix=args.mask_suffix,
        skip_unreadable=args.skip_unreadable, defect_ratio=args.defect_ratio, seed=args.seed,
        scorer_params=scorer, segmenter_params=segmenter, guided_epochs=args.epochs_g,
        final_params=dict(args.final or ()), **check_ranking(dict(args.ranking or ())))
    status = session.status()
    channels, height, width = status["image_shape"]
    print(f"created session {session.path}: {status['n_images']} images of {height}x{width} "
          f"({channels} channel{'s' if channels > 1 else ''}), {status['labeled']} labelled "
          f"({status['defective']} defective)")
    print(f"next: sid4ds query {session.path}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    summary = session.add_images(images_argument(args.images), args.masks,
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


def run_prune(args: argparse.Namespace) -> int:
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


def run_query(args: argparse.Namespace) -> int:
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


def run_import(args: argparse.Namespace) -> int:
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
    progress = session.progress()
    print(f"labelled {progress['labeled']} of {progress['n_images']} "
          f"({progress['defective']} defective); next: {progress['next']}")
    return 0


def run_status(args: argparse.Namespace) -> int:
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
        print(f"             {describe_final_estimate(final, args.session)}")
    print(f"next: {status['next']}")
    return 0


def run_configure(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    session = LabelingSession.open(args.session)
    asked = (args.segmenter, args.final, args.ranking)
    settings = session.configure(segmenter=dict(args.segmenter or ()),
                                 final=dict(args.final or ()),
                                 ranking=dict(args.ranking or ()))
    for part, values in settings["changed"].items():
        for key, value in values.items():
            print(f"changed {part} {key} = {value!r}")
    if not settings["changed"]:
        print("nothing changed" if any(asked) else "the settings now:")
    budget = {key: settings["segmenter"][key] for key in ("max_steps", "max_epochs", "lr")}
    print(f"S of the rounds: {', '.join(f'{key}={value!r}' for key, value in budget.items())}")
    print("ranking: " + ", ".join(f"{key}={value!r}"
                                  for key, value in settings["ranking"].items()))
    print("final model: " + ", ".join(f"{key}={value!r}"
                                      for key, value in settings["final"].items()))
    return 0


def describe_final_estimate(summary: dict[str, Any], session: str) -> str:
    """The final model's estimate in words (``sid4ds train`` and ``sid4ds status``): on the
    labelled images, and weighted to the pool by the newest random audit when there is one."""
    from sid4ds.estimators.final_model import describe_estimate

    ratio = summary["defect_ratio"]
    mix = "" if ratio is None else f" (images {ratio:g} defective, the session's defect ratio)"
    text = (describe_estimate(summary["estimate"], mix)
            + f" (mean ± std over {summary['n_folds']} folds of the labelled images)")
    if summary.get("weighted_estimate") is None:
        return text + ("; the labelled images are those the ranking picked, the clearest "
                       "defects first: expect less on new images, or label a random audit "
                       f"(`sid4ds query {session} --audit N`) for an estimate of the pool")
    return (text + f"; weighted to the pool by the random audit of round "
            f"{summary['audit_round']}: "
            + describe_estimate(summary["weighted_estimate"], mix))


def run_train(args: argparse.Namespace) -> int:
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
    print(f"expected: {describe_final_estimate(summary, str(session.path))}")
    print(f"next: `sid4ds predict {session.path} --images DIR --out DIR`, or "
          f"`sid4ds export {session.path} --format model`; `sid4ds report {session.path}` "
          f"shows the cross-validated curves")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    out = LabelingSession.open(args.session).predict(
        images_argument(args.images), args.out, threshold=args.threshold,
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


def run_report(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    index = LabelingSession.open(args.session).report(
        args.out, n_fake_normal_samples=args.samples, device=args.device)
    print(f"wrote {index}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from sid4ds.session import LabelingSession

    out = LabelingSession.open(args.session).export(
        args.out, args.format, image_url_prefix=args.image_url_prefix, device=args.device,
        overwrite=args.overwrite)
    print(f"wrote {args.format} export to {out}")
    return 0
