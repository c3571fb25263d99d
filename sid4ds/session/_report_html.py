"""The HTML of the session report (``sid4ds report``): escaping, inline code, figures with
captions, the tables and texts built from the status, and the page around the sections.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["batches_html", "code", "esc", "figure_html", "page_html", "percent", "prose",
           "recall_html", "ties_text"]


def esc(text: Any) -> str:
    """HTML-escaped text; backticks too, so that the page holds none literally."""
    return html.escape(str(text), quote=True).replace("`", "&#96;")


def code(command: str) -> str:
    """A command as inline code."""
    return f"<code>{esc(command)}</code>"


def prose(text: Any) -> str:
    """Escaped text whose ```cmd``` spans become ``<code>cmd</code>``."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: the rest is plain text
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(code(part) if position % 2 else esc(part)
                   for position, part in enumerate(parts))


def figure_html(source: str, alt: str, caption: str) -> str:
    """A plot with its alt text and (already HTML) caption."""
    return (f'<figure><img src="{esc(source)}" alt="{esc(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def recall_html(recall: dict[str, Any]) -> str:
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
            f"{prose(recall['statement'])}</p>\n<p>{prose(advice)}.</p>")


def batches_html(batches: Sequence[dict[str, Any]]) -> str:
    """The table of the pool's batches: where its images came from, and when."""
    rows = "".join(
        f"<tr><td>{entry['batch']}</td><td>{esc(entry['command'])}</td>"
        f"<td>{esc(entry['time'])}</td><td>{esc(entry['source'])}</td>"
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
            + "".join(f"<p>Drift check: {esc(entry['drift_words'])}</p>\n"
                      for entry in batches if entry.get("drift_words")))


def ties_text(ties: dict[str, Any], msmr: dict[str, float]) -> str:
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
    return prose("".join(parts)).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")


def page_html(session: Path, status: dict[str, Any], sections: Sequence[str]) -> str:
    """The whole page: a summary of ``status`` (``session_status``) and the sections of
    the session folder ``session``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sid4ds session {esc(session.name)}</title>
<style>
body{{font-family:sans-serif;margin:2em;max-width:70em;line-height:1.4;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}}
td,th{{padding:3px 8px;text-align:left;border-bottom:1px solid #ddd;vertical-align:middle}}
img{{max-width:100%;height:auto}}
figure{{margin:1em 0}} figcaption{{font-size:0.9em;color:#444;max-width:60em}}
code{{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:0.95em}}
</style></head><body>
<h1>sid4ds labelling session {esc(session.name)}</h1>
<p>{status['n_images']} images; {status['labeled']} labelled ({status['defective']}
defective), {status['n_waiting']} waiting for masks, {status['fake_normals']} fake normals
in the last round, {status['unlabeled']} other unlabelled. Session folder:
{code(str(session))}.</p>
<p><b>Next step:</b> {prose(status['next'])}</p>
{chr(10).join(sections)}
</body></html>
"""
