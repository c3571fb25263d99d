"""``sid4ds report``: an HTML page with plots about the session."""

from __future__ import annotations

import csv
import html
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sid4ds._random import make_rng
from sid4ds._validation import check_int
from sid4ds.reconstruction import block_masks
from sid4ds.session.errors import SessionError
from sid4ds.session.status import session_status
from sid4ds.session.storage import replace_folder, to_uint8, write_bytes, write_text
from sid4ds.session.store import SessionStore

__all__ = ["write_session_report"]


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


_COLORMAP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                      [252, 255, 164]], dtype=np.float64)


def _heatmap(values: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) non-negative values -> (H, W, 3) uint8, 0 dark to ``scale`` bright yellow."""
    position = np.clip(values / max(scale, 1e-12), 0.0, 1.0) * (len(_COLORMAP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLORMAP) - 2)
    weight = (position - low)[..., None]
    colours = _COLORMAP[low] * (1 - weight) + _COLORMAP[low + 1] * weight
    return np.round(colours).astype(np.uint8)


def _thumbnail(pixels: np.ndarray, size: int = 96) -> Image.Image:
    image = Image.fromarray(pixels).convert("RGB")
    factor = max(1, size // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey/RGB uint8 image with ``mask`` pixels tinted red."""
    rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image.copy()
    rgb = rgb.astype(np.float64)
    red = np.array([255.0, 0.0, 0.0])
    rgb[mask > 0] = 0.45 * rgb[mask > 0] + 0.55 * red
    return np.round(rgb).astype(np.uint8)


