"""Real mode, rehearsed: every notebook executed against stand-in real assets, with no download.

`course_utils.rehearsal` saves random-weight ViT-B/32 and ViT-B/16 checkpoints the way openai ships them
(TorchScript archives, fp16) and a synthetic CIFAR-100 archive in torchvision's format into a cache folder, and
vouches for their checksums through COURSE_ASSETS, the override an instructor would use for their own files. The
kernels see that cache, COURSE_OFFLINE unset, and COURSE_FAST=1, which shrinks the notebooks' image and scene counts
(`env.rehearsal_sized`): this checks that every cell runs at real shapes and labels its numbers rightly, not what
the numbers are (random weights). Each notebook must finish, print a REAL banner (01 and 02 load nothing), and show
no toy-world assumption in its outputs.
"""
import re

import pytest

from course_utils import exercises, preflight, rehearsal

NOTEBOOKS = exercises.solution_notebooks()
# What real-mode output must never contain: the offline model and data, the substitution notices, and ToyCLIP's shapes.
TOY_ANYWHERE = re.compile(r"ToyCLIP|ToyShapes|OFFLINE mode|MIXED mode|substitution:|\b64 px\b|grid 8x8|8 heads")
# Notebooks 03-06 work on CIFAR-100 in real mode: a toy class name there means toy data slipped in.
TOY_CLASS = re.compile(r"\b(red|orange|yellow|pink|brown|green|cyan|blue|purple|gray)[ _](circle|square|triangle|"
                       r"diamond|star|cross|heart|ring|semicircle|arrow)\b")
WARNING = re.compile(r"\b\w*Warning: .*")  # e.g. torch's about TorchScript archives: silenced where they arise
TOY_WORLD_BY_DESIGN = ("02",)  # notebook 02 trains and inspects ToyCLIP in every mode
TOY_SCENES_BY_DESIGN = ("07", "08", "09")  # heatmaps are scored on toy scenes (they come with masks) in every mode


@pytest.fixture(scope="module")
def real_environ(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rehearsal_cache")
    environ = rehearsal.write_rehearsal_cache(folder, models=("ViT-B/32", "ViT-B/16"), n_test=200)
    return {**environ, "COURSE_OFFLINE": None, "COURSE_FAST": "1", "COURSE_MODEL": None}


def problems_in(result: dict, expected_mode: str) -> list[str]:
    """What is wrong with one executed notebook in real mode (empty when all is well)."""
    number = result["notebook"][:2]
    text = preflight.outputs_text(result["nb"])
    found = [] if result["status"] == "ok" else [result["status"]]
    if result["mode"] != expected_mode:
        found.append(f"banner says {result['mode']!r}, expected {expected_mode!r}")
    found += [f"warning in the learner's output: {m.group(0)[:120]!r}" for m in WARNING.finditer(text)][:3]
    if number not in TOY_WORLD_BY_DESIGN:
        found += [f"toy-world output in real mode: {m.group(0)!r}" for m in TOY_ANYWHERE.finditer(text)][:3]
    if number not in TOY_WORLD_BY_DESIGN + TOY_SCENES_BY_DESIGN:
        found += [f"toy class name in real mode: {m.group(0)!r}" for m in TOY_CLASS.finditer(text)][:3]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_real_mode(path, real_environ, tmp_path):
    result = preflight.run_notebook(path, timeout=600, environ=real_environ, save_to=tmp_path)
    expected = "n/a" if path.name[:2] in ("01", "02") else "real"
    assert not problems_in(result, expected), f"{path.name}: " + "; ".join(problems_in(result, expected))


def test_course_model_switches_every_notebook_to_vit_b16(real_environ, tmp_path):
    """COURSE_MODEL chooses the model for the whole course: notebook 04 then describes ViT-B/16's 14x14 grid."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("04"))
    result = preflight.run_notebook(path, timeout=600, environ={**real_environ, "COURSE_MODEL": "ViT-B/16"},
                                    save_to=tmp_path)
    assert not problems_in(result, "real"), problems_in(result, "real")
    text = preflight.outputs_text(result["nb"])
    assert "ViT-B/16 (from cache, unverified" in text and "grid=14" in text


def test_the_checks_catch_a_toy_assumption():
    """The rehearsal's own checks fail on a planted toy-world output, a wrong banner, and a failed cell."""
    fake = {"notebook": "05_x.ipynb", "mode": "real", "status": "ok", "nb": None}
    nb = {"cells": [{"outputs": [{"output_type": "stream", "text": "grid 8x8, a photo of a red star"}]}]}
    assert len(problems_in({**fake, "nb": nb}, "real")) == 2
    warned = {"cells": [{"outputs": [{"output_type": "stream", "text": "x.py:3: FutureWarning: `torch.jit.load` is..."}]}]}
    assert problems_in({**fake, "nb": warned}, "real")[0].startswith("warning in the learner's output")
    clean = {"cells": [{"outputs": [{"output_type": "stream", "text": "ViT-B/32: grid=7"}]}]}
    assert problems_in({**fake, "nb": clean}, "real") == []
    assert problems_in({**fake, "nb": clean, "mode": "offline"}, "real") == ["banner says 'offline', expected 'real'"]
    assert problems_in({**fake, "nb": clean, "status": "FAILED: boom"}, "real") == ["FAILED: boom"]


def test_a_dead_kernel_is_reported_not_raised(tmp_path):
    """A kernel that dies (out of memory on a laptop, say) fails its row; make run goes on to the next notebook."""
    import nbformat
    path = tmp_path / "99_dies.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nos._exit(3)")]), path)
    result = preflight.run_notebook(path, timeout=60, save_to=None)
    assert result["status"] == "FAILED: the kernel died (out of memory, or killed)"


def test_interact_output_lands_in_the_cell_not_in_a_mimicked_output_widget(tmp_path):
    """Pre-flight turns off nbclient's Output-widget mimic, whose messages to the kernel stalled interact cells."""
    import nbformat
    path = tmp_path / "98_interact.ipynb"
    source = "import ipywidgets as w\nw.interact(lambda n=1: print('value', n), n=w.IntSlider(1, 0, 3));"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), path)
    result = preflight.run_notebook(path, timeout=60, save_to=None)
    assert result["status"] == "ok"
    assert "value 1" in preflight.outputs_text(result["nb"])
