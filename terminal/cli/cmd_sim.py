"""``etika sim <kind>``: start the simulators (the other side of every link).

Each simulator adds one ``register_<kind>(sim_subparsers)`` function here and calls it
from :func:`register`; the simulators are imported lazily so that the terminal never
loads them unless asked.
"""

from __future__ import annotations

import argparse
from typing import Any

from terminal.cli.context import CliContext

__all__ = ["register", "register_pinpad"]


def register(groups: Any) -> None:
    sim = groups.add_parser("sim", help="run a simulator (PIN pad, cards, PSP, ...)")
    kinds = sim.add_subparsers(dest="kind", metavar="KIND", required=True)
    register_pinpad(kinds)


# --- PIN pad ----------------------------------------------------------------------------


def register_pinpad(kinds: Any) -> None:
    pinpad = kinds.add_parser(
        "pinpad",
        help="a serial PIN pad on a pseudo-terminal (prints the port path, serves until stopped)",
        description="Serve a simulated DUKPT PIN pad on a pseudo-terminal. The first line "
        "printed is the port path to give to `etika pinpad get-pin --port`. Test keys only: "
        "a 10-byte KSN means TDES DUKPT and ISO 9564 format 0, a 12-byte KSN AES DUKPT and "
        "format 4.",
    )
    pinpad.add_argument("--bdk", metavar="HEX", help="test base derivation key (16 bytes)")
    pinpad.add_argument(
        "--ksn", metavar="HEX", help="initial key serial number (10 bytes TDES, 12 bytes AES)"
    )
    pinpad.add_argument(
        "--scheme",
        choices=("tdes", "aes"),
        default="tdes",
        help="without --bdk/--ksn: which documented test keys to use (default: %(default)s)",
    )
    pinpad.add_argument(
        "--pin", metavar="DIGITS", help="the PIN the scripted cardholder types (default 1234)"
    )
    pinpad.add_argument(
        "--faults",
        metavar="SPEC",
        help="comma-separated faults: noise, bad-lrc=N, nak=N, mute=N, silent, slow=SECONDS, "
        "hangup, cancel=N, timeout=N",
    )
    pinpad.set_defaults(handler=_pinpad)


def _pinpad(ctx: CliContext, args: argparse.Namespace) -> int:
    from simulators.pinpad.faults import parse_faults
    from simulators.pinpad.run import build_device, serve

    device = build_device(args.bdk, args.ksn, args.pin, args.scheme)
    parse_faults(args.faults)  # refuse a bad spec before printing a path
    return serve(device, args.faults)
