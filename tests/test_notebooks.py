"""Notebook structure: student copies up to date, stubs fail their checkers, setup cells, stored outputs."""
import re

import nbformat
import pytest

from course_utils import checks, colab, exercises

NOTEBOOKS = exercises.solution_notebooks()
PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\nfrom einops import rearrange\n"
CHECK_CALL = re.compile(r'check\("([a-z_]+)",\s*([A-Za-z_]\w*)\)')


def load(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def exercises_of(nb):
    """(solution cell, exercise name, function name) for each solution cell and the checker call after it."""
    found = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if exercises.SOLUTION_TAG in tags(cell):
            nxt = next(c for c in cells[i + 1:] if c.cell_type == "code")
            match = CHECK_CALL.search(nxt.source)
            assert match, f"solution cell {cell.id} is not followed by a check(...) cell"
            found.append((cell, match.group(1), match.group(2)))
    return found


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_transformer_by_hand.ipynb"]


def test_student_notebooks_are_up_to_date(capsys):
    assert exercises.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_stub_fails_and_each_solution_passes_its_checker(path, capsys):
    nb = load(path)
    namespace = {}
    exec(PRELUDE, namespace)
    found = exercises_of(nb)
    for cell, name, fn in found:
        assert name in checks.EXERCISES
        stub_ns = dict(namespace)
        exec(exercises.make_stub(cell.source), stub_ns)
        assert checks.check(name, stub_ns[fn]) is False, f"the stub of {name} passes its checker"
        exec(exercises.strip_markers(cell.source), namespace)  # later solutions may use earlier ones
        assert checks.check(name, namespace[fn]) is True, f"the solution of {name} fails its checker"
    out = capsys.readouterr().out
    assert out.count("not implemented yet") == len(found) and out.count("✅") == len(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(path):
    nb = load(path)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown").source
    assert "Open In Colab" in first_md and f"notebooks/{path.name}" in first_md
    assert "Expected time" in first_md and "What you will be able to do" in first_md
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.source == colab.setup_cell_source() and colab.SETUP_TAG in tags(setup)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Summary" in text and "quiz" in text.lower()
    for cell, name, _ in exercises_of(nb):
        header = nb.cells[nb.cells.index(cell) - 1].source
        assert re.search(r"### Exercise \d+ · .*· (🟢|🟡|🔴) \w+ · ~\d+ min", header), f"{name}: header"
        assert "<summary>Hint</summary>" in header, f"{name}: no hint"
        assert cell.metadata.get("jupyter", {}).get("source_hidden"), f"{name}: solution not collapsed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_are_clean(path):
    nb = load(path)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert not any(o.output_type == "error" for o in cell.outputs), f"stored error in {cell.id}"
        if "varies" in tags(cell):
            assert not cell.outputs, f"{cell.id} is tagged 'varies' but has stored outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_at_least_four_checked_exercises(path):
    assert len(exercises_of(load(path))) >= 4


def test_notebook_01_has_enough_exercises_and_checks_its_prints():
    nb = load(NOTEBOOKS[0])
    assert len(exercises_of(nb)) >= 5
    for cell in nb.cells:
        if cell.cell_type == "code" and "print(" in cell.source and "varies" not in tags(cell):
            checked = "nbval-check-output" in tags(cell) or "assert" in cell.source
            assert checked, f"cell {cell.id} prints without a check:\n{cell.source[:200]}"


def test_student_notebook_has_stubs_and_collapsed_solutions_only():
    student = load(exercises.EXERCISES / NOTEBOOKS[0].name)
    sources = "\n".join(c.source for c in student.cells)
    assert exercises.BEGIN not in sources and "NotImplementedError" in sources
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert sources.count("<summary>Show solution</summary>") == len(exercises_of(load(NOTEBOOKS[0])))
    assert "notebooks/exercises/01_transformer_by_hand.ipynb" in student.cells[1].source
