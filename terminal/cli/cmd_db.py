"""``etika db status`` and ``etika db verify-journal``: the durable store, from outside."""

from __future__ import annotations

import argparse
import json
from typing import Any

from terminal.cli.context import CliContext
from terminal.errors import JournalError
from terminal.store import Store, store_status

__all__ = ["register"]


def register(groups: Any) -> None:
    db = groups.add_parser("db", help="the durable SQLite store")
    commands = db.add_subparsers(dest="command", metavar="COMMAND", required=True)
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


def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    with Store.open(ctx.database_path) as store:
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
    with Store.open(ctx.database_path) as store:
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
