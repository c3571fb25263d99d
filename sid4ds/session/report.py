"""``sid4ds report``: an HTML page with plots about the session.

The page (``index.html``) and its PNG plots are written into one folder; the page links the
plots by relative paths and needs nothing else (no server, no network), so it opens from
disk in any browser. The plots are drawn with matplotlib (the Agg canvas, no ``pyplot``
state): the last round's score distribution with the K and V cuts, the defects found
against the labels spent, the images the last round asked for with S's probability maps
(or M's reconstruction error before S exists), S's training curve, a sample of the fake
normals to spot-check, and where the pool's images came from (one row per batch). Only the
images shown are read from the pool.
"""

from __future__ import annotations

import html
import io
import math
import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_int
from sid4ds.estimators.final_model import CrossValidation
from sid4ds.estimators.reconstruction import block_masks
from sid4ds.ranking.score_cache import model_fingerprint
from sid4ds.session.deliver import cross_validation, new_output_folder
from sid4ds.session.errors import SessionError
from sid4ds.session.query import round_ranking
from sid4ds.session.status import session_status
from sid4ds.session.storage import replace_folder, write_bytes, write_text
from sid4ds.session.store import SessionStore

__all__ = ["write_session_report"]

#: Images of the last round shown with their maps (the first, best-ranked ones).
MAX_TOP_IMAGES = 16
#: Resolution of the PNG plots.
DPI = 100
_S_COLOUR = "#e41a1c"  # S's predicted region
_HUMAN_COLOUR = "#00c8ff"  # the human's mask
_K_COLOUR = "#d62728"
_V_COLOUR = "#1f5fbf"


# ---------------------------------------------------------------------- HTML helpers
def _esc(text: Any) -> str:
    """HTML-escaped text; backticks too, so that the page holds none literally."""
    return html.escape(str(text), quote=True).replace("`", "&#96;")


def _code(command: str) -> str:
    """A command as inline code."""
    return f"<code>{_esc(command)}</code>"


def _prose(text: Any) -> str:
    """Escaped text whose ```cmd``` spans become ``<code>cmd</code>``."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: the rest is plain text
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(_code(part) if position % 2 else _esc(part)
                   for position, part in enumerate(parts))


def _figure_html(source: str, alt: str, caption: str) -> str:
    """A plot with its alt text and (already HTML) caption."""
    return (f'<figure><img src="{_esc(source)}" alt="{_esc(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


# ---------------------------------------------------------------------- matplotlib
def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot state)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise SessionError("the report draws its plots with matplotlib, which is not "
                           "installed: `pip install matplotlib`") from None
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save_figure(figure: Any, file: Path) -> None:
    """Render ``figure`` as a PNG into ``file`` (every plot of the report passes here)."""
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    write_bytes(file, buffer.getvalue())


def _line_handle(colour: str, label: str, style: str = "-") -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, linestyle=style, linewidth=2, label=label)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _show_image(axes: Any, image: np.ndarray) -> None:
    """(C, H, W) float image in [0, 1]: RGB for 3 channels, else grey (channel mean)."""
    pixels = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if pixels.shape[0] == 3:
        axes.imshow(np.moveaxis(pixels, 0, -1), interpolation="nearest")
    else:
        axes.imshow(pixels.mean(axis=0), cmap="gray", vmin=0.0, vmax=1.0,
                    interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])


def _outline(axes: Any, values: np.ndarray, level: float, colour: str) -> bool:
    """Outline the pixels with ``values >= level`` on an image axes, along pixel edges;
    False when no pixel reaches ``level``."""
    inside = np.asarray(values) >= level
    if not inside.any():
        return False
    height, width = inside.shape
    # contours run between the centres of cells: on cells ``factor`` times finer than the
    # pixels they follow the pixels' edges; a border of 0 closes regions at the image edge
    factor = max(1, min(8, 1024 // max(height, width)))
    fine = np.pad(inside.repeat(factor, axis=0).repeat(factor, axis=1).astype(np.float32), 1)
    rows = (np.arange(fine.shape[0]) - 0.5) / factor - 0.5
    columns = (np.arange(fine.shape[1]) - 0.5) / factor - 0.5
    axes.contour(columns, rows, fine, levels=[0.5], colors=[colour], linewidths=1.6)
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    return True


# ---------------------------------------------------------------------- data
def _round_scores(store: SessionStore, record: dict[str, Any]) -> tuple[np.ndarray, list[str],
                                                                         bool]:
    """Scores and names of the round's ranking; False when scores.csv was unreadable and
    only the asked and fake-normal scores of the manifest are given."""
    try:
        rows = round_ranking(store, record)
        scores = np.array([row["score"] for row in rows], dtype=np.float64)
        return scores, [row["name"] for row in rows], True
    except SessionError:
        names = [*record["selected"], *record["fake_normals"]]
        scores = np.array([*record["scores"], *record["fake_normal_scores"]], dtype=np.float64)
        return scores, names, False


def _error_maps(store: SessionStore, record: dict[str, Any], images: np.ndarray,
                device: Any) -> np.ndarray | None:
    """M's block-wise masked-reconstruction error (n, H, W), as E_msmr sees it."""
    models = record["models"]
    if models.get("M") is None:
        return None
    scorer = store.model("M", device, round_index=models["M"])
    if scorer is None:
        return None
    height, width = images.shape[2:]
    maps = np.zeros((len(images), height, width), dtype=np.float64)
    for block in block_masks(height, width, scorer.n_blocks):
        squared = ((scorer.reconstruct(images, mask=block.astype(np.uint8)) - images) ** 2
                   ).mean(axis=1)
        maps[:, block] = squared[:, block]
    return maps


