"""The suite itself: every test says what it pins and has a check that can fail (DESIGN §7.9)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: Calls that check something: pytest.raises/warns/fail, and helpers named for checking
#: (``verify_envelope`` raises, ``assert_no_pan``…), which must themselves assert or raise.
_CHECK_CALLS = ("raises", "warns", "fail")
_CHECK_PREFIXES = ("assert", "_assert", "check", "_check", "verify", "_verify", "expect")


def _test_functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                found.append((f"{path.relative_to(TESTS)}::{node.name}", node))
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _has_check(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Call):
            name = _called_name(child)
            if name in _CHECK_CALLS or name.startswith(_CHECK_PREFIXES):
                return True
    return False


def _constant_asserts(node: ast.AST) -> list[int]:
    return [
        child.lineno
        for child in ast.walk(node)
        if isinstance(child, ast.Assert) and isinstance(child.test, ast.Constant)
    ]


FUNCTIONS = _test_functions()


def test_the_scan_finds_the_suite() -> None:
    """The scan sees the whole suite (hundreds of tests), so the checks below are not vacuous."""
    assert len(FUNCTIONS) > 500
    assert any(name.endswith("::test_the_scan_finds_the_suite") for name, _ in FUNCTIONS)


def test_every_test_has_a_docstring() -> None:
    """Each test function has a docstring saying the behaviour it pins."""
    missing = [name for name, node in FUNCTIONS if not ast.get_docstring(node)]
    assert not missing, missing


def test_every_test_has_a_check_that_can_fail() -> None:
    """Each test asserts, expects an exception, or calls a checking helper; none asserts a constant."""
    unchecked = [name for name, node in FUNCTIONS if not _has_check(node)]
    constant = [(name, _constant_asserts(node)) for name, node in FUNCTIONS
                if _constant_asserts(node)]
    assert not unchecked, unchecked
    assert not constant, constant


@pytest.mark.parametrize(
    ("source",                                                        "checked"),
    [
        ("def test_x():\n    '''d'''\n    f()\n",                       False),
        ("def test_x():\n    '''d'''\n    assert f() == 1\n",           True),
        ("def test_x():\n    '''d'''\n    with pytest.raises(E):\n        f()\n", True),
        ("def test_x():\n    '''d'''\n    verify_envelope(e, k)\n",    True),
    ],
)
def test_the_check_detector(source: str, checked: bool) -> None:
    """The detector tells a test that only runs code from one that checks its result."""
    node = ast.parse(source).body[0]
    assert _has_check(node) is checked
