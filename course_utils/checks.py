"""Checks: exercise checkers that say *what* differs, never just False (engine: checker, cases: exercise_cases).

    my_softmax = check("softmax", my_softmax)  # a function: run on the reference cases; the reference if it fails
    check("softmax", my_result_tensor)         # a value: compared with the reference on the first case
    assert_same("LayerNorm by hand vs nn.LayerNorm", mine, torch_out)   # raises if they differ
"""
from . import exercise_cases  # noqa: F401  (registers every notebook's exercises with the engine)
from .checker import ATOL, EXERCISES, Exercise, assert_same, check, compare, exercise, verdict

__all__ = ["ATOL", "EXERCISES", "Exercise", "assert_same", "check", "compare", "exercise", "verdict"]
