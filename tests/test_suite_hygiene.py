"""The suite itself: every test says what it pins and has a check that can fail (DESIGN §7.9).

A check is an ``assert``, ``pytest.raises``/``warns``/``fail``, or a call to one of the
helpers in :data:`CHECKING_HELPERS`, a fixed list (a helper is not a check because of its
name: each listed one is shown below to assert or raise). An assert inside a nested
function counts only when the test uses that function (calls it or hands it on); one in a
function that is never used never runs. No test swallows every exception with ``except
Exception`` (or ``BaseException``, or a bare ``except``) unless it re-raises.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
_CHECK_CALLS = ("raises", "warns", "fail")

#: Helpers whose call is a check, and where each is defined (it must assert or raise).
CHECKING_HELPERS = {
    "_check": "tests/test_cli_bad_input.py",
    "verify_envelope": "edge_sync/wire_signing.py",
    "verify_downlink": "edge_sync/wire_signing.py",
}

_FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)


def _test_functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, _FUNCTION) and node.name.startswith("test_"):
                found.append((f"{path.relative_to(TESTS)}::{node.name}", node))
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes of ``node``'s body, not descending into nested functions, lambdas or
    classes (their code runs only if they are used)."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        out.append(child)
        if isinstance(child, (*_FUNCTION, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(child))
    return out


def _has_check(node: ast.AST) -> bool:
    own = _own_nodes(node)
    for child in own:
        if isinstance(child, ast.Assert):
            return True
        if isinstance(child, ast.Call):
            name = _called_name(child)
            if name in _CHECK_CALLS or name in CHECKING_HELPERS:
                return True
    used = {child.id for child in own if isinstance(child, ast.Name)}
    return any(
        isinstance(child, _FUNCTION) and child.name in used and _has_check(child)
        for child in own
    )


def _constant_asserts(node: ast.AST) -> list[int]:
    return [
        child.lineno
        for child in ast.walk(node)
        if isinstance(child, ast.Assert) and isinstance(child.test, ast.Constant)
    ]


def _swallows_everything(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    broad = caught is None or (isinstance(caught, ast.Name)
                               and caught.id in ("Exception", "BaseException"))
    reraises = bool(handler.body) and isinstance(handler.body[-1], ast.Raise) \
        and handler.body[-1].exc is None
    return broad and not reraises


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
    """Each test asserts, expects an exception, or calls a listed checking helper, where the
    check runs; none asserts a constant."""
    unchecked = [name for name, node in FUNCTIONS if not _has_check(node)]
    constant = [(name, _constant_asserts(node)) for name, node in FUNCTIONS
                if _constant_asserts(node)]
    assert not unchecked, unchecked
    assert not constant, constant


@pytest.mark.parametrize("helper", sorted(CHECKING_HELPERS))
def test_each_checking_helper_asserts_or_raises(helper: str) -> None:
    """Every listed checking helper is defined where the list says, and asserts or raises."""
    tree = ast.parse((REPO / CHECKING_HELPERS[helper]).read_text(encoding="utf-8"))
    (definition,) = [n for n in ast.walk(tree) if isinstance(n, _FUNCTION) and n.name == helper]
    assert any(isinstance(n, ast.Assert | ast.Raise) for n in ast.walk(definition))


def test_no_test_swallows_every_exception() -> None:
    """No file under tests/ catches Exception, BaseException or everything without
    re-raising: a test names the errors it expects."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(TESTS)}:{h.lineno}" for h in ast.walk(tree)
                  if isinstance(h, ast.ExceptHandler) and _swallows_everything(h)]
    assert found == []


@pytest.mark.parametrize(
    ("source",                                                                     "checked"),
    [
        ("def test_x():\n    '''d'''\n    f()\n",                                    False),
        ("def test_x():\n    '''d'''\n    assert f() == 1\n",                        True),
        ("def test_x():\n    '''d'''\n    with pytest.raises(E):\n        f()\n",    True),
        ("def test_x():\n    '''d'''\n    verify_envelope(e, k)\n",                 True),
        ("def test_x():\n    '''d'''\n    check_everything(e)\n",                   False),
        ("def test_x():\n    '''d'''\n    def g():\n        assert f()\n",          False),
        ("def test_x():\n    '''d'''\n    def g():\n        assert f()\n    g()\n", True),
        ("def test_x():\n    '''d'''\n    def g():\n        assert f()\n    run(g)\n", True),
        ("def test_x():\n    '''d'''\n    h = lambda: f()\n    h()\n",              False),
    ],
)
def test_the_check_detector(source: str, checked: bool) -> None:
    """The detector tells a test that only runs code from one that checks its result."""
    node = ast.parse(source).body[0]
    assert _has_check(node) is checked


@pytest.mark.parametrize(
    ("handler",                                   "swallows"),
    [
        ("try:\n    f()\nexcept Exception:\n    pass\n",          True),
        ("try:\n    f()\nexcept:\n    pass\n",                    True),
        ("try:\n    f()\nexcept BaseException:\n    g()\n    raise\n", False),
        ("try:\n    f()\nexcept ValueError:\n    pass\n",         False),
    ],
)
def test_the_broad_except_detector(handler: str, swallows: bool) -> None:
    """A handler for everything that does not re-raise is found; a narrow one is not."""
    (node,) = [n for n in ast.walk(ast.parse(handler)) if isinstance(n, ast.ExceptHandler)]
    assert _swallows_everything(node) is swallows