def _msmr_of(store: SessionStore, record: dict[str, Any], device: Any) -> dict[str, float]:
    """The cold-start E_msmr, the ranking's first tie-break, of every pool image M scored,
    by name ({} when M or its scores are gone)."""
    if record["models"].get("M") is None:
        return {}
    scorer = store.model("M", device, round_index=record["models"]["M"])
    if scorer is None:
        return {}
    pool = store.pool()
    values = store.score_cache().lookup("E_msmr", model_fingerprint(scorer), pool.keys)
    return {name: float(value) for name, value in zip(pool.names, values, strict=True)
            if np.isfinite(value)}


def _ties(scores: np.ndarray, record: dict[str, Any], region: str) -> dict[str, Any]:
    """What the ranking could not tell apart by its score.

    ``fallback``: in an E_sdr round with adaptive regions, the images S marks nowhere
    (scores in [-1, 0), :func:`sid4ds.ranking.scores.rank_below_marked`), with ``errors``, the
    G error inside their fallback region that the band orders them by; ``tied``: images
    whose score equals another's (ordered by the tie-break); ``dominant``: either holds
    more than half of the ranked images, so the histogram of the scores alone says little.
    """
    finite = scores[np.isfinite(scores)]
    fallback = np.zeros(len(scores), bool)
    if record["score"] == "E_sdr" and region == "adaptive":
        fallback = np.isfinite(scores) & (scores < 0)
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    tied = counts[inverse.ravel()] > 1
    with np.errstate(divide="ignore"):
        errors = np.where(fallback, -1.0 / np.where(fallback, scores, -1.0) - 1.0, np.nan)
    n = max(1, len(finite))
    return {"fallback": fallback, "errors": errors, "tied": tied,
            "n_fallback": int(fallback.sum()), "n_tied": int(tied.sum()),
            "dominant": fallback.sum() > n / 2 or tied.sum() > n / 2}


# ---------------------------------------------------------------------- plots
def _score_groups(values: np.ndarray, names: Sequence[str], record: dict[str, Any]
                  ) -> list[tuple[str, list[float], str]]:
    """The values of the asked, fake-normal and other images, for a stacked histogram."""
    selected, fake = set(record["selected"]), set(record["fake_normals"])
    groups = [
        ("asked for labelling (top K)", [v for v, n in zip(values, names, strict=True)
                                         if n in selected], _K_COLOUR),
        ("fake normals (bottom V)", [v for v, n in zip(values, names, strict=True)
                                     if n in fake], _V_COLOUR),
        ("rest of the ranking", [v for v, n in zip(values, names, strict=True)
                                 if n not in selected and n not in fake], "#9a9a9a"),
    ]
    return [group for group in groups if group[1]]


