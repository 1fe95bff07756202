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


def forced_offline() -> bool:
    """True when the user (or CI) asked for offline mode with COURSE_OFFLINE=1.

    Used by: is_offline, assets.fetch, data.load_cifar100, models.load_clip and preflight.
    """
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


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


def mode() -> str:
    """"offline" or "real" for the course as a whole (models.load_clip may still fall back per asset).

    Used by: start_lesson (its result is each notebook's MODE) and banner.
    """
    return "offline" if is_offline() else "real"


def _versions() -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    try:
        parts.append(f"openai-clip {version('openai-clip')}")
    except PackageNotFoundError:  # not installed: say so instead of failing the banner
        parts.append("openai-clip missing")
    return " · ".join(parts)


def banner(mode_name: str | None = None, detail: str = "", uses_assets: bool = True) -> str:
    """Print (and return) one line saying which mode, device and versions produced what follows.

    `uses_assets=False` is for notebooks that need no CLIP weights or data (notebook 01): no mode to report.

    Used by: start_lesson (every notebook's first code cell), announce_offline and preflight.
    """
    mode_name = mode_name or ("n/a" if not uses_assets else mode())
    if not uses_assets:
        what = "this notebook needs no CLIP weights or datasets (same results in every mode)"
    elif mode_name == "offline":
        what = "OFFLINE mode: numbers below are about the course's ToyCLIP / toy world, not openai CLIP"
    else:
        what = "REAL mode: openai CLIP weights and real datasets"
    where = "Colab" if in_colab() else "local"
    line = f"[Inside CLIP] {what} · device {get_device()} · {_versions()} · {where}"
    if detail:
        line += f" · {detail}"
    print(line)
    return line


def start_lesson(seed: int = 0, uses_assets: bool = True) -> str:
    """What every notebook's first code cell does: seed everything, print the banner, return the mode.

    Returns "real" or "offline" (see `mode`), which the notebook keeps as MODE.
    Used by: the first code cell of every notebook (01 to 08), before section 1.
    """
    seed_everything(seed)
    banner(uses_assets=uses_assets)
    return mode()


_announced: set[str] = set()


def announce_offline(what: str) -> None:
    """Print the offline banner once per process for each substitution (e.g. ToyCLIP for ViT-B/32).

    Used by: data.load_cifar100 and models.load_clip, when they fall back to the toy world or ToyCLIP.
    """
    if what not in _announced:
        _announced.add(what)
        banner("offline", detail=what)
