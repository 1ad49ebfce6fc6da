"""The core stays pure: a static check of every import in scheduler/core, beside import-linter.

import-linter (run by `make lint`) forbids the third-party I/O libraries and the adapters; this
test also keeps out the standard library's clock, randomness, processes, files and sockets.
"""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "scheduler" / "core"
# hashlib: keyed digests are pure functions of their input (fgd-plus's seeded node order), no I/O or state.
# heapq: list operations (the gang deadline queue).
ALLOWED = {"__future__", "collections", "dataclasses", "datetime", "enum", "fnmatch", "fractions", "functools", "hashlib",
           "heapq", "itertools", "math", "re", "types", "typing", "numpy", "scheduler.core"}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_only_pure_modules(path):
    for name in imports(path):
        assert any(name == a or name.startswith(a + ".") for a in ALLOWED), f"{path.name} imports {name}"


CLOCK_CALLS = ("now", "today", "utcnow", "fromtimestamp", "monotonic", "perf_counter")


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_never_reads_the_clock(path):
    """datetime is allowed for parsing timestamps; the current time is always handed in."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_CALLS:
            raise AssertionError(f"{path.name}:{node.lineno} reads the clock ({node.attr})")
