"""The example notebooks run, do what their text says, and match their script twins.

Each notebook is executed once, in a fresh Jupyter kernel (nbclient), with one extra cell
appended that prints, as JSON, the variables the checks below need. A cell that raises
fails the test with the notebook's traceback.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("[0-9][0-9]_*.ipynb"))
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT_S = 600


KERNEL = "sid4ds-examples"


@pytest.fixture(scope="module", autouse=True)
def kernel_of_this_python(tmp_path_factory):
    """A Jupyter kernel running this interpreter, with figures shown inline.

    Its own kernel name and ``JUPYTER_PATH`` keep other installed ``python3`` kernels, and a
    ``MPLBACKEND`` set in the environment, out of the way.
    """
    kernels = tmp_path_factory.mktemp("jupyter")
    spec = kernels / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sid4ds examples", "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(kernels))
        yield


def run_notebook(name: str, probe: str, workdir: Path) -> tuple[dict, nbformat.NotebookNode]:
    """Execute every cell of ``examples/<name>.ipynb``, then ``probe``; return its JSON."""
    notebook = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import json as _json\nprint(_json.dumps(" + probe + "))"))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    probe_output = "".join(output.get("text", "") for output in notebook.cells[-1].outputs
                           if output.output_type == "stream")
    return json.loads(probe_output), notebook


def stdout_of(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook's own cells printed (the probe cell left out)."""
    return "".join(output.get("text", "") for cell in notebook.cells[:-1]
                   if cell.cell_type == "code" for output in cell.outputs
                   if output.output_type == "stream")


def n_figures(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells
               if cell.cell_type == "code" for output in cell.outputs)


# --------------------------------------------------------------------------- static checks
def script_cells(source: str) -> list[tuple[str, str]]:
    """``(cell_type, text)`` of a percent-format script (``# %%`` starts a cell)."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        else:
            cells[-1][1].append(line)
    result = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [re.sub(r"^# ?", "", line) for line in lines]
        text = "\n".join(lines).strip("\n")
        if text:
            result.append((kind, text))
    return result


def test_every_notebook_has_a_script_twin():
    assert [path.stem for path in NOTEBOOKS] == [path.stem for path in SCRIPTS]
    assert len(NOTEBOOKS) == 4


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_notebook_and_script_twin_hold_the_same_cells(script):
    notebook = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    nbformat.validate(notebook)
    in_notebook = [(cell.cell_type, cell.source.strip("\n")) for cell in notebook.cells]
    in_script = script_cells(script.read_text(encoding="utf-8"))
    code = [text for kind, text in in_script if kind == "code"]
    assert [text for kind, text in in_notebook if kind == "code"] == code, (
        f"{script.name} and its notebook differ: run python examples/sync_notebooks.py")
    assert in_notebook == in_script, (
        f"{script.name} and its notebook differ: run python examples/sync_notebooks.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_clean(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} holds outputs: run python examples/sync_notebooks.py")
    text = "\n".join(cell.source for cell in notebook.cells)
    text += path.with_suffix(".py").read_text(encoding="utf-8")
    absolute = re.findall(r"""["'](?:/(?:home|tmp|work|Users|root)/|[A-Za-z]:\\)""", text)
    assert absolute == [], f"{path.name} names an absolute path"


