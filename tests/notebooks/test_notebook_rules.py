"""The notebook contract (DESIGN rule 2), checked statically on every notebook in `notebooks/`.

A literals-only `parameters` cell, no function or class definitions (they belong in `arena_lib`), outputs
stripped in git, the project kernel, and the full set the research issue names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from tests.notebooks.conftest import NOTEBOOKS

EXPECTED = {
    "01_data_quality",
    "10_feature_engineering",
    "20_train_xgboost",
    "21_train_keras",
    "30_llm_prompt_lab",
    "40_validate_strategy",
    "50_arena_report",
}
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_research_set_is_complete() -> None:
    assert {p.stem for p in PATHS} == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_parameters_cell_holds_literals_only(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in _code(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert _code(nb).index(tagged[0]) == 0, "the parameters cell is the first code cell"
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign), f"only assignments in the parameters cell, got {ast.dump(node)[:60]}"
        ast.literal_eval(node.value)  # raises on anything but a literal


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_function_or_class_is_defined_and_outputs_are_stripped(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "arena"
    for cell in _code(nb):
        assert cell.outputs == [], "outputs are stripped in git (nbstripout)"
        assert cell.execution_count is None
        defined = [n for n in ast.walk(ast.parse(cell.source)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"promotable notebooks define no function or class: {[n.name for n in defined]}"
