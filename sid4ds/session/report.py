"""``sid4ds report``: an HTML page with plots about the session.

The page (``index.html``) and its PNG plots are written into one folder; the page links the
plots by relative paths and needs nothing else (no server, no network), so it opens from
disk in any browser. The plots are drawn with matplotlib (the Agg canvas, no ``pyplot``
state): the last round's score distribution with the K and V cuts, the defects found
against the labels spent, the images the last round asked for with S's probability maps
(or M's reconstruction error before S exists), S's training curve, a sample of the fake
normals to spot-check, and where the pool's images came from (one row per batch). Only the
images shown are read from the pool.

This module writes the page section by section; the plots are drawn in
``_report_plots``, the HTML pieces made in ``_report_html`` and what the page shows
beyond the manifest and the status gathered in ``_report_data`` (private modules of this
package).
"""

from __future__ import annotations

import io
import math
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_int
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.session._report_data import error_maps, msmr_of, round_scores, score_ties
from sid4ds.session._report_html import (
    batches_html,
    code,
    esc,
    figure_html,
    page_html,
    percent,
    prose,
    recall_html,
    ties_text,
)
from sid4ds.session._report_plots import (
    plot_defects,
    plot_fake_normals,
    plot_final_curves,
    plot_scores,
    plot_top_row,
    plot_training,
)
from sid4ds.session.configure import ranking_settings
from sid4ds.session.deliver import cross_validation, new_output_folder
from sid4ds.session.errors import SessionError
from sid4ds.session.status import session_status
from sid4ds.session.storage import replace_folder, write_bytes, write_text
from sid4ds.session.store import SessionStore

__all__ = ["write_session_report"]

#: Images of the last round shown with their maps (the first, best-ranked ones).
MAX_TOP_IMAGES = 16


