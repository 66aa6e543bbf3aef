"""The import rules of docs/ARCHITECTURE.md, checked over every import statement of the code
(module level and inside functions alike):

- only ``bn_core/nn/`` imports TensorFlow or Keras;
- nothing in ``bn_core/`` imports Streamlit;
- ``pages/`` and ``app.py`` never import ``bn_core.nn``;
- imports point down the layers: bottom (config, constants, variants, results) <- data <- nn
  <- runs | analysis <- views <- cli, pages; runs and analysis are siblings that never import
  each other;
- ``bn_core/runs/`` is three rooms, store <- replays <- execution, and code outside it imports
  a room only through its facade (the names in the room's ``__init__.__all__``);
- in ``tests/``, no file imports from a test file (``test_*.py``) other than itself, so each
  test file runs alone.

The checker reads the sources with ``ast`` (it never imports them), so a lazy import inside a
function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each room of bn_core with its rank: a module may import rooms of lower or equal rank, never
# a sibling listed in SIBLINGS. Modules directly in bn_core/ are the bottom.
RANKS = {"": 0, "data": 1, "nn": 2, "runs": 3, "analysis": 3, "views": 4, "cli": 5}
SIBLINGS = {("runs", "analysis"), ("analysis", "runs")}
TF_ROOTS = ("tensorflow", "keras", "tf_keras")
# The rooms of bn_core/runs with their ranks (imports point down here too).
RUNS_RANKS = {"store": 0, "replays": 1, "execution": 2}


def facade(run_room: str) -> set[str]:
    """The names a runs room's facade exports (its ``__init__``'s ``__all__``), read with ast."""
    tree = ast.parse((ROOT / "bn_core" / "runs" / run_room / "__init__.py").read_text("utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def runs_room(module: str) -> str | None:
    """'store' for bn_core.runs.store.schema; None outside bn_core.runs' rooms."""
    parts = module.split(".")
    if parts[:2] != ["bn_core", "runs"] or len(parts) < 3:
        return None
    return parts[2]


