"""The plots of the session report (``sid4ds report``), drawn with matplotlib.

Each ``plot_*`` function returns a matplotlib ``Figure`` on the Agg canvas (no ``pyplot``
state); :mod:`sid4ds.session.report` saves it as a PNG beside the page. The plots: the
round's score histogram with the K and V cuts (1), the defects found against the labels
spent (2), an asked-for image with its map and outlines (3), S's training curve (4), a grid
of fake normals (5) and the final model's cross-validated curves (6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sid4ds.estimators.final_model import CrossValidation
from sid4ds.session.errors import SessionError

__all__ = ["plot_defects", "plot_fake_normals", "plot_final_curves", "plot_scores",
           "plot_top_row", "plot_training"]

#: Resolution of the PNG plots.
DPI = 100
_S_COLOUR = "#e41a1c"  # S's predicted region
_HUMAN_COLOUR = "#00c8ff"  # the human's mask
_K_COLOUR = "#d62728"
_V_COLOUR = "#1f5fbf"


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


def plot_scores(scores: np.ndarray, names: Sequence[str], record: dict[str, Any],
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


def plot_defects(per_round: Sequence[dict[str, Any]], start: tuple[int, int],
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


def plot_top_row(image: np.ndarray, values: np.ndarray | None, probability: bool,
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


def plot_training(history: Sequence[dict[str, Any]], best_epoch: int | None,
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


def plot_fake_normals(images: np.ndarray, names: Sequence[str], scores: Sequence[float],
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


def plot_final_curves(cv: CrossValidation) -> Any:
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
