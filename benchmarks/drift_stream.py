"""A production line as a stream: batches arrive, one drifts, one labelling round after each.

    python benchmarks/drift_stream.py --seeds 0 1 2 --out benchmarks/results/drift_stream

Generated 64x64 images (``make_defect_images``, 5% defective) arrive in ``--n-batches``
batches of ``--batch-size``; from batch ``--drifted-batch`` on the line has changed
(``--drift``: a new texture by default) and stays changed. After each batch arrives the
pool grows by it and one labelling round of K = ``--n-label`` images runs, an oracle
answering with the true masks. Compared, on the same images:

- ``random``: K unlabelled images drawn uniformly;
- ``sid4ds, no drift rule``: the round engine as it is (``drift_rule="none"``);
- ``sid4ds, <rule>``: the same, with the drift check (:func:`sid4ds.ranking.drift.check_drift`,
  M's mean reconstruction error of the batch against the pool's) run when a batch arrives
  and the batch's rows passed to the next round when it is flagged, which applies the
  engine's ``drift_rule`` (``--rules``; ``RULE:key=value`` also changes the rule's
  ``drift_normal_share`` or ``reserve_share``).

The sid4ds pipelines are one run until the drift check first flags a batch (they are the
same rounds by construction: without a flagged batch no rule acts); there the run forks
into one copy per rule. Printed and written to ``--out``: ``rounds.csv`` (per seed,
pipeline and round: defects labelled, of all arrived and of the drifted batch; the drift
check's statistic), ``summary.md`` (mean ± std over the seeds), ``stream.png`` and
``settings.json``. The networks are smaller than the defaults (``--m-channels``,
``--s-steps``...) so that a seed takes minutes on one core; the defaults are printed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from sid4ds import ReconstructionScorer, SegmentationLearner, SID4DSRounds
from sid4ds._core.random import make_rng
from sid4ds.datasets import DRIFT_KINDS, make_defect_images
from sid4ds.datasets.pool import as_pool
from sid4ds.engine.rounds import DRIFT_RULES, training_set
from sid4ds.evaluation.settings import machine_versions
from sid4ds.metrics import defective_rows
from sid4ds.ranking.drift import check_drift
from sid4ds.ranking.selection import content_keys

NO_RULE = "sid4ds, no drift rule"
RANDOM = "random"


def parse_rule(spec: str) -> tuple[str, dict[str, float]]:
    """``"fake_normals:drift_normal_share=0.5"`` -> the rule and the engine settings it
    changes (``drift_normal_share``, ``reserve_share``)."""
    rule, *pairs = spec.split(":")
    if rule not in DRIFT_RULES:
        raise SystemExit(f"--rules: {rule!r} is not one of {DRIFT_RULES}")
    settings = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        if key not in ("drift_normal_share", "reserve_share"):
            raise SystemExit(f"--rules: {key!r} in {spec!r}; expected drift_normal_share or "
                             f"reserve_share")
        settings[key] = float(text)
    return rule, settings


def pipeline_name(rule: str) -> str:
    return NO_RULE if rule == "none" else f"sid4ds, {rule}"


class Campaign:
    """One pipeline's state along the stream: its engine (None: random) and its labels."""

    def __init__(self, engine: SID4DSRounds | None, seed: int) -> None:
        self.engine = engine
        self.labelled: list[int] = []
        self.fake_normals = np.zeros(0, np.int64)
        self.rng = make_rng([seed, 99])
        self.flagged_batches: list[int] = []

    def select(self, X: np.ndarray, masks: np.ndarray, n_pool: int, keys: np.ndarray,
               round_index: int, n_label: int, drifted: np.ndarray | None) -> np.ndarray:
        labelled = np.array(self.labelled, dtype=np.int64)
        unlabeled = np.setdiff1d(np.arange(n_pool), labelled)
        if self.engine is None:
            return self.rng.choice(unlabeled, size=min(n_label, len(unlabeled)), replace=False)
        X_train, y_train = training_set(X[labelled], masks[labelled], X[self.fake_normals])
        result = self.engine.run_round(as_pool(X[:n_pool]), unlabeled, X_train, y_train,
                                       round_index, n_label, keys=keys[:n_pool],
                                       drifted=drifted)
        self.fake_normals = unlabeled[result.fake_normals]
        return unlabeled[result.selected]


