"""``etika pinpad get-pin``: one PIN entry on a serial PIN pad, from the command line.

The PAN is read from standard input (never argv, which other users can see in ``ps``);
on a terminal it is read without echo. The output is the enciphered PIN block and its
KSN — the clear PIN never reaches this process.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from drivers.base import EncryptedPin
from drivers.errors import PinPadError
from drivers.pinpad import SerialPinPad
from etika_argtypes import CommandGroups, baud
from etika_errors import EtikaError
from terminal.cli.context import CliContext
from terminal.cli.usage import amount_option

__all__ = ["PanInputError", "register"]


class PanInputError(EtikaError):
    """The PAN given on standard input is not a card number."""

    exit_code = 2


def register(groups: CommandGroups) -> None:
    pinpad = groups.add_parser("pinpad", help="the serial PIN pad")
    commands = pinpad.add_subparsers(dest="command", metavar="COMMAND", required=True)
    get_pin = commands.add_parser(
        "get-pin",
        help="ask for a PIN; print the DUKPT-enciphered PIN block and KSN",
        description="Read the PAN from standard input, run one PIN entry on the PIN pad and "
        'print {"ksn", "pin_block", "format"}.',
    )
    get_pin.add_argument(
        "--port", help="serial port, e.g. /dev/ttyUSB0 (default: the profile's [pinpad] port)"
    )
    get_pin.add_argument(
        "--baud", type=baud, help="baud rate (default: the profile's [pinpad] baud)"
    )
    get_pin.add_argument("--amount", required=True, help="amount as typed, e.g. 12.00 or 12,50")
    get_pin.add_argument("--currency", default="MAD", help="ISO 4217 code (default %(default)s)")
    get_pin.add_argument(
        "--timeout",
        type=float,
        help="seconds the cardholder has to enter the PIN (default: the profile's)",
    )
    get_pin.add_argument("--json", action="store_true", help="print one line of JSON")
    get_pin.set_defaults(handler=_get_pin)




def _read_pan() -> str:
    if sys.stdin.isatty():
        raw = getpass.getpass("PAN: ")
    else:
        raw = sys.stdin.readline()
    pan = raw.strip().replace(" ", "")
    if not (pan.isascii() and pan.isdigit() and 13 <= len(pan) <= 19):
        raise PanInputError("the PAN on standard input must be 13 to 19 digits")
    return pan


async def _run(args: argparse.Namespace, pan: str, amount_minor: int, numeric: int) -> EncryptedPin:
    async with SerialPinPad(args.port, args.baud) as pad:
        return await pad.get_pin(pan, amount_minor, numeric, timeout_s=args.timeout)


def _get_pin(ctx: CliContext, args: argparse.Namespace) -> int:
    if args.port is None or args.baud is None or args.timeout is None:
        pinpad = ctx.profile().pinpad
        args.port = args.port or pinpad.port
        args.baud = args.baud or pinpad.baud
        args.timeout = args.timeout if args.timeout is not None else pinpad.pin_timeout_s
    if not 1 <= args.timeout <= 300:
        raise PanInputError("--timeout must be between 1 and 300 seconds")
    amount = amount_option(args.amount, args.currency)
    pan = _read_pan()
    try:
        encrypted = asyncio.run(_run(args, pan, amount.minor, amount.currency.numeric))
    except PinPadError as exc:
        if not args.json:
            raise
        print(json.dumps({"error": str(exc), "type": type(exc).__name__, **exc.fields}))
        return exc.exit_code
    if args.json:
        print(json.dumps(encrypted.as_json()))
    else:
        data = encrypted.as_json()
        print(f"ksn {data['ksn']}  pin_block {data['pin_block']}  format {data['format']}")
    return 0
