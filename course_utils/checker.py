"""The checking engine behind every exercise: a registry of exercises and a comparison that says *what* differs.

This module holds no exercises and imports nothing from the package; `course_utils.exercise_cases`
registers the cases and `course_utils.checks` is the module learners import.

A failing check prints ❌ with the shape difference, or `max |Δ|` and the first wrong index
with both values there. A stub that raises NotImplementedError fails its check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

ATOL = 1e-5


@dataclass
class Exercise:
    """One exercise: its reference solution, its (lazily built) input cases, its tolerance and its hint.

    Used by: exercise (which registers one per exercise in EXERCISES) and check.
    """

    reference: Callable[..., Any]
    cases: Callable[[], list[tuple]]  # built lazily and deterministically
    atol: float = ATOL
    notes: str = ""
    _cache: list = field(default_factory=list, repr=False)

    def get_cases(self) -> list[tuple]:
        """Build the input cases on first use and keep them.

        Taught in: nowhere directly (the checker cells use it through check()).
        """
        if not self._cache:
            self._cache.extend(self.cases())
        return self._cache


EXERCISES: dict[str, Exercise] = {}


def exercise(name: str, reference: Callable, cases: Callable[[], list[tuple]], **kw) -> None:
    """Register exercise `name`: its reference, a callable returning its input cases, and `atol` / `notes`.

    Used by: course_utils.exercise_cases, which registers every notebook's exercises with it.
    """
    EXERCISES[name] = Exercise(reference, cases, **kw)


# ---- comparison ----------------------------------------------------------------------------------------
def _as_tensor(x) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception:
        return None


def _fmt_index(flat: int, shape) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, tuple(shape))) if len(shape) else ()


def compare(got, expected, atol: float = ATOL) -> str | None:
    """None if `got` matches `expected` within `atol` (infinities must match exactly); else what differs.

    Used by: check and assert_same (what every checker cell prints) and tests/test_checks.py.
    """
    g, e = _as_tensor(got), _as_tensor(expected)
    if g is None:
        return f"expected a tensor or array, got {type(got).__name__}"
    if tuple(g.shape) != tuple(e.shape):
        return f"shape mismatch: got {tuple(g.shape)}, expected {tuple(e.shape)}"
    if e.dtype == torch.bool or g.dtype == torch.bool:
        wrong = (g != e).flatten()
        if not wrong.any():
            return None
        i = int(wrong.nonzero()[0])
        idx = _fmt_index(i, e.shape)
        return f"{int(wrong.sum())} wrong entries; first at index {idx}: got {g.flatten()[i]}, expected {e.flatten()[i]}"
    g, e = g.double(), e.double()
    same_inf = (torch.isinf(g) & torch.isinf(e) & (torch.sign(g) == torch.sign(e)))
    diff = torch.where(same_inf, torch.zeros_like(g), (g - e).abs())
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff)  # NaN counts as infinitely off
    bad = (diff > atol).flatten()
    if not bad.any():
        return None
    i = int(bad.nonzero()[0])
    worst = f"{diff.max().item():.3g}"
    if torch.isnan(g).any():
        worst += ", NaN in your result"
    return (
        f"max |Δ| = {worst} ({int(bad.sum())} of {bad.numel()} entries off by more than {atol:g}); "
        f"first wrong index {_fmt_index(i, e.shape)}: got {g.flatten()[i].item():.6g}, expected {e.flatten()[i].item():.6g}"
    )


def _describe(args: tuple) -> str:
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            out.append(f"tensor{tuple(a.shape)}")
        elif isinstance(a, dict):
            out.append("{" + ", ".join(f"{k!r}: tensor{tuple(v.shape)}" for k, v in list(a.items())[:3]) + ", ...}")
        else:
            out.append(repr(a))
    return "(" + ", ".join(out) + ")"


def verdict(name: str, value) -> bool:
    """Compare a learner's function (or value) with the reference for exercise `name`; print ✅ or ❌; return whether
    it passed. (`check` is what the notebooks call; this is its test, without the fallback.)

    Used by: check, and the tests that show every checker can fail.
    """
    if name not in EXERCISES:
        raise KeyError(f"check: no exercise called {name!r}. Known: {', '.join(sorted(EXERCISES))}.")
    ex = EXERCISES[name]
    cases = ex.get_cases()
    if not callable(value):
        problems = [(cases[0], compare(value, ex.reference(*cases[0]), ex.atol))]
    else:
        problems = []
        for args in cases:
            try:
                got = value(*[a.clone() if isinstance(a, torch.Tensor) else a for a in args])
            except NotImplementedError:
                print(f"❌ {name}: not implemented yet. Replace `raise NotImplementedError` with your code.")
                return False
            except Exception as err:  # show the learner their error, tied to the inputs that caused it
                problems.append((args, f"raised {type(err).__name__}: {err}"))
                break
            problems.append((args, compare(got, ex.reference(*args), ex.atol)))
    failed = [(args, p) for args, p in problems if p is not None]
    if not failed:
        print(f"✅ {name}: matches the reference on {len(problems)} case(s) (atol {ex.atol:g}).")
        return True
    args, problem = failed[0]
    hint = f"\n   hint: {ex.notes}" if ex.notes else ""
    print(f"❌ {name}: on inputs {_describe(args)}: {problem}{hint}")
    return False


def check(name: str, value):
    """Check a learner's answer (see `verdict`) and return what the rest of the notebook should use: the learner's
    function (or value) when it passes, otherwise the reference, with a one-line notice. So a skipped or unfinished
    exercise never breaks the cells after it:  `softmax = check("softmax", softmax)`.

    Every exercise's checker cell calls it, starting with notebook 01's Exercise 1.
    Taught in: notebook 01, "Positional encoding".
    """
    ex = EXERCISES.get(name)  # an unknown name: verdict below raises with the list of known ones
    if ex is not None and value is ex.reference:  # this cell ran before and handed out the reference: don't grade it
        print(f"↪ {name} is still the course's reference: run your exercise cell above first, then this one again.")
        return value
    if verdict(name, value):
        return value
    print(f"   ↪ the cells below use the course's reference {name} until yours passes; rerun this cell when it does.")
    return ex.reference if callable(value) else ex.reference(*ex.get_cases()[0])


def assert_same(what: str, ours, theirs, atol: float = ATOL) -> None:
    """Assert two results agree within `atol` (raising with the details if not) and say so in one line.

    Notebooks 01, 03, 04, 05, 07 and 08 use it to check by-hand results against a library's.
    Taught in: notebook 01, "Embeddings: one learned vector per word".
    """
    problem = compare(ours, theirs, atol)
    if problem is not None:
        raise AssertionError(f"{what}: {problem}")
    print(f"✅ {what}: equal within {atol:g}")
