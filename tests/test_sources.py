"""Lesson pairs: notebooks/NN_*.py (jupytext py:percent, what people edit) and notebooks/NN_*.ipynb (the executed
outputs); no stored widget state; the Colab badge and setup cell written from colab.py. Nothing here reads file
timestamps, so a fresh clone gives the same results."""
import hashlib
import os
import shutil
import subprocess
import sys

import jupytext
import nbformat
import pytest
from jupytext.combine import combine_inputs_with_outputs
from jupytext.config import find_jupytext_configuration_file, load_jupytext_config

from course_utils import colab, exercises

NOTEBOOKS = exercises.NOTEBOOKS
LESSONS = exercises.solution_notebooks()
FMT = "py:percent"
OLD_SLUG = colab.REPO_URL.removeprefix("https://github.com/")


def config_for(path):
    """The configuration `jupytext --sync <path>` uses: the repository's jupytext.toml."""
    assert find_jupytext_configuration_file(str(path)) == str(exercises.ROOT / "jupytext.toml")
    return load_jupytext_config(str(path))


def as_file(text):
    return text if text.endswith("\n") else text + "\n"  # what jupytext.write adds


def cell_view(nb):
    """What the .py must carry by itself: cell types, sources, tags and `jupyter` (collapsed solutions)."""
    return [(c.cell_type, c.source, c.metadata.get("tags", []), c.metadata.get("jupyter")) for c in nb.cells]


def files_digest(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def notebooks_copy(tmp_path):
    """A copy of notebooks/ (lessons, .py sources, student copies) next to a copy of jupytext.toml."""
    shutil.copy(exercises.ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path / "notebooks"


def test_every_lesson_has_its_py_source_and_every_py_source_its_lesson():
    ipynb = {p.stem for p in NOTEBOOKS.glob(f"{exercises.LESSON_GLOB}.ipynb")}
    py = {p.stem for p in NOTEBOOKS.glob(f"{exercises.LESSON_GLOB}.py")}
    assert ipynb and ipynb == py, f"unpaired: {sorted(ipynb ^ py)}; run `make sync`"
    assert not list(exercises.EXERCISES.glob("*.py")), "student copies are not paired"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_py_source_is_in_sync_with_its_notebook(path):
    want = jupytext.writes(jupytext.read(path), fmt=FMT, config=config_for(path))
    assert path.with_suffix(".py").read_text() == as_file(want), f"{path.name} and its .py differ: run `make sync`"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_py_source_round_trips_to_the_same_notebook(path):
    """Reading the .py back (what `jupytext --sync` does when the .py is newer) gives the stored .ipynb byte for
    byte: cell ids, tags, collapsed solutions, outputs, execution counts. The .py alone carries tags and `jupyter`."""
    config = config_for(path)
    from_py = jupytext.read(path.with_suffix(".py"), fmt=FMT, config=config)
    stored = jupytext.read(path)
    assert cell_view(from_py) == cell_view(stored)
    merged = combine_inputs_with_outputs(from_py, jupytext.read(path), fmt=FMT)
    assert as_file(jupytext.writes(merged, fmt="ipynb")) == path.read_text()
    assert stored.metadata["jupytext"] == exercises.pairing_metadata(config)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_no_widget_state_is_stored(path):
    lesson, student = nbformat.read(path, as_version=4), nbformat.read(exercises.EXERCISES / path.name, as_version=4)
    assert "widgets" not in lesson.metadata and "widgets" not in student.metadata
    assert lesson.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert "jupytext" not in student.metadata, "the student copy must not be paired with a .py"


def test_badge_and_setup_cell_follow_colab_repo_url(notebooks_copy, monkeypatch):
    real = files_digest(NOTEBOOKS)
    monkeypatch.setattr(colab, "REPO_URL", "https://github.com/someone-else/clip-course-fork")
    assert exercises.main(["--notebooks", str(notebooks_copy)]) == 0
    for path in LESSONS:
        lesson = nbformat.read(notebooks_copy / path.name, as_version=4)
        student = nbformat.read(notebooks_copy / "exercises" / path.name, as_version=4)
        for nb, badge in ((lesson, f"notebooks/{path.name}"), (student, f"notebooks/exercises/{path.name}")):
            first_md = next(c for c in nb.cells if c.cell_type == "markdown" and "Open In Colab" in c.source)
            assert colab.colab_badge(badge) in first_md.source
            assert next(c for c in nb.cells if c.cell_type == "code").source == colab.setup_cell_source()
        source = (notebooks_copy / path.name).with_suffix(".py").read_text()
        assert colab.colab_badge(f"notebooks/{path.name}") in source
        from_source = jupytext.reads(source, fmt="py:percent")  # its shell lines are commented out in the .py
        assert next(c for c in from_source.cells if c.cell_type == "code").source == colab.setup_cell_source()
        for text in ((notebooks_copy / path.name).read_text(), (notebooks_copy / "exercises" / path.name).read_text(),
                     source):
            assert OLD_SLUG not in text
    assert exercises.main(["--check", "--notebooks", str(notebooks_copy)]) == 0
    assert files_digest(NOTEBOOKS) == real, "the test must not touch the real notebooks"


def test_pair_edited_apart_is_refused_then_synced_by_jupytext(notebooks_copy, capsys):
    """The generator never overwrites .py edits; `jupytext --sync` (make sync's first step) takes them in."""
    lesson = notebooks_copy / LESSONS[0].name
    source = lesson.with_suffix(".py")
    edited = source.read_text().replace("**What you will be able to do", "**EDITED: What you will be able to do", 1)
    assert edited != source.read_text()
    source.write_text(edited)
    before = files_digest(notebooks_copy)
    assert exercises.main(["--notebooks", str(notebooks_copy)]) == 1
    assert "make sync" in capsys.readouterr().out
    assert files_digest(notebooks_copy) == before
    stat = lesson.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 10))  # the .py is the newer side, as after editing it
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(lesson)], check=True)
    assert exercises.main(["--notebooks", str(notebooks_copy)]) == 0
    assert source.read_text() == edited
    student = nbformat.read(notebooks_copy / "exercises" / lesson.name, as_version=4)
    assert "**EDITED: What you will be able to do" in student.cells[1].source
    old, new = nbformat.read(LESSONS[0], as_version=4), nbformat.read(lesson, as_version=4)
    assert [(c.id, c.get("outputs")) for c in new.cells] == [(c.id, c.get("outputs")) for c in old.cells]
