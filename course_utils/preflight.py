"""Instructor pre-flight: `python -m course_utils.preflight` (make run).

Executes every notebook top to bottom in a fresh kernel, writes the executed copies to build/executed/,
and prints one row per notebook: notebook | mode | seconds | status. Exits 1 if any notebook failed.
The mode is offline (ToyCLIP, toy data) unless real assets are available: cached, or downloadable now.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from . import assets, env
from .exercises import ROOT, solution_notebooks

BUILD = ROOT / "build" / "executed"


def choose_mode() -> str:
    """"real" if ViT-B/32 is cached or downloadable (and COURSE_OFFLINE is unset), else "offline".

    Used by: make run (through main).
    """
    if env.forced_offline():
        return "offline"
    if assets.local_path("ViT-B/32").is_file() or not env.is_offline():  # fetch() verifies it when used
        return "real"
    return "offline"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    for line in reversed(text):  # nbclient puts the exception's own line last
        if line.strip():
            return line.strip()[:120]
    return type(err).__name__


def run_notebook(path: Path, mode: str, timeout: int) -> tuple[float, str]:
    """Execute one notebook in a fresh kernel, save the executed copy -> (seconds, status).

    Used by: make run (through main).
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellTimeoutError as err:
        status = f"FAILED (a cell ran over {timeout}s): {_first_line(err)}"
    except CellExecutionError as err:
        status = f"FAILED: {_first_line(err)}"
    seconds = time.perf_counter() - start
    BUILD.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, BUILD / path.name)
    return seconds, status


def main(argv=None) -> int:
    """python -m course_utils.preflight: run every notebook and print notebook | mode | seconds | status.

    Used by: make run.
    """
    parser = argparse.ArgumentParser(description="Execute every notebook and report.")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 01 02")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    mode = choose_mode()
    if mode == "offline":
        os.environ["COURSE_OFFLINE"] = "1"  # the kernels inherit it: one mode for the whole run
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = [p for p in solution_notebooks() if not args.only or any(p.name.startswith(o) for o in args.only)]
    env.banner(mode, detail=f"pre-flight of {len(paths)} notebook(s); executed copies in {BUILD.relative_to(ROOT)}/")
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        seconds, status = run_notebook(path, mode, args.timeout)
        rows.append((path.name, mode, f"{seconds:.1f}", status))
    header = ("notebook", "mode", "seconds", "status")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    failed = [r for r in rows if r[3] != "ok"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} notebooks ran cleanly in {mode} mode.")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
