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
    """Markdown for an "Open in Colab" badge pointing at `notebook_path` (relative to the repo root)."""
    slug = REPO_URL.removeprefix("https://github.com/")
    url = f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/{notebook_path}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell_source() -> str:
    return f'''# Colab setup: on Colab this installs the course package; anywhere else it does nothing.
import sys, subprocess
if "google.colab" in sys.modules:
    REPO_URL = "{REPO_URL}"
    subprocess.run(["git", "clone", "--depth", "1", "-b", "{BRANCH}", REPO_URL, "/content/inside-clip"], check=False)
    # Colab already has torch; install the course without replacing it.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", "/content/inside-clip"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "openai-clip", "einops", "ftfy", "regex"], check=True)
    sys.path.insert(0, "/content/inside-clip")'''