def _draw_histogram(scores: np.ndarray, k_cut: float | None, v_cut: float | None,
                    title: str, n_label: int, n_normal: int) -> Image.Image:
    width, height, margin = 720, 380, 56
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        high = low + 1e-9
    counts, edges = np.histogram(scores, bins=min(40, max(5, len(scores) // 2)),
                                 range=(low, high))
    plot_w, plot_h = width - 2 * margin, height - 2 * margin

    def x_of(value: float) -> float:
        return margin + (value - low) / (high - low) * plot_w

    top = max(1, int(counts.max()))
    for count, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        if count:
            draw.rectangle([x_of(left), height - margin - count / top * plot_h,
                            max(x_of(left) + 1, x_of(right) - 1), height - margin],
                           fill=(120, 120, 120))
    draw.line([margin, height - margin, width - margin, height - margin], fill="black")
    draw.line([margin, margin, margin, height - margin], fill="black")
    draw.text((margin, 12), title, fill="black", font=font)
    draw.text((margin, height - margin + 8), f"{low:.4g}", fill="black", font=font)
    draw.text((width - margin - 60, height - margin + 8), f"{high:.4g}", fill="black",
              font=font)
    draw.text((width // 2 - 20, height - margin + 24), "score", fill="black", font=font)
    draw.text((8, margin - 16), f"{top} images", fill="black", font=font)
    for cut, colour, label in ((k_cut, (200, 0, 0), f"K={n_label}: label at or above"),
                               (v_cut, (0, 70, 200), f"V={n_normal}: fake normal at or below")):
        if cut is not None:
            x = x_of(cut)
            draw.line([x, margin, x, height - margin], fill=colour, width=2)
            draw.text((min(x + 4, width - 230), margin + (0 if colour[0] else 16)), label,
                      fill=colour, font=font)
    return canvas


def _draw_bars(values: Sequence[int], labels: Sequence[str], title: str) -> Image.Image:
    width, height, margin = 720, 320, 56
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    top = max(1, max(values, default=1))
    slot = (width - 2 * margin) / max(1, len(values))
    draw.text((margin, 12), title, fill="black", font=font)
    draw.line([margin, height - margin, width - margin, height - margin], fill="black")
    for position, (value, label) in enumerate(zip(values, labels, strict=True)):
        left = margin + position * slot + slot * 0.15
        right = margin + (position + 1) * slot - slot * 0.15
        bar_top = height - margin - value / top * (height - 2 * margin - 20)
        draw.rectangle([left, bar_top, right, height - margin], fill=(200, 60, 40))
        draw.text((left, bar_top - 14), str(value), fill="black", font=font)
        draw.text((left, height - margin + 8), label, fill="black", font=font)
    return canvas


def _grid(tiles: Sequence[Image.Image], columns: int) -> Image.Image:
    if not tiles:
        return Image.new("RGB", (1, 1), "white")
    tile_w = max(tile.width for tile in tiles) + 4
    tile_h = max(tile.height for tile in tiles) + 4
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (tile_w * min(columns, len(tiles)), tile_h * rows), "white")
    for index, tile in enumerate(tiles):
        canvas.paste(tile, ((index % columns) * tile_w + 2, (index // columns) * tile_h + 2))
    return canvas


def image_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()



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
        target = Path(out) if out is not None else store.path / "report"
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

def _round_scores(store: SessionStore, record: dict[str, Any]) -> np.ndarray:
    file = store.path / record["folder"] / "scores.csv"
    try:
        with open(file, newline="") as handle:
            return np.array([float(row["score"]) for row in csv.DictReader(handle)])
    except (OSError, KeyError, ValueError) as error:
        raise SessionError(f"cannot read {file}: {error}") from None

def _error_maps(store: SessionStore, record: dict[str, Any], images: np.ndarray,
                device: Any) -> np.ndarray:
    """Per-pixel reconstruction error (n, H, W) of the model that scored the round."""

    models = record["models"]
    if record["stage"] == "iterative":
        guided = store.model("G", device, round_index=models["G"])
        return ((guided.reconstruct(images) - images) ** 2).mean(axis=1)
    scorer = store.model("M", device, round_index=models["M"])
    height, width = images.shape[2:]
    maps = np.zeros((len(images), height, width), dtype=np.float64)
    for block in block_masks(height, width, scorer.n_blocks):
        squared = ((scorer.reconstruct(images, mask=block.astype(np.uint8)) - images) ** 2
                   ).mean(axis=1)
        maps[:, block] = squared[:, block]
    return maps

def _write_report(store: SessionStore, out: Path, manifest: dict[str, Any], n_samples: int,
                  device: Any) -> None:
    pool = store.pool()
    record = manifest["rounds"][-1]
    labels = manifest["labels"]
    scores = _round_scores(store, record)
    k_cut = min(record["scores"]) if record["scores"] else None
    v_cut = max(record["fake_normal_scores"]) if record["fake_normal_scores"] else None
    histogram = _draw_histogram(
        scores, k_cut, v_cut,
        f"round {record['round']} ({record['stage']}): {record['score']} of "
        f"{len(scores)} unlabelled images", len(record["selected"]),
        len(record["fake_normals"]))
    write_bytes(out / "score_histogram.png", image_png(histogram))
    status = session_status(store)
    per_round = status["rounds"]
    write_bytes(out / "defects_per_round.png", image_png(_draw_bars(
        [entry["defective"] for entry in per_round],
        [f"r{entry['round']}" for entry in per_round],
        "defective images found per round (among the images labelled)")))

    selected = record["selected"]
    rows = [pool.index[name] for name in selected]
    images = pool.images[rows]
    error_maps = _error_maps(store, record, images, device)
    scale = float(np.percentile(error_maps, 99)) if error_maps.size else 1.0
    predicted = None
    if record["models"].get("S") is not None:
        segmenter = store.model("S", device, round_index=record["models"]["S"])
        predicted = segmenter.predict(images)
    top_rows = []
    for position, name in enumerate(selected):
        pixels = to_uint8(images[position])
        panels = [_thumbnail(pixels), _thumbnail(_heatmap(error_maps[position], scale))]
        if predicted is not None:
            panels.append(_thumbnail(_overlay(pixels, predicted[position])))
        if name in labels:
            panels.append(_thumbnail(_overlay(pixels, store.load_mask(name))))
        file = f"top/{position + 1:03d}.png"
        write_bytes(out / file, image_png(_grid(panels, len(panels))))
        label = ("not labelled yet" if name not in labels else
                 "defective" if labels[name]["defective"] else "normal")
        top_rows.append(
            f"<tr><td>{position + 1}</td><td>{html.escape(name)}</td>"
            f"<td>{record['scores'][position]:.5g}</td><td>{label}</td>"
            f"<td><img src=\"{file}\" alt=\"{html.escape(name)}\"></td></tr>")

    fake = record["fake_normals"]
    rng = make_rng((manifest["settings"]["seed"], record["round"]))
    sample = sorted(rng.choice(len(fake), size=min(n_samples, len(fake)), replace=False)
                    .tolist()) if fake else []
    fake_tiles = [_thumbnail(to_uint8(pool.images[pool.index[fake[index]]]), 64)
                  for index in sample]
    write_bytes(out / "fake_normal_sample.png", image_png(_grid(fake_tiles, 8)))
    sample_names = ", ".join(html.escape(fake[index]) for index in sample)

    round_rows = "".join(
        f"<tr><td>{entry['round']}</td><td>{entry['stage']}</td><td>{entry['asked']}</td>"
        f"<td>{entry['labeled']}</td><td>{entry['defective']}</td>"
        f"<td>{entry['fake_normals']}</td></tr>" for entry in per_round)
    panels_text = ("image | reconstruction error" + (" | predicted mask (S)" if predicted
                                                     is not None else "")
                   + " | human mask (once labelled)")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>sid4ds session {html.escape(store.path.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:left}}
img{{image-rendering:pixelated}}</style></head><body>
<h1>sid4ds labelling session {html.escape(store.path.name)}</h1>
<p>{status['n_images']} images; {status['labeled']} labelled ({status['defective']} defective),
{status['fake_normals']} fake normals in the last round, {status['unlabeled']} other unlabelled.
Next: {html.escape(status['next'])}</p>
<h2>Rounds</h2>
<table><tr><th>round</th><th>stage</th><th>asked</th><th>labelled</th><th>defective</th>
<th>fake normals</th></tr>{round_rows}</table>
<p><img src="defects_per_round.png" alt="defects found per round"></p>
<h2>Round {record['round']}: scores</h2>
<p>Red line: the K cut (the {len(selected)} images at or above it are to be labelled).
Blue line: the V cut (the {len(fake)} images at or below it are this round's fake normals,
trained on as normal in the next round).</p>
<p><img src="score_histogram.png" alt="score histogram"></p>
<h2>Round {record['round']}: images to label</h2>
<p>Panels: {panels_text}.</p>
<table><tr><th>rank</th><th>name</th><th>score</th><th>label</th><th>panels</th></tr>
{''.join(top_rows)}</table>
<h2>Fake normals: a random sample to spot-check</h2>
<p>{len(sample)} of {len(fake)}: {sample_names}. If one of them is defective, the
segmentation learner is taught that it is normal: label it (import a mask for it after
it is asked for) or lower V.</p>
<p><img src="fake_normal_sample.png" alt="fake normal sample"></p>
</body></html>
"""
    write_text(out / "index.html", page)