def _plot_fallback(axes: Any, scores: np.ndarray, names: Sequence[str],
                   record: dict[str, Any], ties: dict[str, Any],
                   msmr: dict[str, float]) -> None:
    """The second panel of a histogram whose scores tie: what the ranking fell back on."""
    if ties["n_fallback"] > len(scores) / 2:
        inside = ties["fallback"]
        values = np.log10(np.maximum(ties["errors"][inside], 1e-12))
        label = "log10 of G's error inside the fallback region (the order within the band)"
        title = (f"Inside the fallback band: {int(inside.sum())} images S marks nowhere, "
                 f"ordered by G's error in their most probable pixels")
    else:
        inside = ties["tied"] & np.array([name in msmr for name in names], bool)
        values = np.array([msmr[name] for name, keep in zip(names, inside, strict=True)
                           if keep])
        label = "cold-start E_msmr (the tie-break)"
        title = f"{ties['n_tied']} images share their score: the order among them is E_msmr"
    kept = [name for name, keep in zip(names, inside, strict=True) if keep]
    groups = _score_groups(values, kept, record)
    if groups and len(values):
        low, high = float(values.min()), float(values.max())
        if high <= low:
            low, high = low - 0.5, high + 0.5
        axes.hist([group[1] for group in groups], bins=np.linspace(low, high, 31),
                  stacked=True, color=[group[2] for group in groups],
                  label=[group[0] for group in groups], alpha=0.75)
        axes.legend(loc="upper right", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no tie-break score is stored", ha="center", va="center")
    axes.set_title(title, fontsize=9)
    axes.set_xlabel(label)
    axes.set_ylabel("images")


def _plot_scores(scores: np.ndarray, names: Sequence[str], record: dict[str, Any],
                 complete: bool, ties: dict[str, Any] | None = None,
                 msmr: dict[str, float] | None = None) -> Any:
    """(1) The score histogram of the round's ranking with the K and V cuts; when the
    scores mostly tie, a second panel with what the ranking fell back on."""
    dominant = ties is not None and ties["dominant"]
    figure = _figure(8.0, 7.2 if dominant else 4.0)
    axes = figure.add_subplot(2, 1, 1) if dominant else figure.add_subplot()
    if dominant:
        _plot_fallback(figure.add_subplot(2, 1, 2), scores, names, record, ties, msmr or {})
    finite = np.isfinite(scores)
    scores, names = scores[finite], [name for name, ok in zip(names, finite, strict=True) if ok]
    groups = _score_groups(scores, names, record)
    low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, min(50, max(10, int(math.sqrt(len(scores))) * 2)) + 1)
    if groups:
        axes.hist([group[1] for group in groups], bins=edges, stacked=True,
                  color=[group[2] for group in groups], label=[group[0] for group in groups],
                  alpha=0.75)
    if record["scores"]:
        k_cut = min(record["scores"])
        axes.axvline(k_cut, color=_K_COLOUR, linestyle="--", linewidth=2,
                     label=f"K cut {k_cut:.4g}: lowest score asked for "
                           f"(K = {len(record['selected'])})")
    if record["fake_normal_scores"]:
        v_cut = max(record["fake_normal_scores"])
        axes.axvline(v_cut, color=_V_COLOUR, linestyle=":", linewidth=2,
                     label=f"V cut {v_cut:.4g}: highest fake-normal score "
                           f"(V = {len(record['fake_normals'])})")
    which = "all images ranked" if complete else "asked and fake normals only"
    axes.set_title(f"Round {record['round']} ({record['stage']}): {record['score']} scores, "
                   f"{len(scores)} images ({which})")
    axes.set_xlabel(f"{record['score']} score (higher: more likely defective)")
    axes.set_ylabel("images")
    axes.legend(loc="upper right", fontsize=8)
    return figure


