"""Instructor pre-flight: `python -m course_utils.preflight` (make run).

Executes every notebook top to bottom in a fresh kernel, writes the executed copies to build/executed/,
and prints one row per notebook: notebook | mode | seconds | peak MB | status. Exits 1 if any notebook failed.
The mode column is what each notebook's own banner said, that is, what it actually loaded: REAL (openai CLIP and
CIFAR-100, cached or downloaded), OFFLINE (ToyCLIP and the toy world), MIXED (part of each), or n/a for the notebooks
that load neither. Peak MB is the kernel's peak resident memory (Linux; blank elsewhere). Two notebooks run side by
side where there are 2 or more CPU cores (--jobs; see main).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import uuid
from datetime import datetime
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from traitlets import default
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from . import env
from .exercises import ROOT, solution_notebooks

BUILD = ROOT / "build" / "executed"
BANNER = re.compile(r"^\[Inside CLIP\] (REAL|OFFLINE|MIXED) mode|^\[Inside CLIP\] this notebook needs no CLIP", re.M)
PEAK_TAG = "preflight-peak-memory"
PEAK_CELL = "from course_utils.report import proc_status_kb\nprint('PEAK_KB', proc_status_kb('VmHWM'))"


class LocalSocketKernelManager(AsyncKernelManager):
    """A kernel reached through local socket files, each kernel under its own name, instead of TCP ports.

    Kernels started side by side (--jobs) can't race for the same port, and none listens on the network.
    Used by: run_notebook.
    """

    @default("transport")
    def _default_transport(self):
        return "ipc"

    @default("ip")
    def _default_ip(self):
        return str(Path(tempfile.gettempdir()) / f"inside-clip-kernel-{uuid.uuid4().hex[:12]}")


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    for line in reversed(text):  # nbclient puts the exception's own line last
        if line.strip():
            return line.strip()[:120]
    return type(err).__name__


def outputs_text(nb) -> str:
    """Every stream and text/plain output of an executed notebook, in order, as one string.

    Used by: banner_mode, run_notebook and the real-mode rehearsal (tests/test_real_mode.py).
    """
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "text/plain" in out.get("data", {}):
                parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


def banner_mode(nb) -> str:
    """"real", "offline", "mixed" or "n/a" from the first banner an executed notebook printed ("?" if none).

    Used by: run_notebook, so the table reports what each notebook loaded, not what the network looked like.
    """
    match = BANNER.search(outputs_text(nb))
    return (match.group(1) or "n/a").lower() if match else "?"


def run_notebook(path: Path, timeout: int, environ: dict | None = None, save_to: Path | None = BUILD) -> dict:
    """Execute one notebook in a fresh kernel (with `environ` applied to its environment) and save the executed copy.

    Returns {notebook, mode, seconds, peak_mb, status, nb}.
    Used by: make run (through main) and the real-mode rehearsal (tests/test_real_mode.py).
    """
    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell(PEAK_CELL, metadata={"tags": [PEAK_TAG]})
    nb.cells.append(probe)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", kernel_manager_class=LocalSocketKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    # No Output-widget mimic: nbclient plays a browser for `widgets.interact` by sending messages to the kernel on the
    # shell channel from inside its output handler, while it awaits the cell's reply on that same channel. Now and
    # then that reply's wake-up is lost and the run stalls for the whole cell timeout (seen: 300 s after an interact
    # cell on a GPU machine; a hang with two notebooks side by side). Without it, what interact draws lands in the cell.
    client.widget_registry = {}
    saved = dict(os.environ)
    for key, value in (environ or {}).items():  # None removes a variable (e.g. COURSE_OFFLINE for a real-mode run)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    start = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellTimeoutError as err:
        status = f"FAILED (a cell ran over {timeout}s): {_first_line(err)}"
    except CellExecutionError as err:
        status = f"FAILED: {_first_line(err)}"
    except Exception as err:  # noqa: BLE001 -- a dead kernel (crash, out of memory, killed) surfaces as
        # DeadKernelError or, from nbclient's cleanup after it, as an AssertionError: report it and go on
        dead = isinstance(err, DeadKernelError) or isinstance(err.__context__, DeadKernelError)
        status = "FAILED: the kernel died (out of memory, or killed)" if dead else f"FAILED: {type(err).__name__}: {err}"[:140]
    finally:
        seconds = time.perf_counter() - start
        os.environ.clear()
        os.environ.update(saved)
    nb.cells.remove(probe)
    peak = re.search(r"PEAK_KB (\d+)", "".join(o.get("text", "") for o in probe.get("outputs", [])))
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_to / path.name)
    return dict(notebook=path.name, mode=banner_mode(nb), seconds=seconds,
                peak_mb=int(peak.group(1)) / 1024 if peak else None, status=status, nb=nb)


def last_seconds(path: Path, folder: Path = BUILD) -> float:
    """How long `path` took at the last pre-flight (from its executed copy's cell timings), 0.0 if unknown.

    Used by: main, to start the longest notebooks first when several run side by side.
    """
    try:
        cells = nbformat.read(folder / path.name, as_version=4).cells
        stamps = [c.metadata["execution"] for c in cells if "execution" in c.get("metadata", {})]
        first, last = stamps[0]["iopub.execute_input"], stamps[-1]["shell.execute_reply"]
        return max(0.0, (_parse_time(last) - _parse_time(first)).total_seconds())
    except (OSError, KeyError, IndexError, ValueError, TypeError):
        return 0.0


def _parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _run_in_worker(path: Path, timeout: int, environ: dict) -> dict:
    """run_notebook in a worker process, without the executed notebook (it is saved to build/executed/)."""
    result = run_notebook(path, timeout, environ)
    result.pop("nb")
    return result


def main(argv=None) -> int:
    """python -m course_utils.preflight: run every notebook and print notebook | mode | seconds | peak MB | status.

    With --jobs 2 (the default where there are 2 or more CPU cores) two notebooks run side by side, each kernel with
    half the cores: imports, plotting and data loading of one overlap the other's number crunching, so the whole
    pre-flight takes about 0.6x as long on 2 cores. Each row's seconds then include that sharing; --jobs 1 times each
    notebook alone (use it for per-notebook timings, or where memory is short: two kernels hold about twice the RAM).
    Used by: make run.
    """
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description="Execute every notebook and report.")
    parser.add_argument("--only", nargs="*", default=None, help="notebook name prefixes, e.g. 01 02")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--jobs", type=int, default=2 if cores >= 2 else 1,
                        help="notebooks run side by side (default 2 on 2+ cores; 1 times each notebook alone)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give 1 or more (1 runs the notebooks one after the other)")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = [p for p in solution_notebooks() if not args.only or any(p.name.startswith(o) for o in args.only)]
    jobs = min(args.jobs, max(1, len(paths)))
    threads = {} if jobs == 1 or "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": str(max(1, cores // jobs))}
    print(f"[Inside CLIP] pre-flight of {len(paths)} notebook(s) on {env.get_device()}, {jobs} at a time"
          f"{' (' + threads['OMP_NUM_THREADS'] + ' CPU thread(s) each)' if threads else ''}; executed copies in "
          f"{BUILD.relative_to(ROOT)}/. Each notebook's banner says what it loaded; the table repeats it.", flush=True)
    results = {}
    start = time.perf_counter()
    if jobs == 1:
        for path in paths:
            print(f"running {path.name} ...", flush=True)
            results[path.name] = r = run_notebook(path, args.timeout)
            _print_row(r)
    else:  # longest first (as timed last time), so the two queues end together
        order = sorted(paths, key=last_seconds, reverse=True)
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_in_worker, path, args.timeout, threads): path for path in order}
            for future in as_completed(futures):
                results[futures[future].name] = r = future.result()
                _print_row(r)
    rows = []
    for path in paths:
        r = results[path.name]
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else ""
        rows.append((r["notebook"], r["mode"], f"{r['seconds']:.1f}", peak, r["status"]))
    header = ("notebook", "mode", "seconds", "peak MB", "status")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    failed = [r for r in rows if r[-1] != "ok"]
    modes = sorted({r[1] for r in rows if r[1] != "n/a"})
    print(f"\n{len(rows) - len(failed)} of {len(rows)} notebooks ran cleanly in {time.perf_counter() - start:.0f} s "
          f"({jobs} at a time); modes seen: {', '.join(modes) or 'n/a'}.")
    return 1 if failed or not rows else 0


def _print_row(r: dict) -> None:
    peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "?"
    print(f"  {r['notebook']}: {r['mode']}, {r['seconds']:.1f} s, peak {peak} MB, {r['status']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
