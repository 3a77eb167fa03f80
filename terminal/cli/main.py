"""Entry point of the ``etika`` console script.

Command groups are plugins: each distribution registers its groups in the entry-point group
``etika.commands`` (``name = "package.module:register"``; the terminal registers its own in
``pyproject.toml``, the simulators theirs in ``simulators/pyproject.toml``), and a group's
module is imported only when that group is run. ``etika --help`` therefore imports no
group at all, and the product never imports the simulators, the platform or the UI.

``register(subparsers)`` adds the group's parser; each command's handler takes the
:class:`CliContext` and the parsed arguments and returns the exit status.

Exit statuses, the same for every command: ``0`` done; ``1`` an error reported in one line
(an :class:`~etika_errors.EtikaError`); ``2`` a usage or profile error (argparse, a
``ConfigError``, any ``EtikaError`` whose ``exit_code`` is 2); ``70`` a bug (a traceback
in the log file, one line on stderr); ``130`` interrupted. A closed standard output (``etika
… | head``) ends the command quietly with ``0``, as other Unix tools do.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import NoReturn

from etika_argtypes import CommandGroups, not_empty
from etika_errors import EtikaError
from terminal.cli.context import CliContext, ServicesFactory

__all__ = [
    "COMMAND_ENTRY_POINTS",
    "EXIT_BUG",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "CommandGroupError",
    "EtikaArgumentParser",
    "build_parser",
    "command_groups",
    "main",
    "run_parsed",
]

#: The entry-point group every distribution registers its ``etika`` command groups in.
COMMAND_ENTRY_POINTS = "etika.commands"

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUG = 70

# The order ``etika --help`` lists the groups in, and their one-line help, so that the
# listing needs no group imported. A group from another distribution that is not named
# here is listed after these with its distribution's name.
_GROUP_HELP = {
    "config": "terminal profiles",
    "db": "the durable SQLite store",
    "hsm": "the PKCS#11 key store (SoftHSM2 token)",
    "pay": "take a payment (card, PIN pad, acquirer and PoP)",
    "refund": "refund all or part of an approved payment",
    "void": "cancel an approved payment before the end of day",
    "tx": "the terminal's payments: list, show, recover",
    "card": "read a card and run EMV transactions",
    "pinpad": "the serial PIN pad",
    "psp": "PSP connectors and routing of the profile",
    "sync": "store-and-forward to the platform (MQTT / HTTPS)",
    "platform": "the central platform (ingestion, fleet)",
    "sim": "run a simulator (PIN pad, cards, PSP, ...)",
    "ui": "the counter's Textual UI",
}

# Global options that take a value (to find the group named on the command line).
_VALUED_OPTIONS = ("--profile", "--data-dir")


class CommandGroupError(EtikaError):
    """A command group is registered but cannot be loaded (its part is not installed)."""

    exit_code = EXIT_USAGE


class EtikaArgumentParser(argparse.ArgumentParser):
    """argparse, except that a usage error never repeats a card number typed as an argument
    (``etika card read 4111111111111111`` must not print the PAN back, DESIGN §5)."""

    def error(self, message: str) -> NoReturn:
        from terminal.cli.redact import redact_card_numbers

        super().error(redact_card_numbers(message))


def command_groups() -> dict[str, EntryPoint]:
    """Every registered command group by name, in ``--help`` order."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=COMMAND_ENTRY_POINTS):
        # An editable install can be seen twice on sys.path; the first one wins.
        found.setdefault(point.name, point)
    order = {name: i for i, name in enumerate(_GROUP_HELP)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)),
                                                        item[0])))