def _plot_defects(per_round: Sequence[dict[str, Any]], start: tuple[int, int],
                  defect_ratio: float, n_waiting: int) -> Any:
    """(2) Cumulative defective images labelled against cumulative images labelled."""
    figure = _figure(8.0, 4.2)
    axes = figure.add_subplot()
    labeled, defective = [start[0]], [start[1]]
    tags = ["start" if start[0] else ""]
    for entry in per_round:
        if entry["labeled"]:
            labeled.append(labeled[-1] + entry["labeled"])
            defective.append(defective[-1] + entry["defective"])
            tags.append(f"r{entry['round']}")
    axes.plot(labeled, defective, marker="o", color=_K_COLOUR, linewidth=2,
              label="SID4DS rounds (defective images found)")
    for x, y, tag in zip(labeled, defective, tags, strict=True):
        if tag:
            axes.annotate(tag, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    end = max(labeled[-1] + n_waiting, start[0] + 1)  # on to the answers still to come
    axes.plot([start[0], end], [start[1], start[1] + defect_ratio * (end - start[0])],
              linestyle="--", color="#555555", linewidth=1.5,
              label=f"random sampling: expected defect ratio {defect_ratio:g} × labels")
    axes.set_title("Defects found against labels spent"
                   + ("" if len(labeled) > 1 else " (no round answered yet)"))
    axes.set_xlabel("images labelled (cumulative)")
    axes.set_ylabel("defective images labelled (cumulative)")
    axes.set_xlim(0, end * 1.05)
    axes.set_ylim(0, max(2.0, max(defective) * 1.2 + 0.5,
                         start[1] + defect_ratio * (end - start[0])))
    axes.xaxis.set_major_locator(_integer_ticks())
    axes.yaxis.set_major_locator(_integer_ticks())
    axes.legend(loc="best", fontsize=8)
    return figure


def _plot_top_row(image: np.ndarray, values: np.ndarray | None, probability: bool,
                  scale: float, threshold: float, mask: np.ndarray | None,
                  header: str, label_text: str, cold_start: bool) -> Any:
    """(3) One asked-for image: the image, S's probability map (or M's error map) and the
    image with S's region and the human's mask outlined."""
    figure = _figure(9.6, 3.2)
    panels = figure.subplots(1, 3)
    _show_image(panels[0], image)
    panels[0].set_title(header, fontsize=9)
    if values is None:
        panels[1].text(0.5, 0.5, "no model to map", ha="center", va="center")
        panels[1].set_axis_off()
        panels[1].set_title("no map", fontsize=9)
    else:
        shown = panels[1].imshow(values, cmap="magma" if probability else "inferno",
                                 vmin=0.0, vmax=1.0 if probability else max(scale, 1e-12),
                                 interpolation="nearest")
        colorbar = figure.colorbar(shown, ax=panels[1], fraction=0.046, pad=0.04)
        if probability:
            colorbar.set_label("defect probability (S)")
            colorbar.ax.axhline(threshold, color="white", linewidth=1.5)
            panels[1].set_title(f"S: defect probability, {float(values.min()):.2f} to "
                                f"{float(values.max()):.2f}\n(white on the bar: threshold "
                                f"{threshold:g})", fontsize=9)
        else:
            colorbar.set_label("squared reconstruction error")
            why = "no S yet: cold start" if cold_start else "S could not be loaded"
            panels[1].set_title(f"M: reconstruction error\n({why})", fontsize=9)
        panels[1].set_xticks([])
        panels[1].set_yticks([])
    _show_image(panels[2], image)
    handles = []
    if probability and values is not None:
        found = _outline(panels[2], values, threshold, _S_COLOUR)
        handles.append(_line_handle(_S_COLOUR, f"S: p ≥ {threshold:g}"
                                    + ("" if found else " (no pixel)")))
    if mask is not None:
        found = _outline(panels[2], mask, 0.5, _HUMAN_COLOUR)
        handles.append(_line_handle(_HUMAN_COLOUR, "human mask" + ("" if found else
                                                                    " (empty: normal)")))
    outlined = " and ".join(part for part, present in
                            (("S's region", probability and values is not None),
                             ("human mask", mask is not None)) if present)
    panels[2].set_title(f"outlined: {outlined or 'nothing yet'}\n({label_text})", fontsize=9)
    if handles:
        panels[2].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02),
                         fontsize=8, frameon=False, ncol=len(handles))
    return figure


def _plot_training(history: Sequence[dict[str, Any]], best_epoch: int | None,
                   round_index: int) -> Any:
    """(4) S's training loss against the step, the learning rate on a second axis."""
    figure = _figure(8.0, 3.8)
    axes = figure.add_subplot()
    steps = np.cumsum([int(entry["steps"]) for entry in history])
    loss = axes.plot(steps, [float(entry["loss"]) for entry in history], marker="o",
                     color=_K_COLOUR, label="loss (mean over the epoch)")
    rate_axes = axes.twinx()
    rate = rate_axes.plot(steps, [float(entry["lr"]) for entry in history], marker=".",
                          linestyle="--", color=_V_COLOUR, label="learning rate (end of epoch)")
    handles = [*loss, *rate]
    if best_epoch is not None and 1 <= best_epoch <= len(steps):
        handles.append(axes.axvline(steps[best_epoch - 1], color="#555555", linestyle=":",
                                    label=f"weights kept (epoch {best_epoch})"))
    axes.set_title(f"S (round {round_index}): training loss and learning rate")
    axes.set_xlabel("training step (end of each epoch)")
    axes.xaxis.set_major_locator(_integer_ticks())
    axes.set_ylabel("loss")
    rate_axes.set_ylabel("learning rate")
    # below the plot: inside, it would hide one of the two axes' lines
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    return figure


