"""The documentation builds with warnings as errors, and the public API is documented.

The Sphinx build runs once (in a copy of docs/, README.md, CHANGELOG.md and the benchmark
results the pages show, so the files autosummary generates stay out of the source tree);
the tests below check what it wrote.
The docstring checks read each public object's numpydoc sections with numpydoc's parser.
"""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from numpydoc.docscrape import NumpyDocString

import sid4ds

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ["index", "getting_started", "workflow", "user_guide", "production_line", "method",
         "benchmarks", "architecture", "api", "changelog"]
DOCUMENTED_MODULES = ["datasets", "session", "baselines", "nn"]
# Every module without a leading underscore in its path (``__main__`` modules aside).
PUBLIC_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(sid4ds.__path__, "sid4ds.")
    if not any(part.startswith("_") for part in info.name.split(".")[1:]))

# Known gaps in other modules' docstrings, as (object, what is missing). Each entry must
# still be a gap: fixing a docstring makes its entry fail here until it is removed.
# The methods of a class's sid4ds parts (mixins) are checked too; TorchEstimator's
# ``images_per_batch`` (``sid4ds/estimators/_inference.py``) has no Parameters section yet.
ALLOWED_GAPS: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- the build
@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """Build the HTML docs once with ``sphinx-build -W``; return the output folder."""
    work = tmp_path_factory.mktemp("docs_build")
    shutil.copytree(DOCS, work / "docs", ignore=shutil.ignore_patterns("_build", "generated"))
    for name in ("README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, work / name)
    shutil.copytree(RESULTS, work / "benchmarks" / "results")  # plots the pages embed
    output = work / "html"
    completed = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(work / "docs"), str(output)],
        capture_output=True, text=True, cwd=work, timeout=600,
    )
    assert completed.returncode == 0, (
        f"sphinx-build -W failed (exit {completed.returncode}):\n"
        f"{completed.stderr[-6000:]}\n{completed.stdout[-2000:]}")
    return output


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page, tags removed and Sphinx's typographic quotes
    (``S’s``, ``“word”``) made plain again, as they are in the Markdown."""
    markup = (site / f"{page}.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    return text.translate(str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'}))


def test_docs_build_every_page(built_site):
    for page in PAGES:
        assert (built_site / f"{page}.html").is_file(), f"{page} was not built"
    index = (built_site / "index.html").read_text(encoding="utf-8")
    for page in PAGES[1:]:
        assert f'href="{page}.html' in index, f"the index does not link to {page}"


def test_getting_started_shows_the_readme_commands(built_site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL).group(1)
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, "the README's set-up block should hold its two commands"
    text = page_text(built_site, "getting_started")
    for command in commands:
        assert command in text, f"getting started lacks the README's {command!r}"


def test_benchmark_results_live_beside_the_benchmarks_not_in_the_docs():
    """docs/ holds pages only; every run folder under benchmarks/results/ has a row in the
    index there, and every result a page cites exists."""
    pages = {".md", ".rst", ".py", ".html"}
    stray = [str(path.relative_to(ROOT)) for path in DOCS.rglob("*") if path.is_file()
             and path.suffix not in pages and not {"_build", "generated", "__pycache__"}
             & set(path.relative_to(DOCS).parts)]
    assert stray == [], f"move these to benchmarks/results/: {stray}"
    index = (RESULTS / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", index, re.MULTILINE))
    folders = {path.name for path in RESULTS.iterdir() if path.is_dir()}
    assert folders - listed == set(), "add a row to benchmarks/results/README.md"
    assert listed - folders == set(), "benchmarks/results/README.md lists missing folders"
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        for cited in re.findall(r"benchmarks/results/([\w.*-]+)", page.read_text("utf-8")):
            assert list(RESULTS.glob(cited)), f"{page.name} cites a missing result {cited}"


def test_changelog_page_is_the_changelog(built_site):
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    text = " ".join(page_text(built_site, "changelog").split())
    entries = re.findall(r"^- (.+)$", changelog, re.MULTILINE)
    assert entries
    for entry in entries:
        words = " ".join(re.sub(r"[`*]", "", entry).split()[:4])
        assert words in text, f"the changelog page lacks the entry {entry!r}"


def test_api_reference_has_a_page_for_every_public_name(built_site):
    generated = built_site / "generated"
    missing = [name for name in sid4ds.__all__ if name != "__version__"
               and not (generated / f"sid4ds.{name}.html").is_file()]
    assert missing == [], f"add these to docs/api.rst: {missing}"
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(f"sid4ds.{module_name}")
        assert (generated / f"sid4ds.{module_name}.html").is_file()
        for name in module.__all__:
            own_page = generated / f"sid4ds.{module_name}.{name}.html"
            top_level_page = generated / f"sid4ds.{name}.html"
            assert own_page.is_file() or (name in sid4ds.__all__ and top_level_page.is_file()), (
                f"sid4ds.{module_name}.{name} has no API page")


def test_api_reference_has_a_page_for_every_public_module(built_site):
    """Each public module has a page that documents, or links to the one page of, every
    name of its ``__all__``: functions, classes and constants alike."""
    generated = built_site / "generated"
    for module_name in PUBLIC_MODULES:
        page = generated / f"{module_name}.html"
        assert page.is_file(), f"add {module_name} to docs/api.rst and API_MODULES in docs/conf.py"
        markup = page.read_text(encoding="utf-8")
        for name in importlib.import_module(module_name).__all__:
            targets = re.findall(rf'href="([^"#]*\.{re.escape(name)}\.html)[#"]', markup)
            assert targets, f"the page of {module_name} neither documents nor links {name}"
            assert (generated / targets[0]).is_file(), f"{targets[0]} was not built"


def test_constants_show_their_own_description(built_site):
    text = page_text(built_site / "generated", "sid4ds.datasets.DEFECT_KINDS")
    assert "make_defect_images" in text  # the #: comment where the constant is defined
    for page in (built_site / "generated").glob("*.html"):
        markup = page.read_text(encoding="utf-8")
        for type_docstring in ("Built-in immutable sequence", "dict() -> new empty dictionary",
                               "str(object='') -> str", "int([x]) -> integer"):
            assert html.escape(type_docstring) not in markup and type_docstring not in markup, (
                f"{page.name} shows the docstring of a constant's type; add a #: comment")


def test_api_pages_show_numpydoc_sections(built_site):
    text = page_text(built_site / "generated", "sid4ds.ReconstructionScorer")
    for section in ("Parameters", "Attributes", "Examples"):
        assert section in text
    assert "score_samples" in text and "block_errors" in text  # methods are documented
    text = page_text(built_site / "generated", "sid4ds.LabelingSession")
    for method in ("add_images", "import_label_studio", "cross_validation"):  # one per part
        assert f"{method}(" in text, f"the LabelingSession page lacks {method}"


# --------------------------------------------------------------------------- architecture
def sid4ds_imports() -> dict[str, set[str]]:
    """What each top-level module (``sid4ds/metrics.py``) or folder (``sid4ds/engine/``) of
    the package imports from sid4ds, at its top or inside a function, as the names of
    modules and folders (``"metrics"``, ``"engine"``; ``"sid4ds"`` for
    ``sid4ds/__init__.py``). A
    folder's imports among its own modules are left out, and so are the ``__main__`` entry
    points, which nothing imports."""
    package = ROOT / "sid4ds"
    imports: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if path.name == "__main__.py":
            continue
        folder = len(relative.parts) > 1
        unit = f"sid4ds/{relative.parts[0]}/" if folder else f"sid4ds/{relative.name}"
        own = relative.parts[0] if folder else path.stem
        found = imports.setdefault(unit, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name == "sid4ds":
                    found.add("sid4ds")
                elif name.startswith("sid4ds.") and name.split(".")[1] != own:
                    found.add(name.split(".")[1])
    return imports


def test_architecture_page_lists_the_imports_of_every_module():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(sid4ds/[^`]+)` \| (.+) \|$", text, re.MULTILINE)
    documented = {unit: set(re.findall(r"`([^`]+)`", imports)) for unit, imports in rows}
    assert documented == sid4ds_imports()


def test_the_import_rules_of_the_architecture_page_hold():
    imports = sid4ds_imports()
    assert not [unit for unit, names in imports.items() if "sid4ds" in names], (
        "a module imports sid4ds/__init__; import from the defining module instead")
    for module in ("_core/validation", "_core/random", "nn/training", "metrics",
                   "ranking/selection"):
        tree = ast.parse((ROOT / "sid4ds" / f"{module}.py").read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not {name for name in imported if name.split(".")[0] == "torch"}, (
            f"sid4ds/{module}.py imports torch")
    units = {unit.removeprefix("sid4ds/").removesuffix("/").removesuffix(".py"): names
             for unit, names in imports.items()}
    done: set[str] = set()

    def visit(unit: str, path: tuple[str, ...]) -> None:
        assert unit not in path, f"import cycle: {' -> '.join((*path, unit))}"
        if unit not in done:
            for name in sorted(units.get(unit, ())):
                visit(name, (*path, unit))
            done.add(unit)

    for unit in units:
        visit(unit, ())


# --------------------------------------------------------------------------- docstrings
def documented_names(doc: NumpyDocString, section: str = "Parameters") -> set[str]:
    """Names in a numpydoc section; ``height, width`` and ``*args, **kwargs`` entries split."""
    return {part.strip().lstrip("*") for entry in doc[section] for part in entry.name.split(",")}


def parse(obj) -> NumpyDocString:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpydoc warns about malformed sections
        return NumpyDocString(inspect.getdoc(obj) or "")


def signature_names(function, bound: bool) -> list[str]:
    names = list(inspect.signature(function).parameters)
    return names[1:] if bound and names[:1] in (["self"], ["cls"]) else names


def docstring_gaps(name: str, obj) -> list[tuple[str, str]]:
    """``(object, what)`` for every parameter missing from its docstring and a missing
    Examples section; raises on a parameter documented that the signature lacks."""
    doc = parse(obj)
    gaps = []
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        parameters: list[str] = []
    elif inspect.isclass(obj):
        parameters = signature_names(obj.__init__, bound=True)
    else:
        parameters = signature_names(obj, bound=False)
    documented = documented_names(doc)
    if inspect.isclass(obj) and hasattr(obj, "__dataclass_fields__"):
        documented |= documented_names(doc, "Attributes")  # a dataclass's fields
    gaps += [(name, parameter) for parameter in parameters if parameter not in documented]
    stale = documented_names(doc) - set(parameters)
    assert not stale, f"{name} documents parameters it does not have: {sorted(stale)}"
    if not any(">>>" in line for line in doc["Examples"]):
        gaps.append((name, "Examples"))
    if inspect.isclass(obj):
        members = {name: member for cls in reversed(obj.__mro__)
                   if cls.__module__.startswith("sid4ds.") for name, member in vars(cls).items()}
        for method_name, member in members.items():  # its own and its sid4ds parts' methods
            function = getattr(member, "__func__", member)
            if method_name.startswith("_") or not inspect.isfunction(function):
                continue
            method_doc = parse(function)
            bound = not isinstance(member, staticmethod)
            gaps += [(f"{name}.{method_name}", parameter)
                     for parameter in signature_names(function, bound)
                     if parameter not in documented_names(method_doc)]
    return gaps


PUBLIC = [name for name in sid4ds.__all__
          if inspect.isfunction(getattr(sid4ds, name)) or inspect.isclass(getattr(sid4ds, name))]


@pytest.mark.parametrize("name", PUBLIC)
def test_public_object_documents_every_parameter_and_has_examples(name):
    gaps = set(docstring_gaps(name, getattr(sid4ds, name)))
    allowed_here = {gap for gap in ALLOWED_GAPS if gap[0].split(".")[0] == name}
    assert gaps - allowed_here == set(), (
        f"undocumented (object, parameter or 'Examples'): {sorted(gaps - allowed_here)}")
    assert allowed_here - gaps == set(), (
        f"fixed, so remove from ALLOWED_GAPS in tests/test_docs.py: {sorted(allowed_here - gaps)}")


def test_allowed_gaps_name_public_objects():
    assert {gap[0].split(".")[0] for gap in ALLOWED_GAPS} <= set(PUBLIC)


def test_docstring_check_finds_a_gap():
    def strategy(learner, X_pool, n_instances=1):
        """Pick images.

        Parameters
        ----------
        learner : object
            The learner.
        X_pool : ndarray of shape (n_pool, n_channels, height, width)
            Images.
        """

    assert docstring_gaps("strategy", strategy) == [
        ("strategy", "n_instances"), ("strategy", "Examples")]