def source_files() -> list[Path]:
    files = sorted((ROOT / "bn_core").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    return [*files, ROOT / "app.py"]


def module_name(path: Path) -> str:
    """'bn_core.runs.store.run_store' for bn_core/runs/store/run_store.py; 'pages.train', 'app'."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` statement names, anywhere in the file;
    for ``from pkg import name`` also ``pkg.name`` (a submodule or an attribute: both count)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*package, base] if base else package)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def room(module: str) -> str | None:
    """The bn_core room a module belongs to ('' for the bottom), None outside bn_core."""
    parts = module.split(".")
    if parts[0] != "bn_core":
        return None
    if module == "bn_core.__main__":  # ``python -m bn_core``: the command line's entry point
        return "cli"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKS):
        return parts[1] if parts[1] in RANKS else ""
    return ""


def violations(path: Path, source: str) -> list[str]:
    """Each broken rule of one file, as 'file: imports X (why)'."""
    module = module_name(path)
    rel = path.relative_to(ROOT).as_posix()
    mine = room(module)
    found = []
    for name in imported_modules(source, module):
        top = name.split(".")[0]
        if top in TF_ROOTS and mine != "nn":
            found.append(f"{rel}: imports {name} (TensorFlow/Keras only in bn_core/nn/)")
        if top == "streamlit" and mine is not None:
            found.append(f"{rel}: imports {name} (bn_core never imports Streamlit)")
        found += _runs_violations(rel, module, name)
        target = room(name)
        if target is None:
            continue
        if mine is None:  # pages/ and app.py
            if target == "nn":
                found.append(f"{rel}: imports {name} (pages never import bn_core.nn)")
            continue
        if mine == "cli" and name == "bn_core.cli":  # the package itself
            continue
        if RANKS[target] > RANKS[mine] or (mine, target) in SIBLINGS:
            found.append(f"{rel}: imports {name} (bn_core.{mine or '*'} may not import upward)")
    return sorted(set(found))


def _runs_violations(rel: str, module: str, name: str) -> list[str]:
    """The rules inside bn_core/runs (rooms point down) and around it (facades only)."""
    target = runs_room(name)
    if target is None:
        return []
    mine = runs_room(module)
    if target not in RUNS_RANKS:
        return [f"{rel}: imports {name} (bn_core.runs has the rooms {', '.join(RUNS_RANKS)})"]
    if mine is not None:
        if mine in RUNS_RANKS and RUNS_RANKS[target] > RUNS_RANKS[mine]:
            return [f"{rel}: imports {name} (runs.{mine} may not import upward)"]
        return []
    parts = name.split(".")
    if len(parts) == 3 or (len(parts) == 4 and parts[3] in facade(target)):
        return []
    return [f"{rel}: imports {name} (outside bn_core.runs, only a room's facade)"]


def test_the_tree_has_every_room():
    rooms = {room(module_name(p)) for p in source_files()} - {None}
    assert rooms == set(RANKS)


def test_every_import_points_down():
    broken = [v for path in source_files() for v in violations(path, path.read_text("utf-8"))]
    assert broken == []


@pytest.mark.parametrize(
    "rel, source, why",
    [
        ("bn_core/runs/store/run_store.py", "import tensorflow as tf\n", "TensorFlow/Keras only"),
        ("bn_core/data/search.py", "def f():\n    import keras\n", "TensorFlow/Keras only"),
        ("bn_core/views/runs.py", "import streamlit as st\n", "never imports Streamlit"),
        ("pages/train.py", "from bn_core.nn import training\n", "pages never import"),
        ("pages/train.py", "from bn_core.nn.training import train\n", "pages never import"),
        ("bn_core/config.py", "from bn_core.data import DATASETS\n", "may not import upward"),
        ("bn_core/nn/probes.py", "from bn_core.views import probes\n", "may not import upward"),
        ("bn_core/analysis/x.py", "from bn_core.runs.store import RunStore\n", "upward"),
        ("bn_core/runs/x.py", "def f():\n    from bn_core.analysis import study\n", "upward"),
        ("bn_core/data/x.py", "from ..nn import model\n", "may not import upward"),
        ("pages/runs.py", "from bn_core.runs.store.schema import connect\n", "facade"),
        ("bn_core/cli/x.py", "def f():\n    import bn_core.runs.execution.worker\n", "facade"),
        ("bn_core/views/x.py", "from bn_core.runs.store import transaction\n", "facade"),
        ("bn_core/runs/store/x.py", "from bn_core.runs.execution import caps\n", "upward"),
        ("bn_core/runs/replays/x.py", "from bn_core.runs.execution.runner import x\n", "upward"),
        ("bn_core/cli/x.py", "from bn_core.runs.worker import main\n", "has the rooms"),
    ],
)
def test_the_checker_catches(rel, source, why):
    """The rules are not vacuous: each kind of wrong import, lazy ones included, is reported."""
    found = violations(ROOT / rel, source)
    assert found and all(why in line for line in found)


@pytest.mark.parametrize(
    "rel, source",
    [
        ("bn_core/nn/training.py", "import tensorflow as tf\nfrom bn_core.data import load\n"),
        ("bn_core/views/runs.py", "from bn_core.runs.store import RunRecord\n"),
        ("pages/window.py", "from bn_core.runs import replays\n"),
        ("bn_core/runs/execution/runner.py", "from bn_core.runs.store.schema import connect\n"),
        ("bn_core/cli/main.py", "from bn_core.cli import train\nfrom bn_core.nn import model\n"),
        ("pages/runs.py", "import streamlit\nfrom bn_core.views import runs\n"),
        (
            "bn_core/runs/execution/worker.py",
            "def f():\n    from bn_core.nn.training import train\n",
        ),
    ],
)
def test_the_checker_allows(rel, source):
    assert violations(ROOT / rel, source) == []


# -- file size -----------------------------------------------------------------------------------

MAX_LINES = 300  # a module of bn_core/ or pages/ longer than this says why, in its docstring
OVER_MARKER = "(Over 300 lines:"  # the line that starts the reason, e.g. "(Over 300 lines: ...)"


def size_problem(rel: str, source: str) -> str | None:
    """'rel: N lines' for a module over ``MAX_LINES`` whose docstring has no line starting
    with ``OVER_MARKER`` (the one-line reason it is one piece); None when it is fine."""
    lines = source.count("\n") + (not source.endswith("\n") and bool(source))
    if lines <= MAX_LINES:
        return None
    doc = ast.get_docstring(ast.parse(source)) or ""
    if any(line.strip().startswith(OVER_MARKER) for line in doc.splitlines()):
        return None
    return f"{rel}: {lines} lines, and no {OVER_MARKER!r} line in its docstring saying why"


def test_no_module_is_over_300_lines_without_a_reason():
    """Small files: a module over 300 lines is split along a seam, or says at the top of its
    docstring why it is one piece (pages aim at ~150 lines)."""
    files = sorted((ROOT / "bn_core").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    found = [size_problem(p.relative_to(ROOT).as_posix(), p.read_text("utf-8")) for p in files]
    assert [problem for problem in found if problem] == []


def test_the_size_check_catches_a_long_module_without_a_reason():
    body = "x = 1\n" * MAX_LINES
    assert size_problem("bn_core/x.py", body) is None  # exactly 300: fine
    assert "301 lines" in size_problem("bn_core/x.py", body + "y = 2\n")
    said = '"""Long.\n(Over 300 lines: one subject.)\n"""\n' + body
    assert size_problem("bn_core/x.py", said) is None
    elsewhere = '"""Long."""\n# (Over 300 lines: not in the docstring)\n' + body
    assert size_problem("bn_core/x.py", elsewhere) is not None
    mid_line = '"""Long, and (Over 300 lines: not at a line start).\n"""\n' + body
    assert size_problem("bn_core/x.py", mid_line) is not None


# -- test files ----------------------------------------------------------------------------------


def named_test_file(name: str) -> str | None:
    """The test file a dotted import names ('tests.test_x' for 'tests.test_x.helper', 'test_x'
    for a bare 'test_x'), None when it names none."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.startswith("test_") and (i == 0 or parts[0] == "tests"):
            return ".".join(parts[: i + 1])
    return None


def cross_test_imports(path: Path, source: str) -> list[str]:
    """Each import of ``path`` (anywhere under tests/) from a test file other than itself, as
    'file: imports X'. Imports of the file itself (a subprocess script reading its own helpers)
    are fine."""
    module = module_name(path)
    own = {module, module.rsplit(".", 1)[-1]}
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for name in imported_modules(source, module):
        target = named_test_file(name)
        if target is not None and target not in own:
            why = "shared helpers go in tests/helpers.py or a tests/*_helpers.py"
            found.append(f"{rel}: imports {target} ({why})")
    return sorted(set(found))


def test_no_test_file_imports_another():
    """Every test file runs alone: what two test files share lives in conftest.py, helpers.py,
    browser.py or a tests/*_helpers.py module, never in a test file the other imports."""
    files = sorted((ROOT / "tests").rglob("*.py"))
    broken = [v for path in files for v in cross_test_imports(path, path.read_text("utf-8"))]
    assert broken == []


@pytest.mark.parametrize(
    "rel, source",
    [
        ("tests/test_a.py", "from tests.test_b import helper\n"),
        ("tests/test_a.py", "def f():\n    from tests.reliability.test_b import helper\n"),
        ("tests/test_a.py", "import tests.test_b\n"),
        ("tests/test_a.py", "from tests import test_b\n"),
        ("tests/test_a.py", "from . import test_b\n"),
        ("tests/test_a.py", "from .test_b import helper\n"),
        ("tests/test_a.py", "import test_b\n"),
        ("tests/reliability/test_a.py", "from tests.test_a import helper\n"),
        ("tests/helpers.py", "from tests.test_b import helper\n"),
    ],
)
def test_the_test_file_check_catches(rel, source):
    assert cross_test_imports(ROOT / rel, source) != []


@pytest.mark.parametrize(
    "rel, source",
    [
        ("tests/test_a.py", "from tests.helpers import result\nfrom tests import helpers\n"),
        ("tests/test_a.py", "def f():\n    from tests.test_a import seed\n"),
        ("tests/test_a.py", "from tests.conftest import f32_atol\nimport numpy.testing\n"),
        ("tests/reliability/test_a.py", "from tests.store_helpers import old_store\n"),
    ],
)
def test_the_test_file_check_allows(rel, source):
    assert cross_test_imports(ROOT / rel, source) == []
