"""The benchmark's output: markdown tables (mean ± std over seeds), tidy CSVs and plots."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.evaluation.protocol import BenchmarkResult
from sid4ds.evaluation.records import (
    COLD_START_COLUMNS,
    IOU_COLUMNS,
    LABELED_COLUMNS,
    RANKING_TITLES,
    SELECTION_COLUMNS,
    TIMING_COLUMNS,
    WHOLE_POOL,
    aggregate,
)

__all__ = ["format_mean_std", "format_tables", "markdown_table", "plot_results", "read_csvs",
           "spread_of", "write_csvs"]


def format_mean_std(mean: float, std: float, digits: int = 2, percent: bool = False) -> str:
    """``"mean ± std"`` for a table cell; the mean alone when ``std`` is NaN (one seed).

    Examples
    --------
    >>> from sid4ds.evaluation import format_mean_std
    >>> format_mean_std(0.5123, 0.0312), format_mean_std(0.5, float("nan"), percent=True)
    ('0.51 ± 0.03', '50%')
    >>> format_mean_std(0.5, 0.1, percent=True)
    '50% ± 10%'
    """
    if np.isnan(mean):
        return "–"
    if percent:
        text = f"{100 * mean:.{max(digits - 2, 0)}f}%"
        return text if np.isnan(std) else f"{text} ± {100 * std:.{max(digits - 2, 0)}f}%"
    text = f"{mean:.{digits}f}"
    return text if np.isnan(std) else f"{text} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table.

    Examples
    --------
    >>> from sid4ds.evaluation import markdown_table
    >>> print(markdown_table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(str(cell) for cell in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def spread_of(records: Sequence[dict[str, Any]]) -> str:
    """How a table's cells are averaged: over the seeds its own records hold.

    Parameters
    ----------
    records : sequence of dict
        One part's records, each with a ``"seed"``.

    Returns
    -------
    text : str
        ``"mean ± std over N seeds"``, or ``"1 seed"``.

    Examples
    --------
    >>> from sid4ds.evaluation.output import spread_of
    >>> spread_of([{"seed": 0}, {"seed": 1}, {"seed": 1}])
    'mean ± std over 2 seeds'
    >>> spread_of([{"seed": 0}])
    '1 seed'
    """
    n_seeds = len({record["seed"] for record in records}) or 1
    return f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed"


def format_tables(result: BenchmarkResult, label_share: float | None = None) -> str:
    """The markdown tables of every part, averaged over seeds (mean ± sample std).

    Each table says how many seeds its own records hold (:func:`spread_of`): a run whose
    IoU was measured for fewer seeds than its selection says so in the IoU tables.

    Parameters
    ----------
    result : BenchmarkResult
    label_share : float, optional
        Shown in the selection table's column names.

    Returns
    -------
    text : str
        Headed markdown tables, separated by blank lines.
    """
    sections = []

    # (a) cold start
    if result.cold_start:
        summary = aggregate(result.cold_start, ("ranking", "batch"), "n_defective")
        batches = sorted({row["batch"] for row in summary})
        shares = {(row["ranking"], row["batch"]): row for row in
                  aggregate(result.cold_start, ("ranking", "batch"), "cumulative_share")}
        top = min(3, batches[-1])
        rows = []
        for ranking in dict.fromkeys(row["ranking"] for row in summary):
            cells = [format_mean_std(row["mean"], row["std"], 1)
                     for row in summary if row["ranking"] == ranking]
            first = shares[(ranking, top)]
            rows.append([RANKING_TITLES.get(ranking, ranking), *cells,
                         format_mean_std(first["mean"], first["std"], 2, percent=True)])
        sections.append(
            "## (a) Cold start: defective images per batch of the ranking "
            f"({spread_of(result.cold_start)})\n\n"
            + markdown_table(["ranking", *[f"batch {b}" for b in batches],
                              f"share in first {top}"], rows))

    # (b) selection
    if result.selection:
        summary = aggregate(result.selection, ("strategy", "round"), "cumulative_share")
        rounds = sorted({row["round"] for row in summary})
        header = ["strategy"] + [
            f"round {r}" + (f" ({(r + 1) * label_share:.0%})" if label_share else "")
            for r in rounds]
        rows = []
        for strategy in result.strategies:
            by_round = {row["round"]: row for row in summary if row["strategy"] == strategy}
            rows.append([strategy] + [
                format_mean_std(by_round[r]["mean"], by_round[r]["std"], 2, percent=True)
                if r in by_round else "–" for r in rounds])
        sections.append(
            "## (b) Selection: share of all defective pool images labelled after each round "
            f"({spread_of(result.selection)})\n\n" + markdown_table(header, rows))

    # (c) IoU and the image-level view
    if result.iou:
        summary = aggregate(result.iou, ("strategy", "labeled_share"), "iou")
        labeled_shares = sorted({row["labeled_share"] for row in summary
                                 if row["strategy"] != WHOLE_POOL})
        cell = {(row["strategy"], row["labeled_share"]): row for row in summary}
        rows = []
        for share in labeled_shares:
            rows.append([f"{share:.0%}"] + [
                format_mean_std(cell[s, share]["mean"], cell[s, share]["std"], 3)
                if (s, share) in cell else "–" for s in result.strategies])
        whole = cell.get((WHOLE_POOL, 1.0))
        if whole is not None:
            text = format_mean_std(whole["mean"], whole["std"], 3)
            rows.append(["100% (whole pool)"] + [text] * len(result.strategies))
        tests = sorted({(row["n_test"], row["n_defective_test"]) for row in result.iou})
        held_out = "; ".join(f"{n} held-out images, {d} defective" for n, d in tests)
        sections.append(
            "## (c) Segmentation IoU on the held-out images after training on the labelled "
            f"share ({spread_of(result.iou)}; {held_out})\n\n"
            + markdown_table(["labelled", *result.strategies], rows))
        if all("detected" in row for row in result.iou):
            found = {(row["strategy"], row["labeled_share"]): row for row in
                     aggregate(result.iou, ("strategy", "labeled_share"), "detected")}
            alarms = {(row["strategy"], row["labeled_share"]): row for row in
                      aggregate(result.iou, ("strategy", "labeled_share"), "false_alarms")}

            def both(key: tuple[str, float]) -> str:
                if key not in found:
                    return "–"
                return (format_mean_std(found[key]["mean"], found[key]["std"], 2, percent=True)
                        + " / " + format_mean_std(alarms[key]["mean"], alarms[key]["std"], 2,
                                                  percent=True))

            rows = [[f"{share:.0%}"] + [both((s, share)) for s in result.strategies]
                    for share in labeled_shares]
            if (WHOLE_POOL, 1.0) in found:
                rows.append(["100% (whole pool)"]
                            + [both((WHOLE_POOL, 1.0))] * len(result.strategies))
            sections.append(
                "## (c) Image level: held-out defective images in which S finds a defect / "
                f"held-out normal images S flags, at S's threshold ({spread_of(result.iou)})\n\n"
                + markdown_table(["labelled", *result.strategies], rows))

    # (d) timing
    if result.timing:
        per_seed: dict[tuple[str, Any], dict[str, list[float]]] = {}
        for record in result.timing:
            entry = per_seed.setdefault((record["strategy"], record["seed"]),
                                        {"cold": [], "later": [], "selection": [],
                                         "total": []})
            entry["cold" if record["round"] == 0 else "later"].append(record["seconds"])
            if record["round"] > 0:
                entry["selection"].append(record["selection_seconds"])
            entry["total"].append(record["seconds"])
        flat = [{"strategy": strategy, "cold": sum(entry["cold"]),
                 "later": np.mean(entry["later"]) if entry["later"] else float("nan"),
                 "selection": (np.mean(entry["selection"]) if entry["selection"]
                               else float("nan")),
                 "total": sum(entry["total"])}
                for (strategy, _seed), entry in per_seed.items()]
        columns = {name: {row["strategy"]: row for row in aggregate(flat, ["strategy"], name)}
                   for name in ("cold", "later", "selection", "total")}
        rows = [[strategy] + [format_mean_std(columns[name][strategy]["mean"],
                                              columns[name][strategy]["std"], 1)
                              for name in ("cold", "later", "selection", "total")]
                for strategy in result.strategies if strategy in columns["total"]]
        sections.append(
            f"## (d) Wall time per round in seconds ({spread_of(result.timing)})\n\n"
            + markdown_table(["strategy", "cold start round", "later round (mean)",
                              "of which selection", "all rounds"], rows))
    return "\n\n".join(sections)


def write_csvs(result: BenchmarkResult, out: str | Path) -> list[Path]:
    """Write one tidy CSV per part into ``out``: cold_start, selection, timing, iou, labeled.

    A part without records is not written: ``iou.csv`` when the IoU was not measured,
    ``labeled.csv`` for a result read from older runs' folders (which did not write it),
    ``cold_start.csv`` and ``timing.csv`` for S trained again on a run's labels
    (:func:`~sid4ds.evaluation.retrain_folder`). ``labeled.csv`` holds every image each
    strategy labelled, in order.

    Parameters
    ----------
    result : BenchmarkResult
    out : str or path-like
        Folder; created when missing.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    parts = [("cold_start.csv", COLD_START_COLUMNS, result.cold_start),
             ("selection.csv", SELECTION_COLUMNS, result.selection),
             ("timing.csv", TIMING_COLUMNS, result.timing),
             ("iou.csv", IOU_COLUMNS, result.iou),
             ("labeled.csv", LABELED_COLUMNS, result.labeled)]
    paths = []
    for name, columns, records in parts:
        if not records:
            continue
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(records)
        paths.append(path)
    return paths