def _plot_fake_normals(images: np.ndarray, names: Sequence[str], scores: Sequence[float],
                       round_index: int, total: int,
                       extra: Sequence[str] | None = None, what: str = "score") -> Any:
    """(5) A grid of fake normals, each titled with its name, score and ``extra`` line."""
    columns = min(8, len(names))
    rows = -(-len(names) // columns)
    figure = _figure(max(1.45 * columns + 0.4, 6.0 if extra is not None else 0.0),
                     (1.8 if extra is not None else 1.65) * rows
                     + (0.8 if extra is not None else 0.5))
    for position, (image, name, score) in enumerate(zip(images, names, scores, strict=True)):
        axes = figure.add_subplot(rows, columns, position + 1)
        _show_image(axes, image)
        short = name if len(name) <= 16 else name[:7] + "…" + name[-8:]
        axes.set_title(f"{short}\n{score:.3g}"
                       + (f"\n{extra[position]}" if extra is not None else ""), fontsize=7)
    figure.suptitle(f"Round {round_index}: {len(names)} of {total} fake normals "
                    + ("\n" if extra is not None else "") + f"({what})", fontsize=10)
    return figure


def _batches_html(batches: Sequence[dict[str, Any]]) -> str:
    """The table of the pool's batches: where its images came from, and when."""
    rows = "".join(
        f"<tr><td>{entry['batch']}</td><td>{_esc(entry['command'])}</td>"
        f"<td>{_esc(entry['time'])}</td><td>{_esc(entry['source'])}</td>"
        f"<td>{entry['n_added']}</td><td>{sum(entry.get('n_skipped', {}).values())}</td>"
        f"<td>{entry['in_pool']}</td><td>{entry['labeled']}</td>"
        f"<td>{entry['defective']}</td></tr>" for entry in batches)
    return ("<h2>Where the images came from</h2>\n<p>One row per batch of images the pool "
            "received: the images of <code>sid4ds init</code>, then of each "
            "<code>sid4ds add</code>. Left out: images already in the pool (same content) or "
            "whose name it used. The last three columns are the batch's images now.</p>\n"
            "<table><tr><th>batch</th><th>command</th><th>when (UTC)</th><th>from</th>"
            "<th>added</th><th>left out</th><th>in the pool</th><th>labelled</th>"
            f"<th>defective</th></tr>\n{rows}</table>\n"
            + "".join(f"<p>Drift check: {_esc(entry['drift_words'])}</p>\n"
                      for entry in batches if entry.get("drift_words")))
def _ties_text(ties: dict[str, Any], msmr: dict[str, float]) -> str:
    """What the caption of the score histogram says about ties (HTML), or ""."""
    n = len(ties["tied"])
    parts = []
    if ties["n_fallback"]:
        parts.append(
            f" S marks no pixel in {ties['n_fallback']} of the {n} images: their E_sdr is "
            f"in the fallback band [−1, 0), ranked below every image S marks and ordered "
            f"among themselves by G's error inside their most probable pixels (the score is "
            f"−1/(1 + that error), so small errors pile up at −1).")
    if ties["n_tied"]:
        fell_back = ("their cold-start E_msmr, then their pixels' hash" if msmr else
                     "a hash of their pixels (no E_msmr is stored for them)")
        parts.append(f" {ties['n_tied']} images share their score with another: the ranking "
                     f"orders them by {fell_back}.")
    if ties["dominant"]:
        second = ("G's error inside the fallback region of the images in the band"
                  if ties["n_fallback"] > n / 2 else "the E_msmr of the tied images")
        parts.append(f" <b>The score alone tells most images apart poorly</b>: the lower "
                     f"panel shows what the ranking fell back on, {second}. A round like "
                     f"this ranks little better than its fallback; an S that marks defects "
                     f"(more labels, or a longer fit: `sid4ds configure`) helps.")
    return _prose("".join(parts)).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")


def _plot_final_curves(cv: CrossValidation) -> Any:
    """(6) The final model's cross-validated scores against the threshold and the steps."""
    figure = _figure(10.0, 4.0)
    panels = figure.subplots(1, 2)
    styles = (("iou", "defect IoU", _K_COLOUR), ("detected", "defective images found",
                                                  "#2ca02c"),
              ("false_alarms", "normal images flagged", _V_COLOUR))
    for axes, along, chosen, label in (
            (panels[0], "threshold", cv.threshold, "threshold"),
            (panels[1], "steps", cv.n_steps, "training steps (checkpoint)")):
        curve = cv.curve(along)
        for key, name, colour in styles:
            mean, std = curve[key], curve[f"{key}_std"]
            axes.plot(curve["x"], mean, marker="." if along == "threshold" else "o",
                      color=colour, label=f"{name} (mean over folds)")
            axes.fill_between(curve["x"], mean - std, mean + std, color=colour, alpha=0.15,
                              linewidth=0)
        axes.axvline(chosen, color="#555555", linestyle=":",
                     label=f"chosen: {chosen:g}")
        axes.set_xlabel(label)
        axes.set_ylabel("share / IoU")
        axes.set_ylim(-0.02, 1.02)
    panels[0].set_title(f"against the threshold, at {cv.n_steps} steps", fontsize=9)
    panels[1].set_title(f"against the training length, at threshold {cv.threshold:g}",
                        fontsize=9)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles[:3], labels[:3], loc="outside lower center", ncol=3, fontsize=8)
    panels[0].legend(handles[3:], labels[3:], loc="upper right", fontsize=8)
    panels[1].legend(*[part[3:] for part in panels[1].get_legend_handles_labels()],
                     loc="upper right", fontsize=8)
    return figure


