"""Which benchmark runs may be joined: the settings a run records, compared across runs.

Every run writes ``settings.json`` (:mod:`sid4ds.cli.benchmark`). Runs made separately (one
seed or one strategy each, in parallel) can be joined into one table only when they ran the
same protocol (data, split, models) on the same kind of machine: the same seed gives the
same images on one machine, and different ones where torch's CPU kernels (AVX2 against
AVX-512), its thread count or a version differ. :func:`merged_settings` checks both and
returns the settings the joined folder records.

How far a run went may differ: its seeds, strategies, IoU shares and number of rounds. A run
of one round is the first rounds of a run of two, so the rows both wrote must agree, which
:func:`sid4ds.evaluation.read_csvs` checks when it joins them.
"""

from __future__ import annotations

import copy
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MACHINE_SETTINGS", "PER_RUN_SETTINGS", "machine_versions", "merged_settings",
           "read_settings"]

#: Settings that name the machine: a seed repeats its numbers only where these are equal.
MACHINE_SETTINGS: tuple[tuple[str, ...], ...] = (
    ("versions", "sid4ds"), ("versions", "python"), ("versions", "numpy"),
    ("versions", "torch"), ("versions", "scikit-learn"), ("versions", "torch_cpu_capability"),
    ("versions", "torch_threads"), ("models", "device"),
)

#: Settings that may differ between joined runs: what each run covered, where it wrote,
#: and, for S trained again, which run's labels it used and where the data lay.
PER_RUN_SETTINGS: tuple[tuple[str, ...], ...] = (
    ("arguments", "seeds"), ("arguments", "strategies"), ("arguments", "iou"),
    ("arguments", "iou_shares"), ("arguments", "rounds"), ("arguments", "out"),
    ("arguments", "quiet"), ("arguments", "device"), ("arguments", "npz"),
    ("arguments", "images"), ("arguments", "masks"), ("split", "n_defective_pool"),
    ("split", "n_defective_test"),
    ("versions", "platform"), ("versions", "cpu"), ("started",), ("finished",), ("seconds",),
    ("merged_from",), ("machines",),
    ("retrained", "from"), ("retrained", "data_paths"), ("retrained", "seconds"),
    ("retrained", "finished"),
)

#: Paths to data files: compared by file name, so that ../data/x.npz and /work/data/x.npz
#: count as one.
_FILE_SETTINGS = (("data", "path"), ("data", "images"), ("data", "masks"))

_MISSING = "(not recorded)"


def merged_settings(
    folders: Sequence[str | Path], allow_machines: bool = False
) -> dict[str, Any]:
    """The settings of benchmark runs to be joined, checked to be one protocol on one machine.

    Parameters
    ----------
    folders : sequence of str or path-like
        Output folders of ``python -m sid4ds.evaluation`` (or of an earlier join), each with
        its ``settings.json``.
    allow_machines : bool, default=False
        Join runs made on different machines (torch CPU capability, threads, device or
        versions). Their numbers for one seed are not comparable, so this is off unless the
        runs hold different seeds and you say so; the differences are then recorded under
        ``"machines"``.

    Returns
    -------
    settings : dict
        The first folder's settings with the seeds, strategies and IoU shares of all folders,
        the most rounds any of them ran, the defective image counts per seed,
        ``"merged_from"`` (the folders) and, when the machines differed, ``"machines"``
        (each folder's machine settings). Run times are dropped. Folders of
        ``benchmarks/retrain_segmenter.py`` (S trained again, e.g. one seed at a time) join
        when they changed S alike: ``"retrained"`` keeps the changes and names the run, or
        lists the runs, they came from.

    Raises
    ------
    ValueError
        When a folder has no ``settings.json``, or two folders differ in a setting that
        changes what a seed's numbers mean (data, split, models, query settings), or in the
        machine without ``allow_machines``. The message names the setting, both values and
        both folders.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> from sid4ds.evaluation.settings import merged_settings
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for seed, cpu in ((0, "AVX2"), (1, "AVX512")):
    ...     (root / f"s{seed}").mkdir()
    ...     settings = {"arguments": {"seeds": [seed], "strategies": ["random"]},
    ...                 "models": {"segmenter_S": {"max_steps": 1000}},
    ...                 "versions": {"torch_cpu_capability": cpu}}
    ...     _ = (root / f"s{seed}" / "settings.json").write_text(json.dumps(settings))
    >>> merged_settings([root / "s0", root / "s1"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... versions.torch_cpu_capability is 'AVX2' in ... but 'AVX512' in ...
    >>> merged = merged_settings([root / "s0", root / "s1"], allow_machines=True)
    >>> merged["arguments"]["seeds"], len(merged["machines"])
    ([0, 1], 2)
    """
    if not folders:
        raise ValueError("folders is empty; pass the output folders of the runs to join")
    loaded = [(Path(folder), read_settings(Path(folder))) for folder in folders]
    flats = [_flatten(settings) for _, settings in loaded]
    first_folder, first = loaded[0]
    first_flat = flats[0]
    machines_differ = False
    for (folder, _), flat in zip(loaded[1:], flats[1:], strict=True):
        for key in sorted(set(first_flat) | set(flat)):
            if _is_per_run(key):
                continue
            first_value = _comparable(key, first_flat.get(key, _MISSING))
            value = _comparable(key, flat.get(key, _MISSING))
            if first_value == value:
                continue
            name = ".".join(key)
            if key in MACHINE_SETTINGS:
                if allow_machines:
                    machines_differ = True
                    continue
                raise ValueError(
                    f"the runs ran on different machines: {name} is {first_value!r} in "
                    f"{first_folder} but {value!r} in {folder}, so one seed's numbers differ "
                    "between them; join runs from one machine, or pass allow_machines=True "
                    "(--allow-machines) when they hold different seeds"
                )
            raise ValueError(
                f"the runs used different settings: {name} is {first_value!r} in "
                f"{first_folder} but {value!r} in {folder}; join only runs of one protocol "
                "(rerun one of them with the other's settings)"
            )
    merged = copy.deepcopy(first)
    for key in ("started", "finished", "seconds"):
        merged.pop(key, None)
    arguments = merged.setdefault("arguments", {})
    arguments["seeds"] = sorted({seed for _, settings in loaded for seed in _seeds(settings)})
    arguments["strategies"] = list(dict.fromkeys(
        name for _, settings in loaded for name in _argument(settings, "strategies") or []))
    arguments["iou_shares"] = sorted({
        share for _, settings in loaded for share in _argument(settings, "iou_shares") or []})
    rounds = [count for _, settings in loaded
              if isinstance(count := _argument(settings, "rounds"), int)]
    if rounds:
        arguments["rounds"] = max(rounds)
    arguments["iou"] = any(_argument(settings, "iou") for _, settings in loaded)
    arguments.pop("out", None)
    split = merged.get("split")
    if isinstance(split, dict):
        for count in ("n_defective_pool", "n_defective_test"):
            per_seed = {seed: number for _, settings in loaded
                        for seed, number in _per_seed(settings, count).items()}
            if per_seed:
                split[count] = {str(seed): per_seed[seed] for seed in sorted(per_seed)}
    merged["merged_from"] = [str(folder) for folder, _ in loaded]
    retrained = merged.get("retrained")
    if isinstance(retrained, dict):  # S trained again seed by seed: one record of the changes
        for key in ("seconds", "finished"):
            retrained.pop(key, None)
        sources = list(dict.fromkeys(str(settings.get("retrained", {}).get("from"))
                                     for _, settings in loaded))
        retrained["from"] = sources[0] if len(sources) == 1 else sources
    if machines_differ:
        merged["machines"] = {
            str(folder): {".".join(key): flat.get(key, _MISSING) for key in MACHINE_SETTINGS}
            for (folder, _), flat in zip(loaded, flats, strict=True)}
    return merged


