"""Entry point of the ``etika`` console script.

Every command group lives in its own ``cmd_<group>.py`` module exposing
``register(subparsers)``; each command's handler takes the :class:`CliContext` and the
parsed arguments and returns the process exit status. Errors of ours (``EtikaError``)
end the command with their one-line message and exit status, never a traceback; a
wrong argument is argparse's usage error (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from etika_errors import EtikaError
from terminal.cli.context import CliContext
from terminal.logs import LOG_FILE_NAME, configure_logging, mask_pan_text

if TYPE_CHECKING:
    from terminal.services import TerminalServices

__all__ = ["build_parser", "main"]

# The command groups, in the order ``etika --help`` lists them. Each name is a module
# ``terminal.cli.cmd_<name>`` with a ``register(subparsers)`` function.
COMMAND_GROUPS = ("config", "db", "hsm", "platform", "pinpad", "sim", "card", "sync", "psp")


def _not_empty(text: str) -> str:
    # An empty --profile or --data-dir would silently mean the current directory.
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etika",
        description="Étika payment terminal and edge node.",
    )
    parser.add_argument(
        "--profile",
        type=_not_empty,
        default=os.environ.get("ETIKA_PROFILE") or "default",
        help="terminal profile: a name under firmware-config/ or a directory "
        "(env ETIKA_PROFILE; default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=lambda text: Path(_not_empty(text)),
        default=Path(os.environ.get("ETIKA_DATA_DIR") or "var"),
        help="where the database, logs and key-store token live "
        "(env ETIKA_DATA_DIR; default: %(default)s)",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for name in COMMAND_GROUPS:
        import_module(f"terminal.cli.cmd_{name}").register(groups)
    return parser


def main(argv: Sequence[str] | None = None, *,
         services_factory: Callable[..., TerminalServices] | None = None) -> int:
    """Run one ``etika`` command; ``services_factory(ctx, **injected)`` replaces how the
    commands build :class:`~terminal.services.TerminalServices` (tests inject doubles)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    context = CliContext(profile_name=args.profile, data_dir=args.data_dir,
                         services_factory=services_factory)
    try:
        configure_logging(context.log_dir)
    except OSError as exc:
        print(f"etika: error: cannot write logs under {context.log_dir}: {exc.strerror}; "
              "check --data-dir / ETIKA_DATA_DIR", file=sys.stderr)
        return 1
    try:
        status: int = args.handler(context, args)
    except EtikaError as exc:
        print(f"etika: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("etika: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # A bug, not a user mistake: the traceback goes to the log file (masked), the user
        # gets one line saying where to find it.
        structlog.get_logger("etika.cli").exception("internal error", command=args.group)
        print(
            f"etika: internal error: {type(exc).__name__}: {mask_pan_text(str(exc))} "
            f"(details in {context.log_dir / LOG_FILE_NAME})",
            file=sys.stderr,
        )
        return 70
    return status


if __name__ == "__main__":
    raise SystemExit(main())