def _chosen_group(argv: Sequence[str]) -> str | None:
    """The command group named on the command line (the first word that is not an option)."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in _VALUED_OPTIONS:
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        return word
    return None


def _load(point: EntryPoint) -> Callable[[CommandGroups], None]:
    try:
        register: Callable[[CommandGroups], None] = point.load()
    except ImportError as exc:
        dist = point.dist.name if point.dist is not None else "its distribution"
        raise CommandGroupError(
            f"`etika {point.name}` is not available in this install ({point.value} cannot be "
            f"imported: {exc}); install {dist} with its extras (scripts/setup does)"
        ) from exc
    return register


def build_parser(argv: Sequence[str] | None = None, *, load_all: bool = False
                 ) -> argparse.ArgumentParser:
    """The ``etika`` parser. Only the group named in ``argv`` is imported and registered
    (every group with ``load_all``); the others are listed by name for ``--help``."""
    parser = EtikaArgumentParser(
        prog="etika",
        description="Étika payment terminal and edge node.",
    )
    parser.add_argument(
        "--profile",
        type=not_empty,
        default=os.environ.get("ETIKA_PROFILE") or "default",
        help="terminal profile: a name under firmware-config/ or a directory "
        "(env ETIKA_PROFILE; default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=lambda text: Path(not_empty(text)),
        default=Path(os.environ.get("ETIKA_DATA_DIR") or "var"),
        help="where the database, logs and key-store token live "
        "(env ETIKA_DATA_DIR; default: %(default)s)",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    chosen = None if argv is None else _chosen_group(argv)
    for name, point in command_groups().items():
        if load_all or name == chosen:
            _load(point)(groups)
        else:
            dist = point.dist.name if point.dist is not None else "a plugin"
            groups.add_parser(name, help=_GROUP_HELP.get(name, f"commands from {dist}"))
    return parser


def _usage_error(message: str) -> int:
    print(f"etika: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None, *,
         services_factory: ServicesFactory | None = None) -> int:
    """Run one ``etika`` command; ``services_factory(ctx, card_reader=…)`` replaces how the
    commands build :class:`~terminal.services.TerminalServices` (tests inject doubles)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            parser = build_parser(argv)
        except EtikaError as exc:
            return _usage_error(str(exc))
        args = parser.parse_args(argv)
        return run_parsed(args, services_factory)
    except BrokenPipeError:
        _silence_stdout()
        return 0


def run_parsed(args: argparse.Namespace,
               services_factory: ServicesFactory | None = None) -> int:
    """Run the parsed command ``args.handler``; map what it raises to the exit status."""
    context = CliContext(profile_name=args.profile, data_dir=args.data_dir,
                         services_factory=services_factory)
    handler = getattr(args, "handler", None)
    if handler is None:  # a group registered no handler for this command: a bug of the group
        return _usage_error(f"`etika {args.group}` needs a command; see etika {args.group} -h")
    from terminal.logs import configure_logging

    try:
        configure_logging(context.log_dir if context.data_dir.exists() else None)
    except OSError as exc:
        print(f"etika: error: cannot write logs under {context.log_dir}: {exc.strerror}; "
              "check --data-dir / ETIKA_DATA_DIR", file=sys.stderr)
        return EXIT_ERROR
    try:
        status: int = handler(context, args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit as a traceback
    except BrokenPipeError:
        raise
    except EtikaError as exc:
        from terminal.logs import mask_pan_text

        print(f"etika: error: {mask_pan_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("etika: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug, not a user mistake: the traceback goes to the log file (masked), the user
        # gets one line saying where to find it.
        import structlog

        from terminal.logs import FILE_ONLY, LOG_FILE_NAME, mask_pan_text

        structlog.get_logger("etika.cli").exception("internal error", command=args.group,
                                                    **{FILE_ONLY: True})
        log_file = context.log_dir / LOG_FILE_NAME
        where = (f"details in {log_file}" if log_file.exists()
                 else f"no log kept: the data dir {context.data_dir} does not exist")
        print(f"etika: internal error: {type(exc).__name__}: {mask_pan_text(str(exc))} "
              f"({where})", file=sys.stderr)
        return EXIT_BUG
    return status


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush does
    not raise again (Python's documented recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (a test's capture)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
