"""``etika config check [DIR]``: validate a terminal profile."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from terminal.cli.context import CliContext
from terminal.errors import ConfigError
from terminal.profile import load_profile

__all__ = ["register"]


def register(groups: Any) -> None:
    config = groups.add_parser("config", help="terminal profiles")
    commands = config.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="validate a profile; prints ok, or every error as file:key: reason (exit 2)",
    )
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="profile directory (default: the profile chosen with --profile)",
    )
    check.add_argument("--json", action="store_true", help="print a JSON report")
    check.set_defaults(handler=_check)


def _check(ctx: CliContext, args: argparse.Namespace) -> int:
    directory = args.directory or ctx.profile_dir
    try:
        profile = load_profile(directory)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"ok": False, "directory": str(directory), "errors": exc.problems}))
        else:
            for problem in exc.problems:
                print(problem)
        return exc.exit_code
    if args.json:
        print(json.dumps({
            "ok": True,
            "directory": str(directory),
            "terminal_id": profile.terminal.terminal_id,
            "aids": [a.name for a in profile.aids],
            "capks": len(profile.capks),
        }))
    else:
        print("ok")
    return 0
