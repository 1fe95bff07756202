"""Report: how the course's command-line measurements print their results.

A key/value table for people, then the same dict as one JSON object on the last line, for scripts and notes.
"""
from __future__ import annotations

import json


def print_result(result: dict) -> None:
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))
