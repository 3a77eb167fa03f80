"""``etika card read|transact``: run the EMV kernel on a card.

The card is in a PC/SC reader (pyscard through pcscd, ``--reader NAME`` or the first
reader holding a card) or, with ``--simulated PROFILE``, in the card simulator's
in-process reader (no pcscd needed), which the simulators' distribution offers through the
``etika.card_readers`` entry point: the terminal itself never imports the simulators.

Online path. There is no PSP connector in this command (that is the payment manager's
job, a later issue), so an ARQC takes the kernel's *unable to go online* path: TAC/IAC
default decide the second cryptogram (ARC ``Y3``/``Z3``). With ``--simulated`` and
``--issuer simulated`` the card's own test issuer answers instead: it verifies the
ARQC with the issuer master keys (pyemv) and returns an ARPC, so an online approval is
a real one, never faked. ``--offline`` forces the unable-to-go-online path.

Online PIN and offline enciphered PIN need ``--pinpad PORT`` (the serial PIN pad, which
enciphers the PIN for the acquirer or for the card); without it a card asking for a PIN
moves on to its next CVM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from drivers.base import CardReader, EncryptedPin
from etika_argtypes import CommandGroups, seconds
from terminal.cli.context import CliContext
from terminal.cli.usage import amount_option
from terminal.emv.config import TransactionData
from terminal.emv.cvm import OnlinePinRequest
from terminal.emv.errors import EmvError
from terminal.emv.kernel import EmvKernel, OnlineAuthoriser, TransactionResult
from terminal.emv.offline_pin import OfflinePinRequest
from terminal.emv.selection import Chooser
from terminal.services import aid_chooser, card_session, run_card_job

if TYPE_CHECKING:
    from terminal.services import TerminalServices
    from terminal.services.psp import ProfilePspAuthoriser

__all__ = ["CARD_READER_ENTRY_POINTS", "SimulatedReader", "register"]

# The expiry is cardholder data (PCI DSS 3.2.1): shown only when asked for (--show-expiry).
_READ_KEYS = ("aid", "label", "pan_masked")
_TRANSACT_KEYS = ("aid", "label", "pan_masked", "expiry", "oda", "oda_result", "cvm", "tvr",
                  "tsi", "first_cryptogram", "cryptogram", "decision", "reason")


def register(groups: CommandGroups) -> None:
    card = groups.add_parser("card", help="read a card and run EMV transactions")
    commands = card.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reader", metavar="NAME",
                            help="PC/SC reader name (default: the first holding a card)")
        parser.add_argument("--simulated", metavar="PROFILE",
                            help="use the in-process card simulator with this card profile "
                                 "instead of pcscd (e.g. visa-credit, cb, domestic-visa)")
        parser.add_argument("--contactless", action="store_true",
                            help="run the contactless (PPSE, qVSDC) path")
        parser.add_argument("--timeout", type=seconds, default=30.0,
                            help="seconds to wait for a card (default: %(default)s)")
        parser.add_argument("--aid", metavar="HEX",
                            help="on a card with several applications, the one to use (an AID "
                                 "or its prefix); default: the card's highest priority")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    read = commands.add_parser("read", help="select the application and print its identity")
    common(read)
    read.add_argument("--show-expiry", action="store_true",
                      help="also print the card's expiry date (cardholder data: hidden by "
                           "default)")
    read.set_defaults(handler=_read)

    transact = commands.add_parser("transact", help="run a transaction to its final cryptogram")
    common(transact)
    transact.add_argument("--amount", required=True, help="amount, e.g. 25.00")
    transact.add_argument("--currency", default=None,
                          help="ISO 4217 code (default: the profile's default currency)")
    transact.add_argument("--offline", action="store_true",
                          help="the terminal cannot go online (unable-to-go-online path)")
    transact.add_argument("--issuer", choices=("none", "simulated", "psp"), default="none",
                          help="who answers an ARQC: none (unable to go online), the "
                               "simulated card's test issuer (needs --simulated), or the "
                               "profile's PSPs through its routes (ISO 8583 / REST)")
    transact.add_argument("--pinpad", metavar="PORT",
                          help="serial PIN pad for online and offline enciphered PIN "
                               "(e.g. /dev/ttyUSB0)")
    transact.set_defaults(handler=_transact)




#: The entry-point group where a distribution offers card readers by name; the simulators'
#: ``simulated`` reader (``--simulated PROFILE``) is one. The product never imports them.
CARD_READER_ENTRY_POINTS = "etika.card_readers"


class SimulatedReader(CardReader, Protocol):
    """What ``--simulated`` gets from the ``etika.card_readers`` entry point ``simulated``:
    a reader with the card inserted, whose card's test issuer answers ``--issuer simulated``."""

    def online_authoriser(self) -> OnlineAuthoriser: ...


def _reader(args: argparse.Namespace) -> CardReader | None:
    """The in-process simulated reader for ``--simulated``; ``None`` means PC/SC."""
    if not args.simulated:
        return None
    return open_simulated_reader(args.simulated, args.contactless)


def open_simulated_reader(card_profile: str, contactless: bool) -> SimulatedReader:
    """A simulated card ``card_profile`` in an in-process reader, from the simulators'
    ``etika.card_readers`` entry point (``etika card … --simulated``, ``etika pay
    --simulated``); a usage error when the simulators are not installed."""
    from importlib.metadata import entry_points

    points = [p for p in entry_points(group=CARD_READER_ENTRY_POINTS) if p.name == "simulated"]
    try:
        if not points:
            raise ImportError("no 'simulated' entry in etika.card_readers")
        open_reader: Callable[[str, str], SimulatedReader] = points[0].load()
    except ImportError as exc:
        raise _UsageError(
            f"--simulated needs the simulators, which are not installed ({exc}); install "
            "them beside the terminal (scripts/setup does: pip install -e ./simulators)"
        ) from exc
    try:
        return open_reader(card_profile, "contactless" if contactless else "contact")
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc


