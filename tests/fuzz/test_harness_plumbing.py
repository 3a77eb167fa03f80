"""Every atheris harness in ``fuzz/`` is wired the same way: ``make fuzz`` finds it by its
name, ``fuzz/README.md`` says what it fuzzes and what it allows, and at least one of its
inputs is replayed by ``tests/fuzz/test_atheris_regressions.py`` through its ``check``.

Read as text (no atheris needed), so a harness added without its documentation or its
replayed inputs fails here in every environment.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESSES = sorted((REPO_ROOT / "fuzz").glob("fuzz_*.py"))


def test_there_are_harnesses_and_make_fuzz_globs_them() -> None:
    """The Makefile's fuzz target runs fuzz/fuzz_$(FUZZ).py with FUZZ defaulting to all."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert len(HARNESSES) >= 7
    assert "for h in fuzz/fuzz_$(FUZZ).py" in makefile
    assert re.search(r"^FUZZ \?= \*$", makefile, re.MULTILINE)


@pytest.mark.parametrize("harness", HARNESSES, ids=[h.stem for h in HARNESSES])
def test_harness_is_documented_replayable_and_runnable(harness: Path) -> None:
    """The harness defines check(data) and main(), has a fuzz/README.md row and at least one
    input replayed in test_atheris_regressions.py."""
    tree = ast.parse(harness.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert {"check", "main"} <= functions, harness.name
    readme = (REPO_ROOT / "fuzz" / "README.md").read_text()
    assert f"| `{harness.name}` |" in readme, f"no fuzz/README.md row for {harness.name}"
    replays = (REPO_ROOT / "tests" / "fuzz" / "test_atheris_regressions.py").read_text()
    name = harness.stem.removeprefix("fuzz_")
    assert re.search(rf'\(\s*"{name}",', replays), f"no replayed input for {harness.name}"


def test_importing_the_harnesses_leaves_logging_on() -> None:
    """Replaying kept inputs imports every harness; none may switch logging off for the rest
    of the suite (fuzz_sync did, and the log-masking tests after it saw an empty log file)."""
    from tests.fuzz.test_atheris_regressions import FUZZ_DIR, _harness

    for harness in sorted(FUZZ_DIR.glob("fuzz_*.py")):
        _harness(harness.stem.removeprefix("fuzz_"))
        assert logging.root.manager.disable == logging.NOTSET, harness.name