def make_stream(args: argparse.Namespace, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """Images, masks and the batch (1-based) of every image."""
    parts = [make_defect_images(args.batch_size, args.image_size, args.defect_ratio,
                                random_state=[seed, batch],
                                drift=args.drift if batch >= args.drifted_batch else None)
             for batch in range(1, args.n_batches + 1)]
    batch_of = np.repeat(np.arange(1, args.n_batches + 1), args.batch_size)
    return (np.concatenate([X for X, _ in parts]), np.concatenate([m for _, m in parts]),
            batch_of)


def run_seed(args: argparse.Namespace, seed: int) -> list[dict]:
    X, masks, batch_of = make_stream(args, seed)
    defective = defective_rows(masks)
    keys = content_keys(X)
    engine = SID4DSRounds(
        SegmentationLearner(base_channels=args.s_channels, max_steps=args.s_steps,
                            random_state=seed),
        ReconstructionScorer(base_channels=args.m_channels, max_epochs=args.m_epochs,
                             random_state=seed + 1000),
        drift_rule="none")
    # the sid4ds pipelines share one campaign until the drift check first flags a batch
    shared: dict[str, Campaign] = {RANDOM: Campaign(None, seed),
                                   "sid4ds": Campaign(engine, seed)}
    records: list[dict] = []
    started = time.perf_counter()
    for round_index in range(args.n_batches):
        batch = round_index + 1
        n_pool = batch * args.batch_size
        new = np.flatnonzero(batch_of[:n_pool] == batch)
        for name in list(shared):
            campaign = shared[name]
            check = None
            if campaign.engine is not None and batch > 1:
                check = check_drift(campaign.engine.msmr_scorer, X[: n_pool - len(new)],
                                    X[new], random_state=seed)
                if check.drifted and name == "sid4ds":  # fork: one copy per rule
                    del shared[name]
                    for rule in ("none", *args.rules):
                        fork = copy.deepcopy(campaign)
                        name_of_rule, settings = parse_rule(rule)
                        fork.engine.drift_rule = name_of_rule
                        for key, setting in settings.items():
                            setattr(fork.engine, key, setting)
                        shared[pipeline_name(rule)] = fork
                    targets = [pipeline_name(rule) for rule in ("none", *args.rules)]
                else:
                    targets = [name]
            else:
                targets = [name]
            for target in targets:
                record = play_round(args, shared[target], target, X, masks, defective,
                                    batch_of, keys, n_pool, new, round_index, check)
                record.update(seed=seed, seconds=round(time.perf_counter() - started, 1))
                records.append(record)
                print(json.dumps(record), flush=True)
                if args.out is not None:  # kept as it goes: a stopped run keeps its rounds
                    write_rounds(records, args.out / f"rounds_seed{seed}.csv")
    return records


def play_round(args, campaign: Campaign, name: str, X, masks, defective, batch_of, keys,
               n_pool: int, new: np.ndarray, round_index: int, check) -> dict:
    flagged = check is not None and check.drifted
    if flagged:
        campaign.flagged_batches.append(round_index + 1)
    chosen = campaign.select(X, masks, n_pool, keys, round_index, args.n_label,
                             new if flagged else None)
    campaign.labelled.extend(int(row) for row in chosen)
    from_drifted = int((batch_of[np.asarray(chosen, dtype=np.int64)]
                        >= args.drifted_batch).sum())
    labelled = np.array(campaign.labelled)
    arrived = defective[:n_pool]
    drifted_batch = batch_of == args.drifted_batch
    record = {
        "pipeline": name, "round": round_index + 1, "n_pool": n_pool,
        "n_labelled": len(labelled), "defects_arrived": int(arrived.sum()),
        "defects_found": int(defective[labelled].sum()),
        "share_found": float(defective[labelled].sum() / max(arrived.sum(), 1)),
        "drifted_batch_found": "", "share_drifted_found": "",
        "selected_drifted": from_drifted,
        "drift_flagged": "" if check is None else bool(check.drifted),
        "drift_share_above": "" if check is None else round(check.share_above, 4),
        "drift_p_value": "" if check is None else float(f"{check.p_value:.3g}"),
    }
    if round_index + 1 >= args.drifted_batch:
        in_drifted = defective & drifted_batch
        found = int(in_drifted[labelled].sum())
        record["drifted_batch_found"] = found
        record["share_drifted_found"] = found / max(int(in_drifted.sum()), 1)
    return record


# ---------------------------------------------------------------------- report
def pipelines_of(args: argparse.Namespace) -> list[str]:
    return [RANDOM, *(pipeline_name(rule) for rule in ("none", *args.rules))]


def value(records: list[dict], pipeline: str, seed: int, round_number: int,
          key: str) -> float | None:
    """A pipeline's figure in one round; the shared sid4ds run's before the fork."""
    for record in records:
        if (record["seed"] == seed and record["round"] == round_number
                and (record["pipeline"] == pipeline
                     or (pipeline != RANDOM and record["pipeline"] == "sid4ds"))
                and record[key] != ""):
            return float(record[key])
    return None


def summarise(records: list[dict], args: argparse.Namespace) -> str:
    seeds = sorted({record["seed"] for record in records})

    def cell(pipeline: str, round_number: int, key: str) -> str:
        values = [value(records, pipeline, seed, round_number, key) for seed in seeds]
        values = [v for v in values if v is not None]
        return f"{np.mean(values):.0%} ± {np.std(values):.0%}" if values else ""

    def table(rounds: range, key: str) -> list[str]:
        rows = ["| pipeline | " + " | ".join(f"round {r}" for r in rounds) + " |",
                "|---|" + "---|" * len(rounds)]
        return rows + [f"| {pipeline} | " + " | ".join(cell(pipeline, r, key) for r in rounds)
                       + " |" for pipeline in pipelines_of(args)]

    lines = [f"Seeds {seeds}; mean ± std over the seeds. Share of the defective images "
             f"arrived so far that are labelled after each round (round r follows batch r):",
             "", *table(range(1, args.n_batches + 1), "share_found"), "",
             f"Share of batch {args.drifted_batch}'s defects (the first drifted batch) "
             f"labelled:", "",
             *table(range(args.drifted_batch, args.n_batches + 1), "share_drifted_found"),
             "", "Drift check when each batch arrived: the share of the batch above the "
             "pool's 95th percentile of M's mean reconstruction error (mean ± std) and in "
             "how many seeds it was flagged; `sid4ds` is the run before it forked.", "",
             "| batch | pipeline | share above | flagged |", "|---|---|---|---|"]
    for batch in range(2, args.n_batches + 1):
        for pipeline in ("sid4ds", *pipelines_of(args)[1:]):
            rows = [r for r in records if r["round"] == batch and r["pipeline"] == pipeline
                    and r["drift_share_above"] != ""]
            if rows:
                shares = [float(r["drift_share_above"]) for r in rows]
                lines.append(f"| {batch} | {pipeline} | {np.mean(shares):.0%} ± "
                             f"{np.std(shares):.0%} | "
                             f"{sum(bool(r['drift_flagged']) for r in rows)} of {len(rows)} |")
    return "\n".join(lines)


def plot(records: list[dict], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({r["seed"] for r in records})
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for axis, key, first, title in (
            (axes[0], "share_found", 1, "all defects arrived so far"),
            (axes[1], "share_drifted_found", args.drifted_batch,
             f"defects of batch {args.drifted_batch} (drifted)")):
        rounds = np.arange(first, args.n_batches + 1)
        for pipeline in pipelines_of(args):
            values = np.array([[value(records, pipeline, seed, number, key)
                                for number in rounds] for seed in seeds], dtype=float)
            axis.errorbar(rounds, values.mean(axis=0), yerr=values.std(axis=0), marker="o",
                          capsize=3, label=pipeline)
        axis.axvline(args.drifted_batch - 0.5, color="grey", linestyle=":")
        axis.set_xticks(rounds)
        axis.set_xlabel("round (after batch ...)")
        axis.set_title(f"Share labelled: {title}", fontsize=10)
    axes[0].set_ylabel(f"share labelled (mean ± std, {len(seeds)} seeds)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_rounds(records: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def read_rounds(path: Path) -> list[dict]:
    """Records of a ``rounds.csv``, numbers as numbers."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("seed", "round", "n_pool", "n_labelled", "defects_arrived",
                    "defects_found", "selected_drifted"):
            if key in row:  # selected_drifted: runs from this commit on
                row[key] = int(row[key])
        row["drift_flagged"] = {"True": True, "False": False}.get(row["drift_flagged"], "")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-batches", type=int, default=5)
    parser.add_argument("--drifted-batch", type=int, default=4,
                        help="first drifted batch (1-based); the line stays changed")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--n-label", type=int, default=60, help="K per round")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--defect-ratio", type=float, default=0.05)
    parser.add_argument("--drift", choices=DRIFT_KINDS, default="texture")
    parser.add_argument("--rules", nargs="+", default=["fake_normals_msmr", "fake_normals"],
                        help="drift rules to compare, each RULE or RULE:key=value (e.g. "
                             "fake_normals:drift_normal_share=0.5)")
    parser.add_argument("--m-channels", type=int, default=8)
    parser.add_argument("--m-epochs", type=int, default=8)
    parser.add_argument("--s-channels", type=int, default=8)
    parser.add_argument("--s-steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--join", type=Path, nargs="+", default=None,
                        help="rounds.csv files of runs with these settings (one seed each, "
                             "run in parallel): write their joint report to --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"settings: {vars(args)}", flush=True)
    started = time.time()
    if args.join:
        records = [row for path in args.join for row in read_rounds(path)]
        args.seeds = sorted({record["seed"] for record in records})
    else:
        records = [record for seed in args.seeds for record in run_seed(args, seed)]
    report = summarise(records, args)
    print(report)
    if args.out is not None:
        write_rounds(records, args.out / "rounds.csv")
        command = "python benchmarks/drift_stream.py " + " ".join(
            f"--{key.replace('_', '-')} " + (" ".join(map(str, value))
                                             if isinstance(value, list) else str(value))
            for key, value in vars(args).items() if value is not None and key != "join")
        (args.out / "summary.md").write_text(
            f"# Drift stream\n\n```bash\n{command}\n```\n\n{report}\n\n"
            f"![The stream](stream.png)\n")
        plot(records, args, args.out / "stream.png")
        settings = {"arguments": {key: (str(value) if isinstance(value, Path) else value)
                                  for key, value in vars(args).items()},
                    "versions": machine_versions(),
                    "seconds": round(time.time() - started, 1)}
        (args.out / "settings.json").write_text(
            json.dumps(settings, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
