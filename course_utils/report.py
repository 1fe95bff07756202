"""Report: how the course's command-line measurements time things and print their results.

A key/value table for people, then the same dict as one JSON object on the last line, for scripts and notes.
"""
from __future__ import annotations

import json
import time


def best_time(fn, repeats: int) -> float:
    """Seconds for the fastest of `repeats` calls of fn(), after one warm-up call (one-off costs left out)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def proc_status_kb(field: str) -> int | None:
    """A kB field of /proc/self/status ("VmRSS", "VmHWM": current and peak resident memory); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def print_result(result: dict) -> None:
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))
