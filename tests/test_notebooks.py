"""Notebook structure: student copies up to date, stubs fail their checkers, setup cells, stored outputs."""
import re

import nbformat
import pytest

from course_utils import checks, colab, exercises

NOTEBOOKS = exercises.solution_notebooks()
PRELUDE = "import math\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\nfrom einops import rearrange\n"
CHECK_CALL = re.compile(r'^(\w+) = check\("([a-z_]+)",\s*\1\)$', re.M)  # the checker hands back what to use


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
            found.append((cell, match.group(2), match.group(1)))
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
        assert checks.verdict(name, stub_ns[fn]) is False, f"the stub of {name} passes its checker"
        exec(exercises.strip_markers(cell.source), namespace)  # later solutions may use earlier ones
        assert checks.verdict(name, namespace[fn]) is True, f"the solution of {name} fails its checker"
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
    further = text.split("## Further reading")[-1] if "## Further reading" in text else ""
    assert "arxiv.org/abs/" in further, f"{path.name}: no Further reading with an arXiv link at the end"
    for cell, name, _ in exercises_of(nb):
        header = nb.cells[nb.cells.index(cell) - 1].source
        assert re.search(r"### Exercise \d+ · .*· (🟢|🟡|🔴) \w+ · ~\d+ min", header), f"{name}: header"
        assert "<summary>Hint 1 · the idea</summary>" in header and "<summary>Hint 2" in header, f"{name}: no tiered hints"
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
    assert student.cells[0].source == exercises.STUDENT_NOTE and "make" not in exercises.STUDENT_NOTE


STUDENT_NOTEBOOKS = sorted(exercises.EXERCISES.glob(f"{exercises.LESSON_GLOB}.ipynb"))


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda p: p.stem)
def test_student_notebook_runs_to_the_end_with_every_exercise_skipped(path):
    """The student copy as a learner gets it, unmodified, offline: every stub fails its checker, the checker hands the
    cells below the reference, and the notebook finishes (COURSE_FAST=1 only shrinks image and scene counts)."""
    from course_utils import preflight
    result = preflight.run_notebook(path, timeout=600, environ={"COURSE_OFFLINE": "1", "COURSE_FAST": "1"}, save_to=None)
    assert result["status"] == "ok", f"{path.name}: {result['status']}"
    text = preflight.outputs_text(result["nb"])
    stubs = len(exercises_of(load(exercises.NOTEBOOKS / path.name)))
    assert text.count("not implemented yet") == stubs, text[:2000]
    assert text.count("the cells below use the course's reference") == stubs


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checker_cells_show_only_the_verdict(path):
    """No stray `True` (or function repr) under a checker: the cell assigns what check() returns."""
    nb = load(path)
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            assert [o.output_type for o in cell.outputs] == ["stream"], f"{cell.id}: {cell.outputs}"
            assert "✅" in cell.outputs[0].text


def _hints(markdown: str) -> str:
    return "\n".join(re.findall(r"<summary>Hint[^<]*</summary>(.*?)</details>", markdown, re.S))


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_hint_gives_the_solution_away(path):
    """Hints stop short of the answer: no line of the solution appears in them, and no code they quote is a
    solution line."""
    nb = load(path)
    for cell, name, _ in exercises_of(nb):
        hints = _squash(_hints(nb.cells[nb.cells.index(cell) - 1].source))
        assert hints, f"{name}: no hint"
        body = exercises.strip_markers(cell.source).splitlines()[1:]  # the lines under `def ...:`
        for line in body:  # each solution line's expression: without `return`, or the name it is assigned to
            code = re.sub(r"^(return|[\w,]+(\[[^\]]*\])?=(?!=))", "", _squash(line.split("#")[0]))
            if len(code) >= 12:
                assert code not in hints, f"{name}: the hint quotes the solution line {line.strip()!r}"
        for quoted in re.findall(r"`([^`]+)`", _hints(nb.cells[nb.cells.index(cell) - 1].source)):
            q = _squash(quoted)
            if len(q) >= 16:
                assert not any(q in _squash(line.split("#")[0]) for line in body), \
                    f"{name}: the hint quotes {quoted!r} from the solution"
