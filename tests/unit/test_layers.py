"""The layer rule: entrypoints -> adapters -> application -> domain, never upward;
``domain`` imports only the standard library and itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "adapters", "entrypoints")
FORBIDDEN_IN_DOMAIN = {"logging", "random", "secrets", "socket", "asyncio", "os", "io", "time"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations_in(package: str, allowed_roots: set[str]) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            root = module.split(".")[0]
            if root in allowed_roots or root == "__future__":
                continue
            if root in stdlib and not (package == "domain" and root in FORBIDDEN_IN_DOMAIN):
                continue
            problems.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return problems


def test_domain_imports_only_the_standard_library() -> None:
    assert violations_in("domain", {"domain"}) == []


def test_domain_never_reads_the_clock_or_randomness() -> None:
    banned = ("time.time(", "datetime.now(", "datetime.utcnow(", "random.", "perf_counter(")
    offenders = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in (ROOT / "domain").rglob("*.py")
        for needle in banned
        if needle in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("package", "outer"),
    [("domain", LAYERS[1:]), ("application", LAYERS[2:]), ("adapters", LAYERS[3:])],
)
def test_inner_layers_never_import_outer_ones(package: str, outer: tuple[str, ...]) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in (ROOT / package).rglob("*.py")
        for line, module in imported_modules(path)
        if module.split(".")[0] in outer
    ]
    assert offenders == []


def test_checker_catches_a_violation(tmp_path: Path) -> None:
    """The AST check itself must fail on a bad import, or the tests above prove nothing."""
    bad = tmp_path / "bad.py"
    bad.write_text("import pydantic\nfrom adapters.memory import x\n", encoding="utf-8")
    assert [m for _, m in imported_modules(bad)] == ["pydantic", "adapters.memory"]


def test_import_linter_contract_holds() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
