"""The instructor guide (notebooks/INSTRUCTOR_GUIDE.md): its timings are the notebooks' own, and its schedules add up."""
import re

import nbformat
import pytest

from course_utils import exercises

GUIDE = exercises.NOTEBOOKS / "INSTRUCTOR_GUIDE.md"
TEXT = GUIDE.read_text()
LESSONS = exercises.solution_notebooks()
ESTIMATE = {p.stem[:2]: exercises.lesson_minutes(nbformat.read(p, as_version=4)) for p in LESSONS}
MAX_STRETCH = 110  # minutes of teaching between two breaks, as the guide promises


def table_after(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first markdown table after `heading`, header and rule left out."""
    rest = TEXT.split(heading, 1)[1]
    rows = []
    for line in rest.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def schedule(heading: str) -> list[tuple[int, str, int]]:
    """(start in minutes after midnight, block, minutes) rows of a schedule table."""
    out = []
    for start, block, minutes in table_after(heading):
        h, m = map(int, start.split(":"))
        out.append((60 * h + m, block, int(minutes)))
    return out


def test_the_timing_table_is_the_notebooks_own_estimate():
    rows = {r[0]: [int(x) for x in r[1:]] for r in table_after("## How long each notebook takes")}
    assert sorted(rows) == sorted(ESTIMATE)
    for n, (reading, code, tasks, quiz, total) in rows.items():
        e = ESTIMATE[n]
        assert (reading, code, tasks, quiz, total) == (e["reading"], e["code"], e["tasks"], e["quiz"], e["total"]), n
        assert total == reading + code + tasks + quiz
    assert f"about {sum(e['total'] for e in ESTIMATE.values())} minutes" in TEXT


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_notebook_states_its_estimate(path):
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown").source
    stated = int(re.search(r"\*\*Expected time:\*\* about (\d+) minutes", first).group(1))
    assert stated == ESTIMATE[path.stem[:2]]["total"]


def _check_schedule(rows, total_line):
    assert rows, "empty schedule"
    for (start, block, minutes), (next_start, _, _) in zip(rows, rows[1:]):
        assert start + minutes == next_start, f"{block!r} ends at {start + minutes}, the next block starts at {next_start}"
    total = sum(m for _, _, m in rows)
    assert total_line.format(total) in TEXT, f"the guide does not state the total {total}"
    stretch = 0
    for _, block, minutes in rows:
        stretch = 0 if block in ("break", "lunch") else stretch + minutes
        assert stretch <= MAX_STRETCH, f"{stretch} minutes without a break, up to {block!r}"
    given = {}
    for _, block, minutes in rows:  # a notebook may take several blocks
        if block[:2].isdigit():
            given[block[:2]] = given.get(block[:2], 0) + minutes
    return given


def test_the_two_day_schedule_adds_up_and_gives_every_notebook_its_estimate():
    given = _check_schedule(schedule("### Day 1"), "Day 1 total: {} minutes")
    day2 = _check_schedule(schedule("### Day 2"), "Day 2 total: {} minutes")
    assert not set(given) & set(day2), "a notebook split across the two days"
    given.update(day2)
    assert sorted(given) == sorted(ESTIMATE)
    for n, minutes in given.items():
        assert minutes >= ESTIMATE[n]["total"], f"notebook {n}: {minutes} minutes, estimated {ESTIMATE[n]['total']}"


def test_the_one_day_schedule_adds_up_and_places_every_notebook():
    given = _check_schedule(schedule("## One-day schedule"), "One-day total: {} minutes")
    outside = re.search(r"Pre-work: ([\d, ]+)\. Homework: ([\d, ]+)\.", TEXT)
    elsewhere = re.findall(r"\d\d", outside.group(1) + outside.group(2))
    assert sorted(list(given) + elsewhere) == sorted(ESTIMATE)
    for n, minutes in given.items():
        assert minutes >= 0.7 * ESTIMATE[n]["total"], f"notebook {n}: {minutes} of {ESTIMATE[n]['total']} minutes"
        path = next(p for p in LESSONS if p.stem.startswith(n))
        assert "Skip if short on time" in path.read_text(), f"notebook {n} has no section to skip"


def test_every_exercise_has_its_common_mistake_and_the_readme_links_the_guide():
    mistakes = {r[1].strip("`") for r in table_after("## Common mistakes, exercise by exercise")}
    for path in LESSONS:
        for name in re.findall(r'^\w+ = check\("([a-z_]+)"', path.with_suffix(".py").read_text(), re.M):
            assert name in mistakes, f"{name} is missing from the guide's common mistakes"
    assert "notebooks/INSTRUCTOR_GUIDE.md" in (exercises.ROOT / "README.md").read_text()
