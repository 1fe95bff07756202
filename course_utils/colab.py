"""Colab: the one place the repository URL lives, the badge under each notebook's title and the setup cell every
notebook starts with.

`python -m course_utils.exercises` (make sync) rewrites the badge in the first markdown cell from `colab_badge()` and
the first code cell from `setup_cell_source()` in every lesson, its .py source and its student copy, and a test fails
if any of them differs, so the URL is never copy-pasted.
"""
from __future__ import annotations

REPO_URL = "https://github.com/inside-clip/inside-clip"  # change here only; then run `make sync`
BRANCH = "main"
SETUP_TAG = "colab-setup"


def colab_badge(notebook_path: str) -> str:
    """Markdown for an "Open in Colab" badge pointing at `notebook_path` (relative to the repo root).

    Used by: make sync (exercises.sync_badge) and tests/test_sources.py.
    """
    slug = REPO_URL.removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell_source() -> str:
    """The first code cell of every notebook: on Colab it clones the course and installs it (Colab already has torch,
    so nothing replaces it); anywhere else it does nothing. `make sync` writes it from here.

    Used by: make sync (exercises.sync_setup_cell) and the tests.
    """
    return f'''# Colab setup: on Colab this installs the course package (keeping Colab's torch); anywhere else it does nothing.
import sys
if "google.colab" in sys.modules:
    !git clone -q --depth 1 -b {BRANCH} {REPO_URL} /content/inside-clip
    !pip install -q --no-deps -e /content/inside-clip openai-clip einops ftfy regex
    sys.path.insert(0, "/content/inside-clip")'''