class _UsageError(EmvError):
    exit_code = 2


def _chooser(args: argparse.Namespace) -> Chooser:
    try:
        return aid_chooser(args.aid)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _print(result: TransactionResult, keys: tuple[str, ...], as_json: bool) -> None:
    data = result.as_json()
    shown = {key: data[key] for key in keys}
    if as_json:
        print(json.dumps(shown, ensure_ascii=False))
        return
    width = max(len(k) for k in keys)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value if value is not None else '-'}")


def _read(ctx: CliContext, args: argparse.Namespace) -> int:
    chooser = _chooser(args)
    with ctx.services(card_reader=_reader(args)) as services:
        config = services.kernel_config

        async def go(reader: CardReader) -> TransactionResult:
            async with card_session(reader, args.reader, args.timeout) as session:
                kernel = EmvKernel(config, chooser=chooser)
                return await kernel.read(session, contactless=args.contactless)

        result = run_card_job(services.card_reader, go)
    _print(result, (*_READ_KEYS, "expiry") if args.show_expiry else _READ_KEYS, args.json)
    return 0


def _transact(ctx: CliContext, args: argparse.Namespace) -> int:
    profile = ctx.profile()
    currency = profile.currency(args.currency) if args.currency else profile.default_currency
    amount = amount_option(args.amount, currency)
    if args.issuer == "simulated" and not args.simulated:
        raise _UsageError("--issuer simulated needs --simulated PROFILE (the test issuer "
                          "only knows the simulated cards' keys)")
    chooser = _chooser(args)
    data = TransactionData(
        amount=amount.minor,
        currency_numeric=currency.numeric,
        currency_exponent=currency.exponent,
        online_available=not args.offline,
    )
    if args.issuer == "psp":
        ctx.require_store()  # the PSP trace (STANs) and reversals live in the store
    with ctx.services(card_reader=_reader(args)) as services:
        config = services.kernel_config
        online: list[ProfilePspAuthoriser] = []  # the PSP authoriser, once built (Ctrl-C needs it)

        async def go(reader: CardReader) -> TransactionResult:
            async with contextlib.AsyncExitStack() as stack:
                authoriser: OnlineAuthoriser | None = None
                if args.issuer == "simulated":
                    authoriser = _simulated_issuer(reader)
                elif args.issuer == "psp":
                    # This job may run on the PC/SC reader's own loop: its PSP links too.
                    router = services.new_router()
                    stack.push_async_callback(router.aclose)
                    authoriser = services.online_authoriser(amount, router)
                    online.append(authoriser)
                session = await stack.enter_async_context(
                    card_session(reader, args.reader, args.timeout))
                pin_entry = None
                offline_pin = None
                if args.pinpad:
                    from drivers.pinpad.serial_pinpad import SerialPinPad

                    settings = profile.pinpad
                    pad = await stack.enter_async_context(
                        SerialPinPad(args.pinpad, settings.baud))

                    async def pin_entry(request: OnlinePinRequest) -> EncryptedPin:
                        return await pad.get_pin(request.pan, request.amount,
                                                 request.currency_numeric,
                                                 timeout_s=settings.pin_timeout_s)

                    async def offline_pin(request: OfflinePinRequest) -> bytes:
                        # The pad enciphers the PIN for the card; we only relay it.
                        return await pad.encipher_pin_for_card(
                            request.modulus, request.exponent, request.challenge,
                            request.amount, request.currency_numeric,
                            timeout_s=settings.pin_timeout_s)

                kernel = EmvKernel(config, pin_entry=pin_entry, authoriser=authoriser,
                                   chooser=chooser, offline_pin=offline_pin)
                return await kernel.transact(session, data, contactless=args.contactless)

        try:
            result = run_card_job(services.card_reader, go)
        except KeyboardInterrupt:
            print(_interrupted(services, online), file=sys.stderr)
            return 130
    # With a real acquirer the issuer's answer (ARC, tag 8A) is worth showing too.
    keys: tuple[str, ...] = (*_TRANSACT_KEYS, "arc") if args.issuer == "psp" else _TRANSACT_KEYS
    _print(result, keys, args.json)
    return 0


def _interrupted(services: TerminalServices, online: list[ProfilePspAuthoriser]) -> str:
    """Ctrl-C: if the authorisation had left, queue its reversal; say what happened."""
    authoriser = online[0] if online else None
    if authoriser is None or not authoriser.may_have_charged:
        return "etika: interrupted before any acquirer was asked: nothing was charged"
    for pending in authoriser.reversals():
        services.queue_reversal(authoriser.transaction_id, pending)
    return (f"etika: interrupted while the acquirer was answering transaction "
            f"{authoriser.transaction_id}: the customer may have been charged, so a reversal "
            "is queued (etika sync run sends it)")


def _simulated_issuer(reader: CardReader) -> OnlineAuthoriser:
    """The simulated card's own test issuer (``--issuer simulated``)."""
    online_authoriser = getattr(reader, "online_authoriser", None)
    if online_authoriser is None:
        raise _UsageError("--issuer simulated needs --simulated PROFILE")
    authoriser: OnlineAuthoriser = online_authoriser()
    return authoriser
