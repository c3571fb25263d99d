"""Write each example notebook from its script twin, or check that they agree.

The scripts (``NN_name.py``) are the source: cells start with a ``# %%`` line, and
``# %% [markdown]`` cells hold Markdown as ``# ``-prefixed comment lines (the "percent"
format that VS Code, Spyder and jupytext read). The notebooks are written without
outputs, with fixed cell ids, so regenerating an unchanged script changes nothing.

Usage, from the repository root::

    python examples/sync_notebooks.py          # rewrite every NN_*.ipynb from its .py
    python examples/sync_notebooks.py --check  # exit 1 if a notebook differs from its .py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def script_cells(source: str) -> list[tuple[str, str]]:
    """Split a percent-format script into ``(cell_type, text)`` pairs."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if line.strip() == "# %% [markdown]" else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' line: {line!r}")
    result = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
        text = "\n".join(lines).strip("\n")
        if text:
            result.append((kind, text))
    return result


def notebook_from_script(source: str) -> dict:
    """The notebook (nbformat 4.5, as a dict) holding the cells of a script."""
    cells = []
    for number, (kind, text) in enumerate(script_cells(source)):
        lines = text.splitlines(keepends=True)
        cell = {"cell_type": kind, "id": f"cell-{number:02d}", "metadata": {}, "source": lines}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="report notebooks that differ from their scripts; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for script in sorted(EXAMPLES.glob("[0-9][0-9]_*.py")):
        notebook_path = script.with_suffix(".ipynb")
        wanted = render(notebook_from_script(script.read_text(encoding="utf-8")))
        current = notebook_path.read_text(encoding="utf-8") if notebook_path.exists() else None
        if current == wanted:
            continue
        if args.check:
            stale.append(notebook_path.name)
        else:
            notebook_path.write_text(wanted, encoding="utf-8")
            print(f"wrote {notebook_path.name}")
    if stale:
        print("out of date (run python examples/sync_notebooks.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
