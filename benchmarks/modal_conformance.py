"""modAL's own test suite with ``DefectActiveLearner`` standing in for ``ActiveLearner``.

    python benchmarks/modal_conformance.py PATH/TO/modAL            # a modAL checkout
    python benchmarks/modal_conformance.py PATH/TO/modAL/tests      # or its tests folder
    python benchmarks/modal_conformance.py PATH --reference         # modAL's own learner
    python benchmarks/modal_conformance.py PATH -k TestActiveLearner --results DIR

modAL's tests are not shipped with its package and are not part of sid4ds: check out
https://github.com/modAL-python/modAL (its ``tests/`` folder holds ``core_tests.py``,
``mock.py`` and ``example_tests/``) and pass the path. The script makes
:class:`sid4ds.DefectActiveLearner` modAL's ``ActiveLearner`` before the tests import it:
``modAL.models.ActiveLearner`` and ``modAL.models.learners.ActiveLearner`` name it, and
modAL's ``BayesianOptimizer``, a subclass of ``ActiveLearner``, is rebuilt on it (same
methods, ``DefectActiveLearner`` as its base). So every test that builds an
``ActiveLearner`` (directly, in a ``Committee``, through ``BayesianOptimizer``, or in the
example scripts that ``TestExamples`` imports) runs on ``DefectActiveLearner``; tests of
modAL's other parts run unchanged. It prints one line per test and ``passed N of M``, and
exits with 1 when a test fails. ``--reference`` runs the same tests on modAL's own
``ActiveLearner``, on the same libraries.

modAL-python 0.4.2.1 is modAL's last release (2023) and predates current numpy, pandas and
setuptools in three places that have nothing to do with the learner and would stop its
tests whatever the learner; the script bridges them in this process only (nothing
installed changes, and sid4ds's own code sees none of it):

- ``modAL.expected_error`` annotates a parameter with ``np.float``, an alias numpy 1.24
  removed: the alias is set back to ``float`` when numpy lacks it;
- modAL pins skorch 0.9.0, whose ``__init__`` imports ``pkg_resources``, which setuptools 81
  and later no longer ship: when it cannot be imported, the two names skorch 0.9.0 uses
  (``get_distribution(...).version`` and ``parse_version``) come from ``importlib.metadata``
  and ``packaging``;
- ``modAL.utils.data.data_vstack`` stacks data frames with ``DataFrame.append``, which
  pandas 2 removed: modAL's strategies (``modAL.expected_error``, ``modAL.batch``) get a
  ``data_vstack`` that joins data frames with ``pandas.concat`` (a Series as one row, as
  ``append`` did). modAL's learners keep
  modAL's own (``DefectActiveLearner`` stacks data frames itself).

modAL's own ``ActiveLearner`` also checks data with ``check_X_y(force_all_finite=...)``,
a keyword scikit-learn 1.8 removed; that is left as it is: it is what ``--reference``
measures.

modAL's tests draw from numpy's and Python's global random generators; ``--seed`` seeds
both once before the run (default 0).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib
import importlib.metadata
import json
import platform
import random
import subprocess
import sys
import time
import types
import unittest
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch

import sid4ds
from sid4ds import DefectActiveLearner


def tests_folder(path: Path) -> Path:
    """The folder holding modAL's ``core_tests.py``: ``path`` itself or ``path/tests``."""
    for folder in (path, path / "tests"):
        if (folder / "core_tests.py").is_file():
            return folder
    raise SystemExit(f"no core_tests.py in {path} or {path / 'tests'}: pass a checkout of "
                     f"modAL-python/modAL or its tests folder")


def checkout_commit(folder: Path) -> str | None:
    """The commit of the git checkout holding ``folder``, if it is one."""
    try:
        answer = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                capture_output=True, text=True, check=False)
    except OSError:  # no git
        return None
    return answer.stdout.strip() or None


def bridge_old_modal() -> None:
    """Let modAL 0.4.2.1's tests run on current numpy, pandas and setuptools (see above)."""
    if "float" not in np.__dict__:
        np.float = float  # noqa: NPY001 (numpy 1.24 removed it; modAL.expected_error names it)
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        from packaging.version import parse

        shim = types.ModuleType("pkg_resources")
        shim.parse_version = parse
        shim.get_distribution = lambda name: types.SimpleNamespace(
            version=importlib.metadata.version(name))
        sys.modules["pkg_resources"] = shim

    import pandas as pd
    from modAL import batch, expected_error, utils
    from modAL.utils import data

    modal_vstack = data.data_vstack

    def data_vstack(blocks):  # as DataFrame.append did: a Series joins as one row
        if isinstance(blocks[0], pd.DataFrame):
            return pd.concat([block.to_frame().T if isinstance(block, pd.Series) else block
                              for block in blocks])
        return modal_vstack(blocks)

    for module in (data, utils, batch, expected_error):
        module.data_vstack = data_vstack


