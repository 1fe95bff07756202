"""The package's shape: imports only go down the module list in course_utils/__init__, nothing is imported inside a
function to dodge a cycle, one `import clip`, one repository root, and every public function says where it is taught."""
import ast
import re
from pathlib import Path

import pytest
import torch

import course_utils
from course_utils import models

PACKAGE = Path(course_utils.__file__).parent
NOTEBOOK_SOURCES = PACKAGE.parent / "notebooks"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text())


def package_imports(module: str) -> set[str]:
    """The course_utils modules that `module` imports at its top level (relative or absolute)."""
    found = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.module and node.module.startswith("course_utils"):
                found.add(node.module.split(".")[1] if "." in node.module else node.names[0].name)
    return found & set(MODULES)


def listed_order() -> list[str]:
    """The module list in course_utils/__init__'s docstring: one line per module, top (lowest) first."""
    return [m.group(1) for line in course_utils.__doc__.splitlines() if (m := re.match(r"^([a-z_]+)\s{2,}\S", line))]


def test_init_lists_every_module_once():
    order = listed_order()
    assert sorted(order) == MODULES, f"missing: {set(MODULES) - set(order)}, unknown: {set(order) - set(MODULES)}"


def test_imports_only_go_down_the_list():
    """A module may import only modules listed above it: so the imports form no cycle."""
    rank = {m: i for i, m in enumerate(listed_order())}
    upward = [f"{m} imports {d}" for m in MODULES for d in sorted(package_imports(m)) if rank[d] >= rank[m]]
    assert not upward, upward


def test_no_package_import_inside_a_function():
    local = []
    for m in MODULES:
        for fn in ast.walk(tree(m)):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("course_utils")):
                        local.append(f"{m}.{fn.name} line {node.lineno}")
    assert not local, local


def test_one_import_clip_and_one_repository_root():
    imports_clip = [m for m in MODULES for node in ast.walk(tree(m))
                    if isinstance(node, ast.Import) and any(a.name == "clip" for a in node.names)]
    assert imports_clip == ["models"]
    roots = [m for m in MODULES if re.search(r"Path\(__file__\)[^\n]*\.parent\.parent", (PACKAGE / f"{m}.py").read_text())]
    assert roots == ["assets"]


def notebook_sections() -> dict[str, set[str]]:
    """{"05": {"Mean-ablation", ...}}: the ## and ### headings of each lesson's .py source, number prefix dropped."""
    out = {}
    for path in NOTEBOOK_SOURCES.glob("[0-9][0-9]_*.py"):
        heads = (re.match(r"^# #{2,3} (.*)$", line) for line in path.read_text().splitlines())
        out[path.name[:2]] = {re.sub(r"^\d+(\.\d+)?\s*·?\s*", "", m.group(1)).strip() for m in heads if m}
    return out


def public_definitions():
    for m in MODULES:
        for node in tree(m).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                yield m, node


def test_every_public_function_says_which_lesson_teaches_it():
    sections = notebook_sections()
    assert len(sections) >= 8
    problems = []
    for m, node in public_definitions():
        lines = (ast.get_docstring(node) or "").strip().splitlines()
        last = lines[-1].strip() if lines else ""
        if not re.match(r"^(Taught in|Used by): \S", last):
            problems.append(f"{m}.{node.name}: docstring does not end with 'Taught in: ...' or 'Used by: ...'")
        for nb, section in re.findall(r'notebook (\d\d), "([^"]+)"', last):
            if section not in sections.get(nb, set()):
                problems.append(f"{m}.{node.name}: notebook {nb} has no section {section!r}")
    assert not problems, "\n".join(problems)


def test_head_contributions_leaves_the_allocator_alone(monkeypatch):
    """Allocator tuning is an explicit call a benchmark makes (report.return_freed_memory_to_os), not a side effect."""
    import ctypes

    from course_utils.decompose import head_contributions

    calls = []
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: calls.append(a))
    model = models.random_clip("ToyCLIP")
    head_contributions(model, [(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))], progress=False)
    assert calls == []
    from course_utils.report import return_freed_memory_to_os

    return_freed_memory_to_os()
    assert calls, "the explicit call should reach the C library"


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
def test_every_architecture_builds_with_its_heads(name):
    arch = models.ARCHITECTURES[name]
    info = models.model_info(models.random_clip(name))
    assert info.heads == arch.get("vision_heads", arch["vision_width"] // 64)
    assert (info.layers, info.width, info.embed_dim) == (arch["vision_layers"], arch["vision_width"], arch["embed_dim"])
