"""requirements.lock pins, with hashes, what pyproject.toml declares (issue #12 item 12)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _check_lock() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_lock", ROOT / "scripts/check_lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lock_matches_pyproject() -> None:
    """The committed lock was made from the current dependency declarations."""
    check = _check_lock()
    assert check.problems((ROOT / "requirements.lock").read_text("utf-8")) == []


def test_a_changed_declaration_is_caught() -> None:
    """A lock made before a dependency was added or changed fails the check."""
    check = _check_lock()
    lock = (ROOT / "requirements.lock").read_text("utf-8")
    stale = "# pyproject-sha256: " + "0" * 64 + "\n" + lock.split("\n", 1)[1]
    assert any("changed since" in p for p in check.problems(stale))


def test_an_unpinned_or_unhashed_lock_is_caught() -> None:
    """A lock that misses a declared package, or carries no hashes, fails the check."""
    check = _check_lock()
    lock = (ROOT / "requirements.lock").read_text("utf-8")
    without_httpx = "\n".join(line for line in lock.splitlines()
                              if not line.startswith("httpx=="))
    assert any("httpx is not pinned" in p for p in check.problems(without_httpx))
    unhashed = "\n".join(line for line in lock.splitlines() if "--hash=" not in line)
    assert any("no hashes" in p for p in check.problems(unhashed))