def stand_in() -> None:
    """Make ``DefectActiveLearner`` the ``ActiveLearner`` every later import sees."""
    import modAL.models
    import modAL.models.learners

    optimizer = modAL.models.learners.BayesianOptimizer
    namespace = {key: value for key, value in vars(optimizer).items()
                 if key not in ("__dict__", "__weakref__")}
    rebuilt = type(optimizer.__name__, (DefectActiveLearner,), namespace)
    for module in (modAL.models, modAL.models.learners):
        module.ActiveLearner = DefectActiveLearner
        module.BayesianOptimizer = rebuilt


class Outcomes(unittest.TestResult):
    """Keep each test's outcome, seconds and (for failures) the last line of the error."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []

    def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802 (unittest's name)
        super().startTest(test)
        self._started = time.perf_counter()
        self._outcome = ("passed", "")

    def addFailure(self, test, err) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._outcome = ("failed", self._exc_info_to_string(err, test))

    def addError(self, test, err) -> None:  # noqa: N802
        super().addError(test, err)
        self._outcome = ("error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason) -> None:  # noqa: N802
        super().addSkip(test, reason)
        self._outcome = ("skipped", reason)

    def stopTest(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().stopTest(test)
        outcome, detail = self._outcome
        last = detail.strip().splitlines()[-1] if detail.strip() else ""
        row = {"test": test.id().removeprefix("core_tests."), "outcome": outcome,
               "seconds": round(time.perf_counter() - self._started, 2), "error": last}
        self.rows.append(row)
        print(f"{outcome.upper():7s} {row['test']} ({row['seconds']} s)"
              + (f"\n        {last}" if last else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a modAL checkout or its tests folder")
    parser.add_argument("--reference", action="store_true",
                        help="run on modAL's own ActiveLearner instead of DefectActiveLearner")
    parser.add_argument("-k", dest="pattern", action="append", default=None,
                        help="only tests whose name contains this (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seeds numpy's and Python's "
                        "global generators, which modAL's tests draw from")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder for results.csv and settings.json")
    parser.add_argument("--warnings", action="store_true",
                        help="show the libraries' warnings (hidden by default: modAL 0.4.2.1 "
                        "calls many deprecated functions)")
    args = parser.parse_args()
    if not args.warnings:
        warnings.simplefilter("ignore")

    folder = tests_folder(args.path.resolve())
    torch.set_num_threads(1)
    bridge_old_modal()
    if not args.reference:
        stand_in()
    learner = "modAL.models.ActiveLearner" if args.reference else "sid4ds.DefectActiveLearner"
    settings = {
        "core_tests_sha256": hashlib.sha256((folder / "core_tests.py").read_bytes()).hexdigest(),
        "modAL_checkout_commit": checkout_commit(folder), "learner": learner, "seed": args.seed,
        "patterns": args.pattern, "sid4ds": sid4ds.__version__,
        "modAL": importlib.metadata.version("modAL-python"), "scikit-learn": sklearn.__version__,
        "numpy": np.__version__, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.platform(),
    }
    print(f"tests: {folder / 'core_tests.py'}")
    print("\n".join(f"{key}: {value}" for key, value in settings.items()), flush=True)

    sys.path.insert(0, str(folder))
    np.random.seed(args.seed)  # noqa: NPY002 (modAL's tests use the global generator)
    random.seed(args.seed)
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{pattern}*" for pattern in args.pattern]
    suite = loader.loadTestsFromName("core_tests")
    result = Outcomes()
    started = time.perf_counter()
    suite.run(result)
    seconds = time.perf_counter() - started

    passed = sum(row["outcome"] == "passed" for row in result.rows)
    print(f"\npassed {passed} of {len(result.rows)} with {learner} as modAL's ActiveLearner "
          f"({seconds:.0f} s)")
    for row in result.rows:
        if row["outcome"] != "passed":
            print(f"  {row['outcome']}: {row['test']}: {row['error']}")
    if args.results is not None:
        args.results.mkdir(parents=True, exist_ok=True)
        with open(args.results / "results.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["test", "outcome", "seconds", "error"])
            writer.writeheader()
            writer.writerows(result.rows)
        settings.update(passed=passed, total=len(result.rows), seconds=round(seconds, 1))
        (args.results / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return 0 if passed == len(result.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