def read_settings(folder: str | Path) -> dict[str, Any]:
    """The ``settings.json`` a benchmark run (or a join of runs) wrote into ``folder``.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    settings : dict

    Raises
    ------
    ValueError
        When the folder has no ``settings.json`` or it holds no JSON object.
    """
    folder = Path(folder)
    path = folder / "settings.json"
    if not path.is_file():
        raise ValueError(
            f"{folder} has no settings.json, so it cannot be checked against the other runs; "
            "pass the folder that python -m sid4ds.evaluation --out wrote"
        )
    settings = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(settings, dict):
        raise ValueError(f"{path} holds {type(settings).__name__}, expected a JSON object")
    return settings


def _flatten(settings: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for name, value in settings.items():
        key = (*prefix, str(name))
        if isinstance(value, dict) and key not in PER_RUN_SETTINGS:
            flat.update(_flatten(value, key))
        else:
            flat[key] = value
    return flat


def _is_per_run(key: tuple[str, ...]) -> bool:
    return any(key[:len(prefix)] == prefix for prefix in PER_RUN_SETTINGS)


def _comparable(key: tuple[str, ...], value: Any) -> Any:
    if key in _FILE_SETTINGS and isinstance(value, str):
        return Path(value).name
    return value


def _argument(settings: dict[str, Any], name: str) -> Any:
    return settings.get("arguments", {}).get(name)


def _seeds(settings: dict[str, Any]) -> list[int]:
    return list(_argument(settings, "seeds") or [])


def _per_seed(settings: dict[str, Any], count: str) -> dict[int, Any]:
    """A per-seed count of the split: a list in the order of the seeds, or a joined dict."""
    value = settings.get("split", {}).get(count)
    if isinstance(value, dict):
        return {int(seed): number for seed, number in value.items()}
    if isinstance(value, list):
        return dict(zip(_seeds(settings), value, strict=False))
    return {}


def machine_versions() -> dict[str, str]:
    """The versions and the machine a run records in its settings (``"versions"``).

    Runs on machines that differ in torch's CPU kernels (``torch_cpu_capability``) or thread
    count differ in the last bits of every sum, and S's training amplifies that
    (docs/benchmarks.md), so :func:`merged_settings` joins runs only where these agree.

    Returns
    -------
    versions : dict of str to str

    Examples
    --------
    >>> from sid4ds.evaluation.settings import machine_versions
    >>> sorted(machine_versions())[:3]
    ['cpu', 'numpy', 'platform']
    """
    import sklearn
    import torch

    from sid4ds._version import __version__

    return {"sid4ds": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "cpu": _cpu_model(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": str(torch.get_num_threads())}


def _cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else ``platform``'s guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