def read_csvs(folders: Sequence[str | Path]) -> BenchmarkResult:
    """The records that :func:`write_csvs` wrote, from one or several folders, joined.

    Separate runs (one seed or one data set each, e.g. in parallel) give one result whose
    tables and plots average over all their seeds. A row that two runs of the same seed
    both wrote, identically, counts once: every run writes the random and local-contrast
    cold-start rankings and S on the whole pool. Two different rows for the same seed and
    strategy (a rerun, or runs from two machines) raise an error instead of being
    averaged as if they were two seeds. A run of fewer rounds joins a longer run of the same
    seed when the rounds both ran agree: their timing rows are measurements, which differ
    from run to run, so a round timed twice keeps the first folder's time.

    Parameters
    ----------
    folders : sequence of str or path-like
        Folders holding ``selection.csv``, ``timing.csv`` and, when present,
        ``cold_start.csv``, ``iou.csv`` and ``labeled.csv``.

    Returns
    -------
    result : BenchmarkResult
        Its ``strategies`` in the order they first appear.

    Raises
    ------
    ValueError
        When two folders hold different rows for the same seed, strategy (or ranking) and
        round (or batch, or labelled share), timing rows excepted.
    """
    result = BenchmarkResult()
    seen: dict[tuple[Any, ...], tuple[dict[str, Any], Path]] = {}
    for folder in folders:
        for name, (attribute, key_columns) in _CSV_PARTS.items():
            path = Path(folder) / name
            if not path.is_file():
                continue
            with path.open(newline="", encoding="utf-8") as handle:
                rows = [{key: _number(value) for key, value in row.items()}
                        for row in csv.DictReader(handle)]
            for row in rows:
                key = (attribute, *(row[column] for column in key_columns))
                if key in seen:
                    first, first_path = seen[key]
                    if first != row and attribute not in _MEASURED_PARTS:
                        named = dict(zip(key_columns, key[1:], strict=True))
                        raise ValueError(
                            f"folders must hold different seeds or strategies: {first_path} "
                            f"and {path} both hold the {attribute} row {named} with "
                            f"different values; merge one of them"
                        )
                    continue
                seen[key] = (row, path)
                getattr(result, attribute).append(row)
    result.strategies = list(dict.fromkeys(row["strategy"] for row in result.selection))
    return result