# ---------------------------------------------------------------------- the command
def write_session_report(
    store: SessionStore,
    out: str | os.PathLike[str] | None = None,
    *,
    n_fake_normal_samples: int = 16,
    device: Any = "auto",
) -> Path:
    """Write the HTML report (see :meth:`LabelingSession.report`)."""
    n_fake_normal_samples = check_int(n_fake_normal_samples, "n_fake_normal_samples",
                                      minimum=0)
    with store.locked("report") as manifest:
        if not manifest["rounds"]:
            raise SessionError(f"session {store.path} has no round yet; run `sid4ds query "
                               f"{store.path}` first")
        target = new_output_folder(out if out is not None else store.path / "report",
                                   overwrite=True, keep=(("the session", store.path),))
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            _write_report(store, staging, manifest, n_fake_normal_samples, device)
            replace_folder(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target / "index.html"


def _save_figure(figure: Any, file: Path) -> None:
    """Render ``figure`` as a PNG into ``file`` (every plot of the report passes here)."""
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    write_bytes(file, buffer.getvalue())


def _write_report(store: SessionStore, out: Path, manifest: dict[str, Any], n_samples: int,
                  device: Any) -> None:
    """Write the page and its plots into the folder ``out``."""
    record = manifest["rounds"][-1]
    settings = manifest["settings"]
    status = session_status(store, own_lock=True)
    session_arg = shlex.quote(str(store.path))
    sections = [_rounds_section(status, float(settings["defect_ratio"]), out),
                batches_html(status["batches"])]

    # (1) score distribution
    scores, score_names, complete = round_scores(store, record)
    ties = score_ties(scores, record, ranking_settings(settings)["region"])
    msmr = msmr_of(store, record, device) if (ties["dominant"] or ties["n_tied"]) else {}
    sections.append(_scores_section(scores, score_names, complete, record, ties, msmr, out))

    segmenter = (store.model("S", device, round_index=record["models"]["S"])
                 if record["models"].get("S") is not None else None)
    sections.append(_asked_section(store, record, manifest["labels"], segmenter, device, out))
    sections += _training_section(segmenter, record, out)
    sections.append(_fake_normals_section(store, record, manifest, n_samples, session_arg,
                                          (score_names, ties, msmr), out))
    sections.append(_final_section(store, out, session_arg))
    write_text(out / "index.html", page_html(store.path, status, sections))


# ---------------------------------------------------------------------- the sections
def _rounds_section(status: dict[str, Any], ratio: float, out: Path) -> str:
    """The table of the rounds, the defects found against the labels spent (2) and the
    share of defective images found."""
    per_round = status["rounds"]
    # labels spent per round: its ranked batch and its random audit
    spent = [{**entry, "labeled": entry["labeled"] + entry["audit_labeled"],
              "defective": entry["defective"] + entry["audit_defective"]}
             for entry in per_round]
    in_rounds = sum(entry["labeled"] for entry in spent)
    start = (status["labeled"] - in_rounds,
             status["defective"] - sum(entry["defective"] for entry in spent))
    round_rows = "".join(
        f"<tr><td>{entry['round']}</td><td>{esc(entry['stage'])}</td>"
        f"<td>{prose(entry['reason'])}</td><td>{entry['asked']}</td>"
        f"<td>{entry['labeled']}</td><td>{entry['defective']}</td>"
        f"<td>{percent(entry['defect_rate'])}</td><td>{entry['fake_normals']}</td></tr>"
        for entry in per_round)
    _save_figure(plot_defects(spent, start, ratio, status["n_waiting"]),
                 out / "defects_per_round.png")
    start_text = (f" The line starts at the {start[0]} labels ({start[1]} defective) given "
                  f"outside the rounds (at creation or with {code('--any')})."
                  if start[0] else "")
    defects_caption = (
        "Defects found against labels spent: cumulative defective images labelled against "
        "cumulative images labelled (a round's audit images included), one point per "
        "answered round. Dashed: what labelling "
        f"images at random would find (drawn on to include the {status['n_waiting']} images "
        f"waiting for masks), using the expected defect ratio of the session's "
        f"settings ({ratio:g}) × labels (not the defective share of the labelled images, "
        f"which the ranking inflates).{start_text}")
    return ("<h2>Rounds</h2>\n<table><tr><th>round</th><th>stage</th><th>reason</th>"
            "<th>asked</th><th>labelled</th><th>defective</th><th>defect rate</th>"
            "<th>fake normals</th></tr>\n"
            f"{round_rows}</table>\n"
            + figure_html("defects_per_round.png", "Defects found against labels spent",
                          defects_caption)
            + recall_html(status["recall"]))


def _scores_section(scores: np.ndarray, score_names: list[str], complete: bool,
                    record: dict[str, Any], ties: dict[str, Any], msmr: dict[str, float],
                    out: Path) -> str:
    """(1) The round's score histogram with the K and V cuts, and what its ties mean."""
    _save_figure(plot_scores(scores, score_names, record, complete, ties, msmr),
                 out / "score_histogram.png")
    selected, fake = record["selected"], record["fake_normals"]
    source_text = (f"all {len(scores)} images the round ranked ({code('scores.csv')} of "
                   f"{esc(record['folder'])})" if complete else
                   f"{code('scores.csv')} of {esc(record['folder'])} is unreadable: only "
                   f"the scores of the asked images and fake normals from the manifest")
    scores_caption = (
        f"Round {record['round']} score distribution ({esc(record['score'])}) of "
        f"{source_text}. Red dashed line: the K cut, the lowest score asked for (the "
        f"{len(selected)} images at or above it are to be labelled). Blue dotted line: the V "
        f"cut, the highest fake-normal score (the {len(fake)} images at or below it are this "
        f"round's fake normals, trained on as normal next round)." + ties_text(ties, msmr))
    return (f"<h2>Round {record['round']}: score distribution</h2>\n"
            + figure_html("score_histogram.png", f"Round {record['round']} score distribution",
                          scores_caption))


def _asked_section(store: SessionStore, record: dict[str, Any], labels: dict[str, Any],
                   segmenter: SegmentationLearner | None, device: Any, out: Path) -> str:
    """(3) The images the round asked for (the first ones; only those are read), each with
    S's probability map (M's error map before S) and the outlines."""
    pool = store.pool()
    selected = record["selected"]
    shown = selected[:MAX_TOP_IMAGES]
    images = pool.images[[pool.index[name] for name in shown]] if shown else None
    threshold = float(getattr(segmenter, "threshold", 0.5))
    scale = 1.0
    if images is None:
        maps = None
    elif segmenter is not None:
        maps = segmenter.predict_proba(images)
    else:
        maps = error_maps(store, record, images, device)
        if maps is not None and maps.size:
            scale = float(np.percentile(maps, 99))
    top_rows = []
    for position, (name, image) in enumerate(zip(shown, [] if images is None else images,
                                                 strict=True)):
        label = labels.get(name)
        label_text = ("not labelled yet" if label is None else
                      "labelled defective" if label["defective"] else "labelled normal")
        file = f"top/{position + 1:03d}.png"
        _save_figure(plot_top_row(
            image, None if maps is None else maps[position], segmenter is not None,
            scale, threshold, None if label is None else store.load_mask(name),
            f"#{position + 1} {name}\nscore {record['scores'][position]:.4g}", label_text,
            record["stage"] == "cold_start"),
            out / file)
        top_rows.append(
            f"<tr><td>{position + 1}</td><td>{esc(name)}</td>"
            f"<td>{record['scores'][position]:.5g}</td><td>{esc(label_text)}</td>"
            f'<td><img src="{file}" alt="{esc(f"#{position + 1} {name}: image, map, outlines")}">'
            f"</td></tr>")
    if segmenter is not None:
        panels_text = (f"the image; S's defect probability (colour bar; the white line on it "
                       f"is S's threshold {threshold:g}); the image with S's predicted region "
                       f"(probability ≥ {threshold:g}) outlined in red and, once labelled, "
                       f"the human mask outlined in light blue.")
    else:
        panels_text = ("no segmentation learner S yet (cold start: S is trained once a "
                       "defective and a normal image are labelled), so the middle panel is "
                       "M's block-wise masked-reconstruction error instead (the colour scale "
                       "is shared by all rows, up to the 99th percentile); right: the image "
                       "with the human mask outlined in light blue once labelled.")
    more = (f" The first {len(shown)} of {len(selected)} are shown." if len(shown) <
            len(selected) else "")
    return (f"<h2>Round {record['round']}: images to label</h2>\n"
            f"<p>Each row: {esc(panels_text)}{more}</p>\n<table><tr><th>rank</th><th>name</th>"
            f"<th>score</th><th>label</th><th>panels</th></tr>\n{''.join(top_rows)}</table>")


def _training_section(segmenter: SegmentationLearner | None, record: dict[str, Any],
                      out: Path) -> list[str]:
    """(4) S's training curve: one section, or none when S has no history."""
    history = list(getattr(segmenter, "history_", None) or [])
    if segmenter is not None and history:
        _save_figure(plot_training(history, getattr(segmenter, "best_epoch_", None),
                                   record["models"]["S"]), out / "training_curve.png")
        training_caption = (
            f"Training curve of the S that ranked round {record['round']}"
            + ("" if record["models"]["S"] == record["round"] else
               f" (trained for round {record['models']['S']})")
            + ": the loss (mean over each epoch, left axis) and the learning rate (right "
            "axis) against the training step, one point per epoch of its history (which "
            "also holds the earlier rounds' epochs when S was trained further from its "
            "previous weights).")
        return ["<h2>Segmentation learner S: training curve</h2>\n"
                + figure_html("training_curve.png", "S training loss and learning rate",
                              training_caption)]
    if segmenter is None:
        return ["<h2>Segmentation learner S: training curve</h2>\n<p>No segmentation "
                "learner S yet (cold start): no training curve.</p>"]
    return []


def _fake_normals_section(store: SessionStore, record: dict[str, Any],
                          manifest: dict[str, Any], n_samples: int, session_arg: str,
                          ranking: tuple[list[str], dict[str, Any], dict[str, float]],
                          out: Path) -> str:
    """(5) A random sample of the round's unlabelled fake normals (drawn with the session's
    seed and the round), with how to label one that shows a defect; ``ranking`` is the
    round's ranked names, their ties and the cold-start E_msmr by name."""
    score_names, ties, msmr = ranking
    labels = manifest["labels"]
    fake = record["fake_normals"]
    waiting_fake = [name for name in fake if name not in labels]
    fake_score = dict(zip(fake, record["fake_normal_scores"], strict=False))
    rng = make_rng((manifest["settings"]["seed"], record["round"]))
    sample = sorted(rng.choice(len(waiting_fake), size=min(n_samples, len(waiting_fake)),
                               replace=False).tolist()) if waiting_fake else []
    sample_names = [waiting_fake[index] for index in sample]
    command = f"sid4ds import {session_arg} --masks DIR --any"
    how = (f"If you see a defect in one of them, draw its mask (0 = normal, 255 = defect) "
           f"into a folder DIR, named like the image, and run {code(command)}: "
           f"{code('--any')} accepts masks for any pool image, and the mask replaces the "
           f"all-normal mask S would be trained with in the next round. If many are "
           f"defective, ask for fewer fake normals: "
           f"{code(f'sid4ds query {session_arg} --normals V')}.")
    if sample_names:
        pool = store.pool()
        fake_images = pool.images[[pool.index[name] for name in sample_names]]
        extra, what, tie_note = None, "name, score", ""
        if ties["dominant"]:
            position = {name: index for index, name in enumerate(score_names)}
            extra = []
            for name in sample_names:
                row = position.get(name)
                parts = []
                if row is not None and ties["fallback"][row]:
                    parts.append(f"G {ties['errors'][row]:.2g}")
                if name in msmr:
                    parts.append(f"M {msmr[name]:.2g}")
                extra.append(", ".join(parts) or "–")
            what = ("name, score; G: G's error in the fallback region; M: cold-start "
                    "E_msmr, the tie-break")
            tie_note = (" Their scores tie or sit in the fallback band (above), so the "
                        "sample's titles also show what the ranking fell back on: G, G's "
                        "error inside the fallback region (the order within the band), and "
                        "M, the cold-start E_msmr (the order among equal scores).")
        _save_figure(plot_fake_normals(fake_images, sample_names,
                                       [fake_score.get(name, math.nan) for name in sample_names],
                                       record["round"], len(waiting_fake), extra, what),
                     out / "fake_normal_sample.png")
        fake_html = figure_html(
            "fake_normal_sample.png", f"Round {record['round']} fake normal sample",
            f"A random sample of {len(sample_names)} of the {len(waiting_fake)} unlabelled "
            f"fake normals of round {record['round']} (the images scored lowest, which S is "
            f"taught are normal): {esc(', '.join(sample_names))}.{esc(tie_note)} {how}")
    else:
        fake_html = (f"<p>No fake normal to show (round {record['round']} has "
                     f"{len(waiting_fake)} unlabelled, {n_samples} asked for).</p>")
    return f"<h2>Round {record['round']}: fake normals to spot-check</h2>\n{fake_html}"


def _final_section(store: SessionStore, out: Path, session_arg: str) -> str:
    """(6) The final model: its estimate and cross-validated curves, or how to make it."""
    entry = store.manifest["models"].get("F")
    cv = cross_validation(store)
    if entry is None or cv is None:
        return ("<h2>The final model</h2>\n<p>No final model yet: "
                + prose(f"`sid4ds train {session_arg}` trains the model to take home, with "
                        f"its threshold and training length chosen by cross-validation "
                        f"over the labelled images, and estimates how well it does on new "
                        f"images.") + "</p>")
    estimates = [cv.estimate()] + ([cv.estimate(weighted=True)] if cv.weighted else [])

    def cells(key: str, as_percent: bool) -> str:
        texts = []
        for estimate in estimates:
            value = estimate[key]
            texts.append("–" if value["mean"] != value["mean"] else
                         f"{value['mean']:.0%} ± {value['std']:.0%}" if as_percent
                         else f"{value['mean']:.3f} ± {value['std']:.3f}")
        return "".join(f"<td>{text}</td>" for text in texts)

    stale = store.labels_not_seen("F")
    mix = ("as labelled" if cv.defect_ratio is None else
           f"as if {cv.defect_ratio:g} of new images were defective (the session's defect "
           f"ratio): false alarms on normal images weigh as much as they would there")
    _save_figure(plot_final_curves(cv), out / "final_model.png")
    caption = (
        f"Cross-validated scores of the final model, mean over {cv.n_folds} folds (band: ± "
        f"one std over the folds). Left: against the threshold, at the chosen training "
        f"length; right: against the training length (checkpoints of one schedule), at the "
        f"chosen threshold. Dotted: the choice, the best mean IoU.")
    span = f' colspan="{len(estimates)}"' if len(estimates) > 1 else ""
    audit_round = entry.get("audit_round")
    header = ("<tr><th></th><th>on the labelled images</th>"
              + (f"<th>on the pool, weighted by the audit of round {audit_round}</th>"
                 if cv.weighted else "") + "</tr>")
    rows = header + "".join(f"<tr><td>{name}</td>{value}</tr>" for name, value in (
        ("defect IoU", cells("iou", False)),
        ("defective images found", cells("detected", True)),
        ("normal images flagged", cells("false_alarms", True)),
        ("threshold", f"<td{span}>{cv.threshold:g}</td>"),
        ("training steps", f"<td{span}>{cv.n_steps}</td>"),
        ("trained on", f"<td{span}>{entry.get('n_training')} images "
                       f"({entry.get('n_fake_normals')} fake normals)</td>")))
    if cv.weighted:
        representative = (
            f"The labelled images are those the ranking picked, the clearest defects first; "
            f"the second column weighs them as the random audit of round {audit_round} "
            f"says the pool is made: each image labelled before that audit counts once, each "
            f"audit image for the images it was drawn from, later ranked images not at all. "
            f"It is the estimate for new images like the pool's (its spread is wider: it "
            f"rests on the audit's few images)")
    else:
        representative = (
            "The labelled images are those the ranking picked, the clearest defects first, "
            "not a random sample of the line: expect less on new images (on the magnetic "
            "tile benchmark the estimate ran 0.10 IoU and 17 points of found defects "
            "high). A random audit, "
            + f"`sid4ds query {session_arg} --audit N`" + ", once labelled, gives the "
            "estimate weighted to the pool in a second column")
    return (
        "<h2>The final model</h2>\n<p>Trained by "
        + code(f"sid4ds train {session_arg}") + f" for round {entry['round']}"
        + (f"; <b>{stale} labels came after it</b>: train it again to use them" if stale
           else "")
        + ". Expected on new images (mean ± std over the folds of a "
        f"{cv.n_folds}-fold cross-validation over the labelled images; the IoU is pooled "
        f"over pixels {esc(mix)}):</p>\n<table>{rows}</table>\n"
        "<p>Each fold's model was trained on the other folds, so the estimate is of a "
        "model trained on fewer labels. " + prose(representative) + ". And on a few "
        "hundred images the score "
        "moves with which images it is checked on, more than the spread over the folds "
        "shows (on textured benchmark surfaces the held-out IoU landed up to 0.3 from the "
        "estimate, and the fold models scored up to 0.36 apart on the same new images). "
        "Take it as a guide, and check the model on a few new images with "
        + code(f"sid4ds predict {session_arg} --images DIR --out DIR") + ".</p>\n"
        + figure_html("final_model.png", "Final model: cross-validated scores", caption))
