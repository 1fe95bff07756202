"""Report: how the course's command-line measurements time things and print their results.

A key/value table for people, then the same dict as one JSON object on the last line, for scripts and notes.
"""
from __future__ import annotations

import ctypes
import json
import time


def best_time(fn, repeats: int) -> float:
    """Seconds for the fastest of `repeats` calls of fn(), after one warm-up call (one-off costs left out).

    Used by: compare_maps.map_costs (which benchmarks/legrad_cost.py uses).
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def proc_status_kb(field: str) -> int | None:
    """A kB field of /proc/self/status ("VmRSS", "VmHWM": current and peak resident memory); None off Linux.

    Used by: compare_maps.peak_memory_mb (notebook 08, "Time and memory per map") and benchmarks/decompose_cost.py.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def return_freed_memory_to_os() -> None:
    """Allocator tuning for memory benchmarks: ask glibc to serve allocations over 1 MiB with mmap, process-wide.

    By default glibc raises that threshold as large blocks are freed, and later batches then fragment the heap:
    over 10,000 ViT-B/32 images `head_contributions` kept ~0.23 GiB it no longer used. This changes the allocator
    for the whole process, so only a benchmark calls it, explicitly, before it measures
    (benchmarks/decompose_cost.py). A no-op where glibc isn't the C library (macOS, Windows).
    Used by: benchmarks/decompose_cost.py.
    """
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def print_result(result: dict) -> None:
    """Print a dict as a key/value table, then the same dict as one JSON line.

    Used by: python -m course_utils.toyclip evaluate and the benchmarks.
    """
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))