def _final_section(store: SessionStore, out: Path, session_arg: str) -> str:
    """(6) The final model: its estimate and cross-validated curves, or how to make it."""
    entry = store.manifest["models"].get("F")
    cv = cross_validation(store)
    if entry is None or cv is None:
        return ("<h2>The final model</h2>\n<p>No final model yet: "
                + _prose(f"`sid4ds train {session_arg}` trains the model to take home, with "
                         f"its threshold and training length chosen by cross-validation "
                         f"over the labelled images, and estimates how well it does on new "
                         f"images.") + "</p>")
    estimate = cv.estimate()

    def cell(key: str, percent: bool) -> str:
        value = estimate[key]
        if value["mean"] != value["mean"]:
            return "–"
        return (f"{value['mean']:.0%} ± {value['std']:.0%}" if percent
                else f"{value['mean']:.3f} ± {value['std']:.3f}")

    stale = store.labels_not_seen("F")
    mix = ("as labelled" if cv.defect_ratio is None else
           f"as if {cv.defect_ratio:g} of new images were defective (the session's defect "
           f"ratio): false alarms on normal images weigh as much as they would there")
    _save_figure(_plot_final_curves(cv), out / "final_model.png")
    caption = (
        f"Cross-validated scores of the final model, mean over {cv.n_folds} folds (band: ± "
        f"one std over the folds). Left: against the threshold, at the chosen training "
        f"length; right: against the training length (checkpoints of one schedule), at the "
        f"chosen threshold. Dotted: the choice, the best mean IoU.")
    rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in (
        ("defect IoU", cell("iou", False)), ("defective images found", cell("detected", True)),
        ("normal images flagged", cell("false_alarms", True)),
        ("threshold", f"{cv.threshold:g}"), ("training steps", str(cv.n_steps)),
        ("trained on", f"{entry.get('n_training')} images ({entry.get('n_fake_normals')} "
                       f"fake normals)")))
    return (
        "<h2>The final model</h2>\n<p>Trained by "
        + _code(f"sid4ds train {session_arg}") + f" for round {entry['round']}"
        + (f"; <b>{stale} labels came after it</b>: train it again to use them" if stale
           else "")
        + ". Expected on new images (mean ± std over the folds of a "
        f"{cv.n_folds}-fold cross-validation over the labelled images; the IoU is pooled "
        f"over pixels {_esc(mix)}):</p>\n<table>{rows}</table>\n"
        "<p>Each fold's model was trained on the other folds, so the estimate is of a "
        "model trained on fewer labels; and the labelled images are those the ranking "
        "picked, not a random sample of the line. Read the spread, and check the model "
        "on a few new images with " + _code(f"sid4ds predict {session_arg} --images DIR "
                                            f"--out DIR") + ".</p>\n"
        + _figure_html("final_model.png", "Final model: cross-validated scores", caption))


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


def _recall_html(recall: dict[str, Any]) -> str:
    """The share of defective images found, with its bound, what it assumes and what to do
    (``status["recall"]``, :func:`sid4ds.session.audit.session_recall`)."""
    bound = recall["bound"]
    if bound is None:
        headline = "<b>no audit yet</b>"
    else:
        lower = f"{math.floor(bound['lower'] * 1000) / 10:g}%"
        estimate = ("" if bound["recall"] != bound["recall"] else
                    f"; estimate {bound['recall']:.1%}")
        headline = (f"<b>at least {lower} at {bound['confidence']:.0%} confidence</b> "
                    f"(audit of round {recall['audit_round']}: {bound['audit_defective']} "
                    f"defective of {bound['audit_size']}{estimate})")
    advice = recall["advice"][0].upper() + recall["advice"][1:]
    return (f"\n<h2>Share of defective images found (recall)</h2>\n<p>{headline}. "
            f"{_prose(recall['statement'])}</p>\n<p>{_prose(advice)}.</p>")