#: Each CSV of a run: the attribute of BenchmarkResult it fills, and the columns that name
#: one row (two runs of one seed may both write it).
_CSV_PARTS = {
    "cold_start.csv": ("cold_start", ("seed", "ranking", "batch")),
    "selection.csv": ("selection", ("seed", "strategy", "round")),
    "timing.csv": ("timing", ("seed", "strategy", "round")),
    "iou.csv": ("iou", ("seed", "strategy", "labeled_share")),
    "labeled.csv": ("labeled", ("seed", "strategy", "position")),
}

#: Parts whose rows are measurements (wall time), which differ from run to run: a row two
#: runs of one seed both wrote keeps the first folder's.
_MEASURED_PARTS = frozenset({"timing"})


def _number(text: str) -> Any:
    """A CSV cell as the int or float it was written from, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def plot_results(
    result: BenchmarkResult, out: str | Path, label_share: float | None = None
) -> list[Path]:
    """Write PNG plots of every part into ``out`` with matplotlib.

    ``cold_start.png`` (defective images per batch, Fig. 12), ``selection.png`` (share of
    defects found against the labelled share, Fig. 13, with the best possible curve),
    ``timing.png`` (seconds per round, Table 3) and, with IoU records, ``iou.png`` (Table 5).
    Error bars and bands are ± one standard deviation over seeds.

    Parameters
    ----------
    result : BenchmarkResult
    out : str or path-like
        Folder; created when missing.
    label_share : float, optional
        K as a share of the pool: the selection plot's x axis (default: from the records).

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ImportError
        When matplotlib, a dependency of sid4ds, is missing from the environment.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "the plots need matplotlib, a dependency of sid4ds that is missing from this "
            "environment: pip install matplotlib; the CSV files hold every number"
        ) from error
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(figure: Figure, name: str) -> None:
        FigureCanvasAgg(figure)
        figure.tight_layout()
        figure.savefig(folder / name, dpi=120)
        paths.append(folder / name)

    def error(means: Sequence[float], stds: Sequence[float]) -> list[list[float]] | None:
        """Error bars of ± one std, cut at 0; None with one seed (no spread).

        Nested lists, not a (2, n) array: matplotlib reads a (2, 1) array's first row as a
        scalar, which NumPy deprecates, so a one-bar plot would warn.
        """
        spread = np.asarray(stds, dtype=np.float64)
        if np.isnan(spread).all():
            return None
        spread = np.nan_to_num(spread)
        lower = np.minimum(spread, np.asarray(means, dtype=np.float64))
        return [lower.tolist(), spread.tolist()]

    if result.cold_start:
        summary = aggregate(result.cold_start, ("ranking", "batch"), "n_defective")
        rankings = list(dict.fromkeys(row["ranking"] for row in summary))
        figure = Figure(figsize=(8, 4))
        axes = figure.add_subplot()
        width = 0.8 / len(rankings)
        for position, ranking in enumerate(rankings):
            rows = [row for row in summary if row["ranking"] == ranking]
            batches = np.array([row["batch"] for row in rows], dtype=np.float64)
            means = [row["mean"] for row in rows]
            axes.bar(batches - 0.4 + width * (position + 0.5), means, width,
                     yerr=error(means, [row["std"] for row in rows]), capsize=2,
                     label=RANKING_TITLES.get(ranking, ranking))
        axes.set(xlabel="batch of the cold-start ranking", ylabel="defective images",
                 title="(a) Cold start")
        axes.set_xticks(sorted({row["batch"] for row in summary}))
        axes.legend()
        save(figure, "cold_start.png")

    if result.selection:
        summary = aggregate(result.selection, ("strategy", "round"), "cumulative_share")
        labeled = {(row["strategy"], row["round"]): row["mean"] for row in
                   aggregate(result.selection, ("strategy", "round"), "labeled_share")}
        figure = Figure(figsize=(6, 4.5))
        axes = figure.add_subplot()
        for strategy in result.strategies:
            rows = [row for row in summary if row["strategy"] == strategy]
            x = np.array([labeled[strategy, row["round"]] for row in rows])
            mean = np.array([row["mean"] for row in rows])
            std = np.nan_to_num(np.array([row["std"] for row in rows], dtype=np.float64))
            (line,) = axes.plot(x, mean, marker="o", label=strategy)
            if std.any():
                axes.fill_between(x, np.maximum(mean - std, 0.0), np.minimum(mean + std, 1.0),
                                  color=line.get_color(), alpha=0.15)
        first = result.selection[0]
        n_pool = first["n_labeled"] / first["labeled_share"]
        n_defective = np.mean([record["n_defective_pool"] for record in result.selection])
        reach = max(record["labeled_share"] for record in result.selection)
        x = np.linspace(0.0, reach, 100)
        if n_defective:
            axes.plot(x, np.minimum(1.0, x * n_pool / n_defective), "k--", lw=1,
                      label="best possible")
        axes.plot(x, x, "k:", lw=1, label="expected at random")
        axes.set(xlabel="labelled share of the pool", ylabel="share of defective images found",
                 ylim=(0, 1.02), title="(b) Selection")
        axes.legend(fontsize="small")
        save(figure, "selection.png")

    if result.iou:
        summary = aggregate(result.iou, ("strategy", "labeled_share"), "iou")
        figure = Figure(figsize=(6, 4.5))
        axes = figure.add_subplot()
        for strategy in result.strategies:
            rows = [row for row in summary if row["strategy"] == strategy]
            if rows:
                means = [row["mean"] for row in rows]
                axes.errorbar([row["labeled_share"] for row in rows], means,
                              yerr=error(means, [row["std"] for row in rows]), marker="o",
                              capsize=2, label=strategy)
        whole = [row for row in summary if row["strategy"] == WHOLE_POOL]
        if whole:
            axes.axhline(whole[0]["mean"], color="k", ls="--", lw=1, label="whole pool")
        axes.set(xlabel="labelled share of the pool", ylabel="defect IoU on held-out images",
                 title="(c) Segmentation IoU")
        axes.legend(fontsize="small")
        save(figure, "iou.png")

    if result.timing:
        summary = aggregate(result.timing, ("strategy", "stage"), "seconds")
        figure = Figure(figsize=(7, 4))
        axes = figure.add_subplot()
        positions = np.arange(len(result.strategies), dtype=np.float64)
        for offset, stage in ((-0.2, "cold_start"), (0.2, "iterative")):
            rows = {row["strategy"]: row for row in summary if row["stage"] == stage}
            means = [rows[s]["mean"] if s in rows else 0.0 for s in result.strategies]
            stds = [rows[s]["std"] if s in rows else float("nan") for s in result.strategies]
            axes.bar(positions + offset, means, 0.4, yerr=error(means, stds), capsize=2,
                     label=stage.replace("_", " ") + " round")
        axes.set_xticks(positions, result.strategies, rotation=30, ha="right")
        axes.set(ylabel="seconds per round", title="(d) Wall time")
        axes.legend()
        save(figure, "timing.png")
    return paths