# --------------------------------------------------------------------------- execution
def test_01_quickstart(tmp_path):
    result, notebook = run_notebook("01_quickstart", """{
        "rounds": [{"round": r["round"], "strategy": r["strategy"],
                    "defective": r["defective"], "random_expected": r["random_expected"],
                    "picked": r["picked"].tolist()} for r in rounds],
        "n_label": n_label, "n_pool": len(X), "n_defective_total": n_defective_total,
        "n_unlabeled": len(unlabeled), "n_training": len(learner.X_training),
        "training_defective": int(learner.y_training.any(axis=(1, 2)).sum()),
        "picked_defective": [int(is_defective[i]) for r in rounds for i in r["picked"]]}""",
        tmp_path)
    rounds, n_label = result["rounds"], result["n_label"]
    assert [r["strategy"] for r in rounds] == ["msmr_sampling", "sdr_sampling"]
    picked = [index for r in rounds for index in r["picked"]]
    assert all(len(r["picked"]) == n_label for r in rounds)
    assert len(set(picked)) == len(picked), "a round picked an image labelled before"
    assert result["n_unlabeled"] == result["n_pool"] - len(picked)
    # the learner was taught exactly the picked images, and the table counts their defects
    assert result["n_training"] == len(picked)
    assert [r["defective"] for r in rounds] == [
        sum(result["picked_defective"][k * n_label:(k + 1) * n_label]) for k in range(2)]
    assert sum(r["defective"] for r in rounds) == result["training_defective"]
    # random sampling finds the pool's defect share of every image labelled so far
    share = result["n_defective_total"] / result["n_pool"]
    assert [r["random_expected"] for r in rounds] == pytest.approx(
        [n_label * (r["round"] + 1) * share for r in rounds])
    # the cold start does better than the random sampling it is compared with
    assert rounds[0]["defective"] > rounds[0]["random_expected"]
    table = [line for line in stdout_of(notebook).splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == len(rounds), "the table has one row per round"
    found = 0
    for line, r in zip(table, rounds, strict=True):  # the table says what the rounds found
        found += r["defective"]
        assert line == (f"| {r['round']} | {r['strategy']} | {n_label * (r['round'] + 1)} | "
                        f"{r['defective']} | {found} of {result['n_defective_total']} | "
                        f"{r['random_expected']:.1f} |")
    assert n_figures(notebook) == 2


def test_02_swap_into_modal(tmp_path):
    result, notebook = run_notebook("02_swap_into_modal", """{
        "modal_shape": list(classifier_uncertainty(probe, X[:5]).shape),
        "adapter": [len(part) for part in pixel_uncertainty_sampling(
            type("L", (), {"estimator": probe})(), X[:30], n_instances=4)],
        "found_uncertainty": found_uncertainty, "found_sid4ds": found_sid4ds,
        "n_pool_scores": len(sid4ds_learner.pool_scores_),
        "n_training": len(sid4ds_learner.X_training), "n_pool": len(X),
        "n_initial": len(initial)}""", tmp_path)
    # what the notebook explains: modAL's measure gives one value per image column
    assert result["modal_shape"] == [5, 32]
    assert result["adapter"] == [4, 4]
    assert len(result["found_uncertainty"]) == len(result["found_sid4ds"]) == 2
    assert all(0 <= found <= 20 for found in result["found_uncertainty"] + result["found_sid4ds"])
    # two rounds of 20 on top of the initial set; the last query ranked what was left
    assert result["n_training"] == result["n_initial"] + 40
    assert result["n_pool_scores"] == result["n_pool"] - result["n_initial"] - 20
    table = stdout_of(notebook)
    assert re.search(r"^\| total \| \d+ \| \d+ \|$", table, re.MULTILINE)
    assert len(re.findall(r"^\| [12] \| \d+ \| \d+ \|$", table, re.MULTILINE)) == 2


def test_03_inside_sid4ds(tmp_path):
    result, notebook = run_notebook("03_inside_sid4ds", """{
        "errors_shape": list(errors.shape), "n_blocks": msmr_scorer.n_blocks,
        "max_is_msmr": bool(np.allclose(errors.max(axis=1), msmr)),
        "top": top.tolist(), "bottom": bottom.tolist(),
        "top_min": float(msmr[top].min()), "bottom_max": float(msmr[bottom].max()),
        "sdr_where_pseudolabel": bool(np.array_equal(sdr > 0,
                                                     pseudolabels.any(axis=(1, 2)))),
        "adaptive_unmarked_below": bool(((sdr_adaptive[~marked] >= -1)
                                         & (sdr_adaptive[~marked] < 0)).all()),
        "adaptive_keeps_regions": bool(np.allclose(sdr_adaptive[marked], sdr[marked])),
        "n_marked": int(marked.sum()),
        "n_unlabeled": len(unlabeled), "n_pool": len(X),
        "reconstruction_range": [float(reconstruction.min()), float(reconstruction.max())],
        "fit_modes": [msmr_scorer.fit_mode_, sdr_scorer.fit_mode_]}""", tmp_path)
    assert result["errors_shape"] == [result["n_pool"], result["n_blocks"]]
    assert result["max_is_msmr"]
    assert len(result["top"]) == 20 and len(result["bottom"]) == 18
    assert not set(result["top"]) & set(result["bottom"])
    assert result["bottom_max"] <= result["top_min"]
    assert result["sdr_where_pseudolabel"], "E_sdr must be > 0 exactly inside pseudolabels"
    # the default rule: the paper's E_sdr where S marks pixels, the fallback below it
    assert 0 < result["n_marked"] < result["n_unlabeled"]
    assert result["adaptive_unmarked_below"] and result["adaptive_keeps_regions"]
    assert result["n_unlabeled"] == result["n_pool"] - 20
    low, high = result["reconstruction_range"]
    assert 0.0 <= low <= high <= 1.0
    # G was trained from the masks, starting from a copy of M, which stayed self-supervised
    assert result["fit_modes"] == ["self_supervised", "label_guided"]
    assert n_figures(notebook) == 5


def test_04_your_own_images(tmp_path):
    result, notebook = run_notebook("04_your_own_images", """{
        "X_shape": list(X.shape), "masks": masks, "names": names[:2],
        "status": {key: status[key] for key in ("n_images", "n_rounds", "labeled",
                   "defective", "fake_normals", "unlabeled", "waiting")},
        "stages": [r["stage"] for r in status["rounds"]],
        "asked": [r["asked"] for r in status["rounds"]],
        "coco_images": len(coco["images"]), "coco_annotations": len(coco["annotations"]),
        "label_studio_tasks": len(tasks), "png_files": png_files,
        "n_scores": len(scores), "flagged": flagged, "truly_defective": sorted(truly_defective),
        "same_as_predict": same_as_predict, "workdir_removed": not root.exists()}""", tmp_path)
    assert result["X_shape"] == [200, 1, 32, 32]
    assert result["masks"] is None and result["names"] == ["part_000", "part_001"]
    status = result["status"]
    assert result["stages"] == ["cold_start", "iterative"] and result["asked"] == [20, 20]
    assert status["n_rounds"] == 2 and status["labeled"] == 40 and status["waiting"] == []
    assert status["labeled"] + status["fake_normals"] + status["unlabeled"] == status["n_images"]
    # every export holds the labelled images: defective ones with a mask each
    png = result["png_files"]
    assert png["good"] + png["defect"] == status["labeled"]
    assert png["defect"] == png["ground_truth"] == status["defective"]
    assert result["coco_images"] == result["label_studio_tasks"] == status["labeled"]
    assert result["coco_annotations"] >= status["defective"]
    # the model to take home: one score per new image, S finds defective new images better
    # than chance, and the exported model reloads to the same masks
    assert result["n_scores"] == 20
    flagged, defective = set(result["flagged"]), set(result["truly_defective"])
    hit_rate = len(flagged & defective) / len(defective)
    false_alarm_rate = len(flagged - defective) / (20 - len(defective))
    assert hit_rate > false_alarm_rate, (hit_rate, false_alarm_rate)
    assert result["same_as_predict"]
    assert result["workdir_removed"], "the notebook leaves its temporary folder behind"
    assert n_figures(notebook) == 1
