"""``etika ui``: the merchant counter on this terminal's services.

The PIN pad and the receipt printer are the profile's (``[pinpad] port``, ``[printer]
port``) unless given here; ``--simulated CARD`` takes payments from a simulated card in an
in-process reader instead of PC/SC (needs the simulators). ``etika demo`` starts every
simulator and opens this same app with a card shelf.
"""

from __future__ import annotations

import argparse

from etika_argtypes import CommandGroups
from terminal.cli.context import CliContext

__all__ = ["register"]


def register(groups: CommandGroups) -> None:
    ui = groups.add_parser("ui", help="the merchant counter (Textual): sale, history, end of day")
    ui.add_argument("--simulated", metavar="CARD",
                    help="a simulated card in an in-process reader (e.g. visa-credit)")
    ui.add_argument("--contactless", action="store_true",
                    help="with --simulated: the simulated card is tapped")
    ui.add_argument("--pinpad", metavar="PORT",
                    help="serial PIN pad (default: the profile's [pinpad] port if it exists)")
    ui.add_argument("--printer", metavar="PORT",
                    help="ESC/POS receipt printer (default: the profile's [printer] port)")
    ui.add_argument("--locale", choices=("fr", "en"),
                    help="language of the counter (default: the profile's)")
    ui.set_defaults(handler=_run)


def _run(ctx: CliContext, args: argparse.Namespace) -> int:
    import os

    from drivers.printer import EscposSerialPrinter
    from ui.app import build_app
    from ui.services import TerminalCounterServices

    profile = ctx.profile()
    reader = None
    if args.simulated:
        from terminal.cli.cmd_card import open_simulated_reader

        reader = open_simulated_reader(args.simulated, args.contactless)
    pinpad = args.pinpad or (profile.pinpad.port if os.path.exists(profile.pinpad.port)
                             else None)
    printer_port = args.printer or profile.printer.port
    printer = EscposSerialPrinter(printer_port, profile.printer.baud) if printer_port else None
    with ctx.services(card_reader=reader) as services:
        counter = TerminalCounterServices(services, pinpad_port=pinpad, printer=printer,
                                          locale=args.locale)
        try:
            build_app(counter).run()
        finally:
            if printer is not None:
                printer.close()
    return 0
