"""The labelling-session commands: ``init``, ``add``, ``query``, ``prune``, ``import``,
``status``, ``report``, ``export``, ``configure``, ``train`` and ``predict``; a thin layer over
:class:`sid4ds.session.LabelingSession`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sid4ds.cli._session_handlers import (
    run_add,
    run_configure,
    run_export,
    run_import,
    run_init,
    run_predict,
    run_prune,
    run_query,
    run_report,
    run_status,
    run_train,
)
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
              "(scratch or in_loop, default scratch), paste_defects (train on copies of the "
              "labelled defects pasted onto normal images, default True), max_steps (the "
              "final model's budget in optimiser steps, default 1600), precision (auto: "
              "bf16 on a GPU that supports it or a CPU with AMX, else fp32; default auto), "
              "parallel_fits "
              "(fits trained at once in worker processes, auto: as many as torch's "
              "threads on a CPU for fits in bf16 of 200 steps or more, else one, 1: one "
              "after another; default auto), "
              "and any other "
              "parameter of SegmentationLearner that differs from S's, e.g. lr=0.001")

#: Help of the options that set the ranking rule of the iterative rounds.
RANKING_HELP = ("the rule of the iterative rounds: fusion (rank: E_sdr fused with S's "
                "probability, the default; none: E_sdr alone, the paper's rule and that of "
                "sessions made before the fusion) and region (E_sdr's regions: adaptive, "
                "the default, or threshold)")


def add_target_recall(parser: argparse.ArgumentParser) -> None:
    """``--target-recall R``: the share of defective images the user wants found."""
    parser.add_argument("--target-recall", type=open_share, default=0.95, metavar="R",
                        help="the share of defective images to find, in (0, 1): says how "
                             "many audit labels the bound needs for it (default 0.95)")


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

    init = add("init", run_init, "create a labelling session from a folder of images",
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
    models.add_argument("--ranking", nargs="+", type=parameter, metavar="KEY=VALUE",
                        help=RANKING_HELP)
    models.add_argument("--final", nargs="+", type=parameter, metavar="KEY=VALUE",
                        help=FINAL_HELP)

    adding = add("add", run_add, "add images to the pool of a session",
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

    query = add("query", run_query, "train, rank the unlabelled images and list those to label",
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

    pruner = add("prune", run_prune, "list (and move out) the images the ranking puts at "
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

    importer = add("import", run_import, "take the labeller's masks back",
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

    status = add("status", run_status, "show rounds and labelled / waiting / fake-normal / "
                                    "unlabelled counts",
                 "Show the session's rounds, the labelled, waiting, fake-normal and unlabelled "
                 "counts, the defects found per round, the share of defective images found "
                 "with a 95%% confidence bound from the newest random audit (`query --audit "
                 "N`) and what it assumes, whether a command is running, and what to do "
                 "next. Reads only.")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    add_target_recall(status)

    report = add("report", run_report, "write an HTML report with plots",
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

    export = add("export", run_export, "export the masks (PNG folders, COCO, Label Studio) or "
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

    configure = add("configure", run_configure, "change the settings of S, of the ranking and "
                                             "of the final model",
                    "Change settings of an existing session: the budget and training of the "
                    "segmentation learner S of the rounds (used by the next query; once S is "
                    "trained only the settings of how it trains may change: max_steps, "
                    "max_epochs, batch_size, lr, lr_schedule, warmup, defect_share, loss, "
                    "bce_weight, dice_weight, augment, best_window, ...), the rule the "
                    "iterative rounds rank by, and the settings of "
                    "the final model of `sid4ds train`. Every value is checked before any is "
                    "written; the change is recorded in the manifest. Without options: print "
                    "the settings.")
    configure.add_argument("--segmenter", nargs="+", type=parameter, metavar="KEY=VALUE",
                           help="parameters of S, e.g. max_steps=500 lr=0.001")
    configure.add_argument("--ranking", nargs="+", type=parameter, metavar="KEY=VALUE",
                           help=RANKING_HELP)
    configure.add_argument("--final", nargs="+", type=parameter, metavar="KEY=VALUE",
                           help=FINAL_HELP)

    train = add("train", run_train, "train the final model on every label: the model to take "
                                 "home",
                "Train the final model: a fresh segmentation learner on every labelled image "
                "(and, by default, the last round's fake normals), its threshold and training "
                "length chosen by k-fold cross-validation over the labelled images (grouped "
                "by source file), and print the estimate of how well it does on new images "
                "(defect IoU, defective images found, normal images flagged, mean ± std over "
                "the folds): on the labelled images, and, once a random audit (`query "
                "--audit N`) is labelled, weighted by it to the whole pool. predict and "
                "export --format model use it; the S of the rounds is not changed. Its "
                "settings: `sid4ds configure SESSION --final KEY=VALUE`.")
    add_device(train)
    add_quiet(train)

    predict = add("predict", run_predict, "the final model's masks and defect scores for new "
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

