"""One exit-status convention for every `etika` command (issue #10 item 7): 0 done, 1 an
error reported in one line, 2 a usage or profile error, 70 a bug, 130 interrupted."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from etika_errors import EtikaError
from terminal.cli.main import EXIT_BUG, EXIT_ERROR, EXIT_USAGE, build_parser, main, run_parsed

REPO = Path(__file__).resolve().parents[2]
#: Every module that defines command handlers, whatever distribution registers it.
HANDLER_MODULES = sorted([*(REPO / "terminal" / "cli").glob("cmd_*.py"),
                          REPO / "edge_sync" / "platform" / "cli.py",
                          REPO / "simulators" / "cli.py"])


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
            ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command: (its words, its parser)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        return [(path, parser)]
    found = []
    for action in subcommands:
        for name, sub in action.choices.items():
            found += _leaves(sub, (*path, name))
    return found


LEAVES = _leaves(build_parser(load_all=True))
COMMANDS = [words for words, _ in LEAVES]


def test_the_walk_finds_every_group() -> None:
    """The list covers every group, so the tests below are not vacuous."""
    groups = {words[0] for words in COMMANDS}
    assert {"config", "db", "hsm", "card", "pinpad", "psp", "sync", "platform", "sim",
            "pay", "tx"} <= groups
    assert len(COMMANDS) > 30


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_every_command_has_a_handler(words: tuple[str, ...]) -> None:
    """Each command sets the handler main runs (so its errors map the same way)."""
    parser = dict(LEAVES)[words]
    assert callable(parser.get_default("handler"))


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_every_command_answers_a_usage_error_with_2(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown option is a usage error: exit 2, a usage line, no traceback."""
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--no-such-option-anywhere"])
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: etika" in err and "Traceback" not in err


class _Reported(EtikaError):
    """An error a command reports."""


class _Usage(EtikaError):
    """A value the command cannot use."""

    exit_code = 2


def _raising(exc: BaseException) -> Callable[..., int]:
    def handler(ctx: object, args: object) -> int:
        raise exc

    return handler


@pytest.mark.parametrize(("raised", "status"), [
    (_Reported("it failed"),        EXIT_ERROR),
    (_Usage("--x: not usable"),     EXIT_USAGE),
    (RuntimeError("a bug"),         EXIT_BUG),
    (KeyboardInterrupt(),           130),
])
@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_every_command_maps_what_it_raises_to_one_status(
    words: tuple[str, ...], raised: BaseException, status: int, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Whatever command raises it, an error of ours exits with its code (1 or 2), a bug 70
    with one line pointing at the log, Ctrl-C 130; never a traceback on the terminal."""
    args = argparse.Namespace(profile="default", data_dir=tmp_path / "var", group=words[0],
                              command=words[-1], handler=_raising(raised))
    assert run_parsed(args) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("etika:")


def _returned_statuses(path: Path) -> set[int]:
    """Literal statuses the handlers (functions taking ``ctx, args``) of ``path`` return."""
    found: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef) or [a.arg for a in node.args.args][:2] != [
                "ctx", "args"]:
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.Return) and isinstance(child.value, ast.Constant) \
                    and isinstance(child.value.value, int):
                found.add(child.value.value)
    return found


@pytest.mark.parametrize("module", HANDLER_MODULES, ids=lambda p: p.name)
def test_handlers_return_only_the_conventional_statuses(module: Path) -> None:
    """No handler returns a status outside 0, 1, 2 and 130, nor calls sys.exit itself."""
    assert _returned_statuses(module) <= {0, 1, 2, 130}
    assert "sys.exit(" not in module.read_text(encoding="utf-8")
