"""``etika psp route`` and ``etika psp echo``: the profile's PSP routing, from outside.

``route`` says which connectors, in which order, a payment would be offered to (the first
matching ``[[route]]`` less the PSPs that do not take its network or currency); ``echo``
sends each connector's echo (ISO 8583 0800/301, the REST gateways' health call) and reports
which answer — a quick check that the terminal can reach its acquirers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from etika_argtypes import CommandGroups, aid_hex, card_bin
from terminal.cli.context import CliContext

__all__ = ["register"]

#: As ``terminal.profile.Network`` (kept literal here so ``--help`` needs no import).
NETWORKS = ("visa", "mastercard", "cb", "bancontact", "domestic", "amex", "jcb")


def register(groups: CommandGroups) -> None:
    psp = groups.add_parser("psp", help="PSP connectors and routing of the profile")
    commands = psp.add_subparsers(dest="command", metavar="COMMAND", required=True)
    route = commands.add_parser("route", help="which connectors a payment would go to")
    route.add_argument("--network", required=True, choices=NETWORKS, help="card network")
    route.add_argument("--currency", help="ISO 4217 code (default: the profile's)")
    route.add_argument("--amount", default="0", help="amount as a cashier types it (12.50)")
    route.add_argument("--bin", type=card_bin,
                       help="first 6 to 8 digits of the card (BIN)")
    route.add_argument("--aid", type=aid_hex,
                       help="application identifier (hex, 5 to 16 bytes)")
    route.add_argument("--json", action="store_true", help="print JSON")
    route.set_defaults(handler=_route)
    echo = commands.add_parser("echo", help="send an echo to each connector (or one)")
    echo.add_argument("--connector", metavar="NAME", help="only this [[psp]]")
    echo.add_argument("--json", action="store_true", help="print JSON")
    echo.set_defaults(handler=_echo)




def _route(ctx: CliContext, args: argparse.Namespace) -> int:
    from edge_sync.connectors import RoutingKey
    from terminal.cli.usage import amount_option
    from terminal.psp_routing import build_router

    profile = ctx.profile()
    cur = profile.currency(args.currency) if args.currency else profile.default_currency
    amount = amount_option(args.amount, cur)
    router = build_router(profile)
    key = RoutingKey(network=args.network, currency=cur.code, amount_minor=amount.minor,
                     aid=(args.aid or "").upper(), bin=args.bin or "")
    rule = router.route_for(key)
    connectors = router.candidates(key)
    asyncio.run(router.aclose())
    if args.json:
        print(json.dumps({"route": rule.name, "connectors": connectors}))
    else:
        print(f"route {rule.name!r}: {' → '.join(connectors)}")
    return 0


def _echo(ctx: CliContext, args: argparse.Namespace) -> int:
    from edge_sync.connectors.errors import PspError
    from terminal.psp_routing import build_router

    profile = ctx.profile()
    router = build_router(profile)
    names = [args.connector] if args.connector else list(router.connectors)
    unknown = [n for n in names if n not in router.connectors]
    if unknown:
        from terminal.errors import ConfigError

        raise ConfigError([f"no [[psp]] named {unknown[0]!r} (known: "
                           f"{', '.join(router.connectors)})"])

    async def run() -> list[dict[str, Any]]:
        results = []
        for name in names:
            try:
                answer = await router.connectors[name].echo()
                results.append({"connector": name, "ok": answer.approved, "code": answer.code})
            except PspError as exc:
                results.append({"connector": name, "ok": False, "error": str(exc)})
        await router.aclose()
        return results

    results = asyncio.run(run())
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            status = "ok" if r["ok"] else f"FAILED {r.get('error') or r.get('code')}"
            print(f"{r['connector']:<14} {status}")
    return 0 if all(r["ok"] for r in results) else 1
