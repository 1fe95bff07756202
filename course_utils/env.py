"""Environment: which mode we are in, which device we use, seeds, and the one-line banner.

Two modes, one code path (see the course design):
- real mode: openai CLIP weights and CIFAR-100, downloaded once into the cache;
- offline mode: no network, or COURSE_OFFLINE=1. Nothing is downloaded.
"""
from __future__ import annotations

import os
import platform
import random
import socket
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

# The only host the course ever contacts for its network check: where openai serves CLIP weights.
NETWORK_CHECK_HOST = ("openaipublic.azureedge.net", 443)
NETWORK_TIMEOUT_S = 3.0


def _flag(name: str) -> bool:
    """True when environment variable `name` is set to 1, true, yes or on (any case)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def forced_offline() -> bool:
    """True when the user (or CI) asked for offline mode with COURSE_OFFLINE=1.

    Used by: is_offline, assets.fetch, data.load_cifar100, models.load_clip and preflight.
    """
    return _flag("COURSE_OFFLINE")


@lru_cache(maxsize=1)
def _network_reachable() -> bool:
    try:
        with socket.create_connection(NETWORK_CHECK_HOST, timeout=NETWORK_TIMEOUT_S):
            return True
    except OSError:  # DNS failure, refused, timed out: all mean "offline"
        return False


def is_offline() -> bool:
    """Offline when COURSE_OFFLINE=1, or when the weights host can't be reached within 3 s.

    The network result is cached for the session, so the 3 s are paid at most once.

    Used by: mode, assets.fetch, data.load_cifar100, models.load_clip and preflight.
    """
    return forced_offline() or not _network_reachable()


def rehearsal_sized(n: int, small: int) -> int:
    """`n`, or `small` when COURSE_FAST=1: the size knob of CI's real-mode rehearsal, which checks that every cell runs
    at real shapes, not what the numbers are. Notebooks wrap their subset and scene counts in it.

    Used by: notebooks 03 and 05-09, where they choose how many images or scenes to use.
    """
    return small if _flag("COURSE_FAST") else n


def in_colab() -> bool:
    """True when running inside Google Colab.

    Used by: banner.
    """
    return "google.colab" in sys.modules


def get_device(prefer: str | None = None) -> torch.device:
    """cuda, then mps, then cpu. `prefer` (or COURSE_DEVICE) overrides, e.g. "cpu".

    Used by: the first cells of notebooks 03, 05 and 06, banner, and models.load_clip / load_toyclip by default.
    """
    prefer = prefer or os.environ.get("COURSE_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (CPU and all GPUs).

    Taught in: notebook 02, "Two encoders, one space".
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def is_real(loaded) -> bool:
    """True if a loaded model or dataset is the real thing (openai CLIP / CIFAR-100, or a stand-in at their shapes),
    False for ToyCLIP and the toy world. Reads the provenance the loaders attach (`.course_asset`), nothing else.

    Used by: mode and every notebook that picks its content per asset (REAL_MODEL, REAL_DATA).
    """
    provenance = getattr(loaded, "course_asset", None)
    if provenance is None:
        raise ValueError(f"{type(loaded).__name__} carries no provenance: load it with course_utils.models.load_clip "
                         "or course_utils.data.load_cifar100, which say where it came from.")
    return provenance.real


def mode(*loaded) -> str:
    """"real", "offline" or "mixed": what the loaded models and datasets are (their provenance, not the network).

    Used by: banner, whose return value each notebook keeps as MODE.
    """
    if not loaded:
        raise ValueError("mode() needs the loaded model and/or dataset: it reports what was loaded, not the network.")
    kinds = {is_real(x) for x in loaded}
    return "mixed" if len(kinds) == 2 else ("real" if True in kinds else "offline")


def _versions() -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    try:
        parts.append(f"openai-clip {version('openai-clip')}")
    except PackageNotFoundError:  # not installed: say so instead of failing the banner
        parts.append("openai-clip missing")
    return " · ".join(parts)


HEADLINES = {
    "real": "REAL mode: openai CLIP and real data",
    "offline": "OFFLINE mode: numbers below are about the course's ToyCLIP / toy world, not openai CLIP",
    "mixed": "MIXED mode: part real, part toy; each number below is about the parts named here",
    None: "this notebook needs no CLIP weights or datasets (same results in every mode)",
}


def banner(*loaded) -> str | None:
    """Print one line saying what produced the numbers that follow: the mode, each loaded asset with where it came
    from (cache, download, bundled, local file) and whether its checksum was verified, the device and versions.

    banner(model, dataset) returns the mode ("real", "offline" or "mixed"); banner() is for notebooks that load no
    weights or data (01, 02) and returns None.
    Used by: the setup cells of notebooks 03-09, right after loading; start_lesson for notebooks 01-02.
    """
    kind = mode(*loaded) if loaded else None
    headline = HEADLINES[kind]
    if kind == "real" and not all(x.course_asset.verified for x in loaded):
        headline = "REAL mode: real architectures and formats, from files the course could not verify (see each)"
    parts = [f"[Inside CLIP] {headline}"] + [x.course_asset.describe() for x in loaded]
    where = "Colab" if in_colab() else "local"
    print(" · ".join(parts + [f"device {get_device()}", _versions(), where]))
    return kind


def start_lesson(seed: int = 0, uses_assets: bool = True) -> None:
    """What every notebook's first code cell does: seed everything (and, for a notebook that loads no CLIP weights
    or datasets, print the banner). Notebooks that load assets print it after loading: `MODE = banner(model, data)`.

    Used by: the first code cell of every notebook (01 to 09), before section 1.
    """
    seed_everything(seed)
    if not uses_assets:
        banner()


_announced: set[str] = set()


def announce_substitution(what: str) -> None:
    """Say once per process that a loader substituted the toy world for a real asset (e.g. ToyCLIP for ViT-B/32).

    Used by: data.load_cifar100 and models.load_clip, when they fall back to the toy world or ToyCLIP.
    """
    if what not in _announced:
        _announced.add(what)
        print(f"[Inside CLIP] substitution: {what}")
