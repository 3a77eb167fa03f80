"""``etika db init|status|verify-journal``: the durable store, from outside.

Only ``init`` (and ``etika hsm init``, which scripts/setup runs) creates a store; the other
commands refuse a data dir without one, so that a mistyped ``--data-dir`` is named.
"""

from __future__ import annotations

import argparse
import json

from etika_argtypes import CommandGroups
from terminal.cli.context import CliContext
from terminal.errors import JournalError
from terminal.store import Store, store_status

__all__ = ["create_store", "register"]


def register(groups: CommandGroups) -> None:
    db = groups.add_parser("db", help="the durable SQLite store")
    commands = db.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init = commands.add_parser(
        "init", help="create the store in the data dir if it has none (idempotent)"
    )
    init.set_defaults(handler=_init)
    status = commands.add_parser(
        "status", help="schema version, rows per table and state, outbox depth per destination"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)
    verify = commands.add_parser(
        "verify-journal",
        help="check the audit journal's hash chain; exit 1 naming the first bad entry",
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(handler=_verify_journal)


def create_store(ctx: CliContext) -> bool:
    """Create the data dir and its store when absent; ``True`` when it was created."""
    existed = ctx.database_path.exists()
    ctx.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(ctx.database_path):
        pass
    return not existed


def _init(ctx: CliContext, args: argparse.Namespace) -> int:
    if create_store(ctx):
        print(f"created the store {ctx.database_path}")
    else:
        print(f"ok: the store {ctx.database_path} already exists")
    return 0


def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    with Store.open(ctx.require_store()) as store:
        report = store_status(store)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"store   {report['path']}  (schema version {report['schema_version']})")
    for table, entry in report["tables"].items():
        states = ", ".join(f"{s}: {n}" for s, n in entry.get("by_state", {}).items())
        print(f"  {table:<18} {entry['rows']:>8}" + (f"   {states}" if states else ""))
    if report["outbox"]:
        print("outbox depth per destination")
        for destination, entry in report["outbox"].items():
            age = entry["oldest_age_s"]
            oldest = f", oldest {age:.0f} s" if age is not None else ""
            print(f"  {destination:<18} {entry['depth']:>8}{oldest}, dead {entry['dead']}")
    else:
        print("outbox empty")
    return 0


def _verify_journal(ctx: CliContext, args: argparse.Namespace) -> int:
    with Store.open(ctx.require_store()) as store:
        try:
            count = store.verify_journal()
        except JournalError as exc:
            if args.json:
                print(json.dumps({"ok": False, "error": str(exc), **exc.fields}))
            else:
                print(f"etika: {exc}")
            return 1
    if args.json:
        print(json.dumps({"ok": True, "entries": count}))
    else:
        print(f"ok: audit journal intact ({count} entries)")
    return 0
