"""docs/architecture.md's layer table is a checked contract, not a picture.

Every module of ``agent/`` belongs to exactly one row of the table, and the imports a module makes
when it is imported (module level, type-only imports aside) point only to its own or earlier rows.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "agent"


def _rows() -> list[list[str]]:
    """The ``files`` cell of each row, as patterns relative to ``agent/``."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].isdigit():
            continue
        patterns = []
        for name in re.findall(r"`([^`]+)`", cells[2]):
            braces = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", name)
            if braces:
                head, names, tail = braces.groups()
                patterns += [f"{head}{part}{tail}" for part in names.split(",")]
            else:
                patterns.append(name)
        rows.append(patterns)
    return rows


ROWS = _rows()


def _row_of(relative: str) -> int | None:
    """The row whose most specific pattern names ``relative`` (a file path under agent/)."""
    best: tuple[int, int] | None = None
    for index, patterns in enumerate(ROWS):
        for pattern in patterns:
            if pattern.endswith("/") and relative.startswith(pattern):
                score = len(pattern)
            elif pattern == relative:
                score = 10_000
            else:
                continue
            if best is None or score > best[0]:
                best = (score, index)
    return None if best is None else best[1]


def _module_file(module: str) -> Path | None:
    path = ROOT / module.replace(".", "/")
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _import_time_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Modules imported at module level (outside ``if TYPE_CHECKING:`` and function bodies)."""
    found: list[tuple[str, int]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("agent"):
                    found.append((node.module, node.lineno))
                    found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
            elif isinstance(node, ast.Import):
                found.extend(
                    (a.name, node.lineno) for a in node.names if a.name.startswith("agent")
                )

    visit(tree.body)
    return found


def _sources() -> list[Path]:
    return sorted(path for path in AGENT.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_table_has_its_rows():
    assert len(ROWS) >= 10
    assert all(ROWS)


def test_every_module_has_a_row():
    missing = [
        str(path.relative_to(AGENT))
        for path in _sources()
        if path.name != "__init__.py" and _row_of(str(path.relative_to(AGENT))) is None
    ]
    assert missing == [], "add these modules to docs/architecture.md's table"


def test_every_named_file_exists():
    for patterns in ROWS:
        for pattern in patterns:
            assert (AGENT / pattern).exists(), f"docs/architecture.md names agent/{pattern}"


def test_imports_at_import_time_never_point_to_a_later_row():
    upward = []
    for path in _sources():
        relative = str(path.relative_to(AGENT))
        row = _row_of(relative)
        if row is None:  # a package __init__ without a row of its own
            continue
        for module, line in _import_time_imports(ast.parse(path.read_text())):
            target = _module_file(module)
            if target is None or target.name == "__init__.py":
                continue  # a name imported from a package, or the package itself
            target_row = _row_of(str(target.relative_to(AGENT)))
            if target_row is not None and target_row > row:
                upward.append(
                    f"{relative}:{line} (row {row + 1}) imports {module} (row {target_row + 1})"
                )
    assert upward == []


def test_the_check_sees_an_upward_import():
    """The rule above would catch a low-level module importing the runner at import time."""
    tree = ast.parse("from agent.runner import Runner\nif TYPE_CHECKING:\n    import agent.cli\n")
    imports = [module for module, _ in _import_time_imports(tree)]
    assert "agent.runner" in imports
    assert "agent.cli" not in imports
    runner_row = _row_of("runner.py")
    assert runner_row is not None and runner_row > _row_of("urls.py")  # type: ignore[operator]


_DOTTED = re.compile(r"\bagent(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _resolves(reference: str) -> bool:
    """Whether ``agent.x.y`` names a module of the tree, or a name defined in one."""
    import importlib  # noqa: PLC0415

    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        if _module_file(".".join(parts[:cut])) is None:
            continue
        obj: object = importlib.import_module(".".join(parts[:cut]))
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_dotted_name_in_docstrings_and_docs_exists():
    """A regroup leaves no ``agent.old_module`` (or renamed function) behind in prose.

    Scans the sources of ``agent/`` and ``bench/``, README.md and docs/; logger names count too
    (each module logs under its ``__name__``).
    """
    texts = [*_sources(), *sorted((ROOT / "bench").rglob("*.py")), ROOT / "README.md"]
    texts += sorted((ROOT / "docs").glob("*.md"))
    stale = sorted(
        f"{path.relative_to(ROOT)}: {reference}"
        for path in texts
        for reference in set(_DOTTED.findall(path.read_text()))
        if not _resolves(reference)
    )
    assert stale == []


def test_the_dotted_name_check_sees_an_old_module():
    assert _resolves("agent.credential_helpers.warm.serve")
    assert not _resolves("agent.fastpath")
    assert not _resolves("agent.credential_helpers.warm.serve_docker_get")


def test_a_package_that_lists_its_modules_lists_every_one():
    """A package docstring's ``name.py  what it holds`` listing is the tree: complete, real."""
    wrong = []
    for init in sorted(AGENT.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        listed = set(re.findall(r"^\s+(\w+\.py)\s", doc, flags=re.MULTILINE))
        if not listed:
            continue  # a package without a listing (the table of docs/architecture.md covers it)
        present = {path.name for path in init.parent.glob("*.py")} - {"__init__.py"}
        wrong += [f"{init.relative_to(ROOT)} lists missing {name}" for name in listed - present]
        wrong += [f"{init.relative_to(ROOT)} does not list {name}" for name in present - listed]
    assert wrong == []
