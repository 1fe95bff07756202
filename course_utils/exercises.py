"""Lessons, their .py sources and the student notebooks: `python -m course_utils.exercises` (make sync).

Each lesson is a pair: notebooks/NN_*.py (jupytext py:percent, the file people edit and review) and
notebooks/NN_*.ipynb (the same cells plus the executed outputs that nbval checks). `make sync` first runs
`jupytext --sync` (the newer side of each pair wins), then this module, which for each lesson
- strips the saved widget state (`metadata.widgets`: learner-dependent output, hundreds of KB);
- writes the "Open in Colab" badge in the first markdown cell from colab.colab_badge() and the first code cell
  from colab.setup_cell_source() (colab.py is the one place the repo URL lives);
- clears the stored outputs that differ between learners: cells tagged "varies" (banners, widgets, timings),
  or every cell if the notebook's metadata says `"inside_clip": {"store_outputs": false}` (mode-dependent notebooks);
- rewrites notebooks/NN_*.py from the .ipynb with jupytext (settings: the repository's jupytext.toml);
- writes notebooks/exercises/NN_*.ipynb where every cell tagged "solution" keeps its code outside
  `# BEGIN SOLUTION` / `# END SOLUTION` and has the inside replaced by `raise NotImplementedError`,
  followed by a collapsed "Show solution" cell; all outputs are cleared, the badge opens the student copy.
It refuses to touch a lesson whose .py and .ipynb hold different cells (edited apart): run `make sync` for that.
`--check` changes nothing and exits 1 if any file is out of date (the tests use it).
`--notebooks DIR` works on another copy of the notebooks folder (the tests use a temporary one).
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from . import assets, colab
from .colab import SETUP_TAG, setup_cell_source

ROOT = assets.ROOT
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = NOTEBOOKS / "exercises"
SOLUTION_TAG = "solution"
VARIES_TAG = "varies"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB_MESSAGE = "Your turn: replace this line with your code, then run the checker cell below."
LESSON_GLOB = "[0-9][0-9]_*"
STUDENT_NOTE = (  # the first cell of every student copy: what a learner needs to know, nothing about the tooling
    "> **Student version.** Each exercise cell is yours to fill in: it raises `NotImplementedError` until you do, and "
    "the checker cell after it tells you what differs. The solution is collapsed under each exercise. Skipping one "
    "is fine: its checker hands the cells below the course's reference, so the notebook still runs to the end."
)
TEXT_FORMAT = "py:percent"  # the paired source of each lesson
PAIRED_FORMATS = f"ipynb,{TEXT_FORMAT}"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)\s]*\)\]\([^)\s]*\)")


def solution_notebooks(folder: Path | None = None) -> list[Path]:
    """The lessons, NN_*.ipynb in notebooks/ (or in `folder`), sorted.

    Used by: main (make sync), preflight and the tests.
    """
    return sorted((NOTEBOOKS if folder is None else Path(folder)).glob(f"{LESSON_GLOB}.ipynb"))


def make_stub(source: str) -> str:
    """Replace each BEGIN/END SOLUTION block by `raise NotImplementedError`, at the block's indentation.

    Used by: student_version (make sync) and tests/test_notebooks.py.
    """
    pattern = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)", re.S | re.M)
    if not pattern.search(source):
        raise ValueError(f"a cell tagged {SOLUTION_TAG!r} has no {BEGIN!r} ... {END!r} block:\n{source[:200]}")
    return pattern.sub(lambda m: f'{m.group(1)}raise NotImplementedError("{STUB_MESSAGE}")\n', source).rstrip("\n")


def strip_markers(source: str) -> str:
    """The cell source without its BEGIN/END SOLUTION marker lines.

    Used by: student_version (make sync) and tests/test_notebooks.py.
    """
    return "\n".join(line for line in source.splitlines() if line.strip() not in {BEGIN, END})


def tags(cell) -> list[str]:
    """A cell's metadata tags, as a list (empty if it has none).

    Used by: sync_setup_cell, clear_varying_outputs and student_version (make sync).
    """
    return list(cell.get("metadata", {}).get("tags", []))


# --- jupytext: the .py half of each lesson ------------------------------------------------------------------------

def jupytext_config(folder: Path | None = None):
    """The jupytext configuration that `jupytext --sync` uses for the lessons in `folder` (found the same way:
    jupytext.toml in the folder or a parent).

    Used by: main (make sync).
    """
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

    folder = NOTEBOOKS if folder is None else Path(folder)
    path = find_jupytext_configuration_file(str(folder))
    if path is None or Path(path).name != "jupytext.toml":
        raise FileNotFoundError(f"no jupytext.toml in {folder} or a parent folder (the repository root has one)")
    return load_jupytext_configuration_file(path)


def pairing_metadata(config) -> dict:
    """A lesson's `jupytext` metadata. Besides the pairing, it holds what jupytext records when it reads the .py
    (the filters, the language), so `jupytext --sync` writes the same .ipynb whichever side of the pair is newer.

    Used by: sync_pairing (make sync) and tests/test_sources.py.
    """
    return {
        "cell_metadata_filter": config.cell_metadata_filter,
        "formats": PAIRED_FORMATS,
        "main_language": "python",
        "notebook_metadata_filter": config.notebook_metadata_filter,
    }


def text_source(nb, config) -> str:
    """The paired .py of a lesson, as `jupytext --sync` writes it.

    Used by: main (make sync).
    """
    import jupytext

    text = jupytext.writes(nb, fmt=TEXT_FORMAT, config=config)
    return text if text.endswith("\n") else text + "\n"


def holds_other_cells(py_text: str, nb, config) -> bool:
    """True if reading the .py into the .ipynb (what `jupytext --sync` does when the .py is newer) would change
    the lesson's cells or metadata: the two were edited apart, and overwriting the .py would lose work.

    Used by: main (make sync).
    """
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    def without_pairing(notebook) -> str:  # the pairing metadata is ours to write
        notebook = copy.deepcopy(notebook)
        notebook.metadata.pop("jupytext", None)
        return nbformat.writes(notebook)

    merged = combine_inputs_with_outputs(
        jupytext.reads(py_text, fmt=TEXT_FORMAT, config=config), copy.deepcopy(nb), fmt=TEXT_FORMAT
    )
    return without_pairing(merged) != without_pairing(nb)


def sync_pairing(nb, config) -> bool:
    """Pair the lesson with its .py. Returns True if the notebook changed.

    Used by: sync_lesson (make sync).
    """
    want = pairing_metadata(config)
    changed = nb.metadata.get("jupytext") != want
    nb.metadata["jupytext"] = want
    return changed


# --- what every lesson gets from colab.py and what it must not store --------------------------------------------

def strip_widget_state(nb) -> bool:
    """Drop the saved ipywidgets state (`metadata.widgets`). Returns True if the notebook changed.

    Used by: sync_lesson (make sync).
    """
    return nb.metadata.pop("widgets", None) is not None


def sync_badge(nb, notebook_path: str) -> bool:
    """Make the badge in the first markdown cell colab.colab_badge(notebook_path); a missing badge goes under the title.
    Returns True if the notebook changed.

    Used by: sync_lesson and student_version (make sync).
    """
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    want = colab.colab_badge(notebook_path)
    if BADGE.search(first.source):
        source = BADGE.sub(lambda _: want, first.source, count=1)
    else:
        title, _, rest = first.source.partition("\n")
        parts = [title, want, rest.strip("\n")] if title.startswith("#") else [want, first.source]
        source = "\n\n".join(part for part in parts if part)
    changed = source != first.source
    first.source = source
    return changed


def sync_setup_cell(nb) -> bool:
    """Make the first code cell the Colab setup cell (a new one goes before it unless it is tagged or starts as one).
    Returns True if the notebook changed.

    Used by: sync_lesson (make sync).
    """
    want = setup_cell_source()
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is None or not (SETUP_TAG in tags(first) or first.source.startswith(want.splitlines()[0])):
        first = nbformat.v4.new_code_cell(want, id=SETUP_TAG)
        nb.cells.insert(next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells)), first)
    changed = first.source != want or SETUP_TAG not in tags(first)
    first.source = want
    first.metadata["tags"] = sorted(set(tags(first)) | {SETUP_TAG})
    first.outputs, first.execution_count = [], None
    return changed


def clear_varying_outputs(nb) -> bool:
    """Drop outputs that would differ between learners. Returns True if the notebook changed.

    Used by: sync_lesson (make sync).
    """
    keep_none = nb.metadata.get("inside_clip", {}).get("store_outputs", True) is False
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (keep_none or VARIES_TAG in tags(cell)) and (cell.outputs or cell.execution_count):
            cell.outputs, cell.execution_count = [], None
            changed = True
    return changed


def sync_lesson(nb, name: str, config) -> bool:
    """Everything a lesson .ipynb gets from this module, in place. Returns True if the notebook changed.

    Used by: main (make sync).
    """
    changed = strip_widget_state(nb)
    changed |= sync_pairing(nb, config)
    changed |= sync_badge(nb, f"notebooks/{name}")
    changed |= sync_setup_cell(nb)
    changed |= clear_varying_outputs(nb)
    return changed


def student_version(nb, source_name: str):
    """The student copy of a lesson: each solution cell becomes a stub plus a collapsed solution; no outputs.

    Used by: main (make sync).
    """
    out = copy.deepcopy(nb)
    for key in ("widgets", "jupytext"):  # no widget state; the student copy is not paired with a .py
        out.metadata.pop(key, None)
    sync_badge(out, f"notebooks/exercises/{source_name}")  # the Colab badge opens the student copy
    cells = [nbformat.v4.new_markdown_cell(STUDENT_NOTE)]
    cells[0].id = "student-version-note"
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if SOLUTION_TAG in tags(cell):
            solution = strip_markers(cell.source)
            cell.source = make_stub(cell.source)
            cell.metadata["tags"] = [t for t in tags(cell) if t != SOLUTION_TAG] + ["exercise-stub"]
            cell.metadata.pop("jupyter", None)  # the stub is shown, not collapsed
            cells.append(cell)
            details = nbformat.v4.new_markdown_cell(
                f"<details><summary>Show solution</summary>\n\n```python\n{solution}\n```\n</details>"
            )
            details.id = f"{cell.id}-sol"[:64]
            cells.append(details)
        else:
            cells.append(cell)
    out.cells = cells
    return out


def _dump(nb) -> str:
    return nbformat.writes(nb) + "\n"


def _show(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder.parent))
    except ValueError:
        return str(path)


READING_WORDS_PER_MINUTE = 100  # careful reading of technical prose with formulas
CODE_LINES_PER_MINUTE = 10  # reading a code cell, running it and looking at what it prints
QUIZ_MINUTES = 5
TASK_MINUTES = re.compile(r"### Exercise \d+ ·[^\n]*· ~(\d+) min|\*\*Open task \(~(\d+) min\)")


def lesson_minutes(nb) -> dict[str, int]:
    """A learner-paced estimate of one lesson, in minutes: its text outside the collapsed hints and answers at
    READING_WORDS_PER_MINUTE, its code (not the solutions) at CODE_LINES_PER_MINUTE, every exercise and open task at
    the time its header states, and QUIZ_MINUTES. An estimate, not an observation: the instructor guide says so.

    Used by: `python -m course_utils.exercises --timings` and tests/test_guide.py (the guide's timetable).
    """
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    words = len(re.findall(r"[A-Za-z]+", re.sub(r"<details>.*?</details>", "", markdown, flags=re.S)))
    code = sum(len(c.source.splitlines()) for c in nb.cells
               if c.cell_type == "code" and SOLUTION_TAG not in tags(c) and SETUP_TAG not in tags(c))
    tasks = sum(int(a or b) for a, b in TASK_MINUTES.findall(markdown))
    reading, running = round(words / READING_WORDS_PER_MINUTE), round(code / CODE_LINES_PER_MINUTE)
    return dict(reading=reading, code=running, tasks=tasks, quiz=QUIZ_MINUTES,
                total=reading + running + tasks + QUIZ_MINUTES)


def main(argv=None) -> int:
    """Sync every lesson, its .py and its student copy (`--check`: only report); returns the exit code.

    Used by: make sync and the tests (tests/test_notebooks.py, tests/test_sources.py).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    parser.add_argument("--notebooks", type=Path, default=None, help="the notebooks folder (default: the repository's)")
    parser.add_argument("--timings", action="store_true", help="print each lesson's estimated minutes; change nothing")
    args = parser.parse_args(argv)
    folder = (NOTEBOOKS if args.notebooks is None else args.notebooks).resolve()
    if args.timings:
        print("| notebook | reading | code | exercises and tasks | quiz | total |\n|---|---|---|---|---|---|")
        for path in solution_notebooks(folder):
            m = lesson_minutes(nbformat.read(path, as_version=4))
            print(f"| {path.stem[:2]} | {m['reading']} | {m['code']} | {m['tasks']} | {m['quiz']} | {m['total']} |")
        return 0
    exercises_dir = folder / "exercises"
    config = jupytext_config(folder)
    lessons = solution_notebooks(folder)
    stale, apart = [], []
    if not args.check:
        exercises_dir.mkdir(exist_ok=True)

    def update(path: Path, text: str) -> None:
        if not path.exists() or path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)

    for path in lessons:
        py_path = path.with_suffix(".py")
        nb = nbformat.read(path, as_version=4)
        if py_path.exists() and holds_other_cells(py_path.read_text(), nb, config):
            apart.append(path)
            continue
        sync_lesson(nb, path.name, config)
        update(path, _dump(nb))
        update(py_path, text_source(nb, config))
        update(exercises_dir / path.name, _dump(student_version(nb, path.name)))
    lesson_names = {p.name for p in lessons}
    for orphan in sorted(exercises_dir.glob("*.ipynb")):
        if orphan.name not in lesson_names:
            stale.append(orphan)
            if not args.check:
                orphan.unlink()
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {_show(path, folder)}")
    for path in apart:
        print(f"{_show(path.with_suffix('.py'), folder)} and {path.name} hold different cells: "
              "run `make sync` (jupytext --sync: the newer file wins), then this command again")
    if args.check and stale:
        print("Run `make sync` to regenerate them.")
    if (args.check and stale) or apart:
        return 1
    if not stale:
        print("lessons, their .py sources and the exercise notebooks are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