def _write_report(store: SessionStore, out: Path, manifest: dict[str, Any], n_samples: int,
                  device: Any) -> None:
    pool = store.pool()
    record = manifest["rounds"][-1]
    labels = manifest["labels"]
    settings = manifest["settings"]
    status = session_status(store, own_lock=True)
    per_round = status["rounds"]
    session_arg = shlex.quote(str(store.path))
    sections = []

    # summary, recall, rounds table
    # labels spent per round: its ranked batch and its random audit
    spent = [{**entry, "labeled": entry["labeled"] + entry["audit_labeled"],
              "defective": entry["defective"] + entry["audit_defective"]}
             for entry in per_round]
    in_rounds = sum(entry["labeled"] for entry in spent)
    start = (status["labeled"] - in_rounds,
             status["defective"] - sum(entry["defective"] for entry in spent))
    ratio = float(settings["defect_ratio"])
    recall_html = _recall_html(status["recall"])
    round_rows = "".join(
        f"<tr><td>{entry['round']}</td><td>{_esc(entry['stage'])}</td>"
        f"<td>{_prose(entry['reason'])}</td><td>{entry['asked']}</td>"
        f"<td>{entry['labeled']}</td><td>{entry['defective']}</td>"
        f"<td>{_percent(entry['defect_rate'])}</td><td>{entry['fake_normals']}</td></tr>"
        for entry in per_round)
    _save_figure(_plot_defects(spent, start, ratio, status["n_waiting"]),
                 out / "defects_per_round.png")
    start_text = (f" The line starts at the {start[0]} labels ({start[1]} defective) given "
                  f"outside the rounds (at creation or with {_code('--any')})."
                  if start[0] else "")
    defects_caption = (
        "Defects found against labels spent: cumulative defective images labelled against "
        "cumulative images labelled (a round's audit images included), one point per "
        "answered round. Dashed: what labelling "
        f"images at random would find (drawn on to include the {status['n_waiting']} images "
        f"waiting for masks), using the expected defect ratio of the session's "
        f"settings ({ratio:g}) × labels (not the defective share of the labelled images, "
        f"which the ranking inflates).{start_text}")
    sections.append(
        "<h2>Rounds</h2>\n<table><tr><th>round</th><th>stage</th><th>reason</th><th>asked</th>"
        "<th>labelled</th><th>defective</th><th>defect rate</th><th>fake normals</th></tr>\n"
        f"{round_rows}</table>\n"
        + _figure_html("defects_per_round.png", "Defects found against labels spent",
                       defects_caption)
        + recall_html)
    sections.append(_batches_html(status["batches"]))

    # (1) score distribution
    scores, score_names, complete = _round_scores(store, record)
    ties = _ties(scores, record, settings.get("region", "threshold"))
    msmr = _msmr_of(store, record, device) if (ties["dominant"] or ties["n_tied"]) else {}
    _save_figure(_plot_scores(scores, score_names, record, complete, ties, msmr),
                 out / "score_histogram.png")
    selected, fake = record["selected"], record["fake_normals"]
    source_text = (f"all {len(scores)} images the round ranked ({_code('scores.csv')} of "
                   f"{_esc(record['folder'])})" if complete else
                   f"{_code('scores.csv')} of {_esc(record['folder'])} is unreadable: only "
                   f"the scores of the asked images and fake normals from the manifest")
    scores_caption = (
        f"Round {record['round']} score distribution ({_esc(record['score'])}) of "
        f"{source_text}. Red dashed line: the K cut, the lowest score asked for (the "
        f"{len(selected)} images at or above it are to be labelled). Blue dotted line: the V "
        f"cut, the highest fake-normal score (the {len(fake)} images at or below it are this "
        f"round's fake normals, trained on as normal next round)." + _ties_text(ties, msmr))
    sections.append(f"<h2>Round {record['round']}: score distribution</h2>\n"
                    + _figure_html("score_histogram.png",
                                   f"Round {record['round']} score distribution",
                                   scores_caption))

    # (3) the asked-for images, only those shown are read
    shown = selected[:MAX_TOP_IMAGES]
    images = pool.images[[pool.index[name] for name in shown]] if shown else None
    segmenter = (store.model("S", device, round_index=record["models"]["S"])
                 if record["models"].get("S") is not None else None)
    threshold = float(getattr(segmenter, "threshold", 0.5))
    scale = 1.0
    if images is None:
        maps = None
    elif segmenter is not None:
        maps = segmenter.predict_proba(images)
    else:
        maps = _error_maps(store, record, images, device)
        if maps is not None and maps.size:
            scale = float(np.percentile(maps, 99))
    top_rows = []
    for position, (name, image) in enumerate(zip(shown, [] if images is None else images,
                                                 strict=True)):
        label = labels.get(name)
        label_text = ("not labelled yet" if label is None else
                      "labelled defective" if label["defective"] else "labelled normal")
        file = f"top/{position + 1:03d}.png"
        _save_figure(_plot_top_row(
            image, None if maps is None else maps[position], segmenter is not None,
            scale, threshold, None if label is None else store.load_mask(name),
            f"#{position + 1} {name}\nscore {record['scores'][position]:.4g}", label_text,
            record["stage"] == "cold_start"),
            out / file)
        top_rows.append(
            f"<tr><td>{position + 1}</td><td>{_esc(name)}</td>"
            f"<td>{record['scores'][position]:.5g}</td><td>{_esc(label_text)}</td>"
            f'<td><img src="{file}" alt="{_esc(f"#{position + 1} {name}: image, map, outlines")}">'
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
    sections.append(
        f"<h2>Round {record['round']}: images to label</h2>\n"
        f"<p>Each row: {_esc(panels_text)}{more}</p>\n<table><tr><th>rank</th><th>name</th>"
        f"<th>score</th><th>label</th><th>panels</th></tr>\n{''.join(top_rows)}</table>")

    # (4) S's training curve
    history = list(getattr(segmenter, "history_", None) or [])
    if segmenter is not None and history:
        _save_figure(_plot_training(history, getattr(segmenter, "best_epoch_", None),
                                    record["models"]["S"]), out / "training_curve.png")
        training_caption = (
            f"Training curve of the S that ranked round {record['round']}"
            + ("" if record["models"]["S"] == record["round"] else
               f" (trained for round {record['models']['S']})")
            + ": the loss (mean over each epoch, left axis) and the learning rate (right "
            "axis) against the training step, one point per epoch of its history (which "
            "also holds the earlier rounds' epochs when S was trained further from its "
            "previous weights).")
        sections.append("<h2>Segmentation learner S: training curve</h2>\n"
                        + _figure_html("training_curve.png", "S training loss and learning "
                                       "rate", training_caption))
    elif segmenter is None:
        sections.append("<h2>Segmentation learner S: training curve</h2>\n<p>No segmentation "
                        "learner S yet (cold start): no training curve.</p>")

    # (5) fake normals
    waiting_fake = [name for name in fake if name not in labels]
    fake_score = dict(zip(fake, record["fake_normal_scores"], strict=False))
    rng = make_rng((settings["seed"], record["round"]))
    sample = sorted(rng.choice(len(waiting_fake), size=min(n_samples, len(waiting_fake)),
                               replace=False).tolist()) if waiting_fake else []
    sample_names = [waiting_fake[index] for index in sample]
    command = f"sid4ds import {session_arg} --masks DIR --any"
    how = (f"If you see a defect in one of them, draw its mask (0 = normal, 255 = defect) "
           f"into a folder DIR, named like the image, and run {_code(command)}: "
           f"{_code('--any')} accepts masks for any pool image, and the mask replaces the "
           f"all-normal mask S would be trained with in the next round. If many are "
           f"defective, ask for fewer fake normals: "
           f"{_code(f'sid4ds query {session_arg} --normals V')}.")
    if sample_names:
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
        _save_figure(_plot_fake_normals(fake_images, sample_names,
                                        [fake_score.get(name, math.nan) for name in sample_names],
                                        record["round"], len(waiting_fake), extra, what),
                     out / "fake_normal_sample.png")
        fake_html = _figure_html(
            "fake_normal_sample.png", f"Round {record['round']} fake normal sample",
            f"A random sample of {len(sample_names)} of the {len(waiting_fake)} unlabelled "
            f"fake normals of round {record['round']} (the images scored lowest, which S is "
            f"taught are normal): {_esc(', '.join(sample_names))}.{_esc(tie_note)} {how}")
    else:
        fake_html = (f"<p>No fake normal to show (round {record['round']} has "
                     f"{len(waiting_fake)} unlabelled, {n_samples} asked for).</p>")
    sections.append(f"<h2>Round {record['round']}: fake normals to spot-check</h2>\n{fake_html}")
    sections.append(_final_section(store, out, session_arg))

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sid4ds session {_esc(store.path.name)}</title>
<style>
body{{font-family:sans-serif;margin:2em;max-width:70em;line-height:1.4;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}}
td,th{{padding:3px 8px;text-align:left;border-bottom:1px solid #ddd;vertical-align:middle}}
img{{max-width:100%;height:auto}}
figure{{margin:1em 0}} figcaption{{font-size:0.9em;color:#444;max-width:60em}}
code{{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:0.95em}}
</style></head><body>
<h1>sid4ds labelling session {_esc(store.path.name)}</h1>
<p>{status['n_images']} images; {status['labeled']} labelled ({status['defective']}
defective), {status['n_waiting']} waiting for masks, {status['fake_normals']} fake normals
in the last round, {status['unlabeled']} other unlabelled. Session folder:
{_code(str(store.path))}.</p>
<p><b>Next step:</b> {_prose(status['next'])}</p>
{chr(10).join(sections)}
</body></html>
"""
    write_text(out / "index.html", page)
