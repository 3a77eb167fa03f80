"""``etika card read|transact``: run the EMV kernel on a card.

The card is in a PC/SC reader (pyscard through pcscd, ``--reader NAME`` or the first
reader holding a card) or, with ``--simulated PROFILE``, in the card simulator's
in-process reader (no pcscd needed; profiles of ``simulators.card.profiles``).

Online path. There is no PSP connector in this command (that is the payment manager's
job, a later issue), so an ARQC takes the kernel's *unable to go online* path: TAC/IAC
default decide the second cryptogram (ARC ``Y3``/``Z3``). With ``--simulated`` and
``--issuer simulated`` the card's own test issuer answers instead: it verifies the
ARQC with the issuer master keys (pyemv) and returns an ARPC, so an online approval is
a real one, never faked. ``--offline`` forces the unable-to-go-online path.

Online PIN needs ``--pinpad PORT`` (the serial PIN pad); without it a card asking for
online PIN moves on to its next CVM (TVR "PIN pad not present").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from drivers.base import CardReader, CardSession
from terminal.cli.context import CliContext
from terminal.emv.config import TransactionData
from terminal.emv.cvm import OnlinePinRequest
from terminal.emv.errors import EmvError, NoApplication
from terminal.emv.kernel import (
    EmvKernel,
    OnlineAuthoriser,
    OnlineRequest,
    OnlineResponse,
    TransactionResult,
)
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.selection import Candidate, Chooser, choose_first
from terminal.money import Amount, parse_amount
from terminal.profile import Profile

__all__ = ["register"]

T = TypeVar("T")

_READ_KEYS = ("aid", "label", "pan_masked", "expiry")
_TRANSACT_KEYS = ("aid", "label", "pan_masked", "expiry", "oda", "oda_result", "cvm", "tvr",
                  "tsi", "first_cryptogram", "cryptogram", "decision")


def register(groups: Any) -> None:
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
        parser.add_argument("--timeout", type=_seconds, default=30.0,
                            help="seconds to wait for a card (default: %(default)s)")
        parser.add_argument("--aid", metavar="HEX",
                            help="on a card with several applications, the one to use (an AID "
                                 "or its prefix); default: the card's highest priority")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    read = commands.add_parser("read", help="select the application and print its identity")
    common(read)
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
                          help="serial PIN pad for online PIN (e.g. /dev/ttyUSB0)")
    transact.set_defaults(handler=_transact)


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (``nan`` would wait for ever)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


@asynccontextmanager
async def _session(
    args: argparse.Namespace, pcsc: CardReader | None
) -> AsyncIterator[tuple[CardSession, Any]]:
    """A card session: the in-process simulated card, or the card in ``pcsc``'s reader."""
    reader: CardReader
    sim_card = None
    if args.simulated:
        # pyemv (the simulator's cryptography) uses TDES through a deprecated import path.
        warnings.filterwarnings("ignore", message=".*TripleDES.*")
        from simulators.card.profiles import PROFILES
        from simulators.card.reader import in_process_reader

        if args.simulated not in PROFILES:
            raise _UsageError(f"unknown card profile {args.simulated!r}; known: "
                              f"{', '.join(PROFILES)}")
        try:
            sim = in_process_reader(args.simulated,
                                    "contactless" if args.contactless else "contact")
        except ValueError as exc:
            raise _UsageError(str(exc)) from exc
        reader, sim_card = sim, sim.card
    else:
        if pcsc is None:
            raise TypeError("a PC/SC session needs the reader _run_card_job opened")
        reader = pcsc
    name = await reader.wait_for_card(args.reader, timeout=args.timeout)
    session = await reader.connect(name)
    try:
        yield session, sim_card
    finally:
        await session.close()


def _run_card_job(
    args: argparse.Namespace, job: Callable[[CardReader | None], Coroutine[Any, Any, T]]
) -> T:
    """Run ``job`` to completion: in-process for a simulated card (given no reader), else on
    the PC/SC reader's own I/O thread (:meth:`drivers.pcsc.PcscReader.run_card_job`), where
    its APDUs need no thread hop."""
    if args.simulated:
        return asyncio.run(job(None))
    from drivers.pcsc import PcscReader

    reader = PcscReader()

    async def on_reader_thread() -> T:
        try:
            return await reader.run_card_job(lambda: job(reader))
        finally:
            await reader.aclose()

    return asyncio.run(on_reader_thread())


class _UsageError(EmvError):
    exit_code = 2


class _PspAuthoriser:
    """The kernel's online authoriser over the profile's PSP routes.

    The route depends on the card's network, known only once the kernel has selected the
    application: the network is looked up from the profile's AID table when the ARQC
    arrives, then :class:`terminal.psp_routing.KernelAuthoriser` seals the card data (P2PE)
    and goes through the router (breakers, fall-through, reversal on timeout).
    """

    def __init__(self, profile: Profile, amount: Amount) -> None:
        from terminal.psp_routing import build_router

        self._profile = profile
        self._amount = amount
        self._router = build_router(profile)

    def _network(self, aid: bytes) -> str:
        wanted = aid.hex().upper()
        for entry in self._profile.aids:
            if wanted == entry.aid or (entry.partial_match and wanted.startswith(entry.aid)):
                return entry.network
        raise NoApplication(f"application {wanted} is not in the profile: no route for it")

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        from edge_sync.connectors import Amount as PspAmount
        from terminal.psp_routing import KernelAuthoriser

        bridge = KernelAuthoriser(
            self._router,
            uuid.uuid4(),
            PspAmount(self._amount.minor, self._amount.currency.code,
                      self._amount.currency.numeric, self._amount.currency.exponent),
            network=self._network(request.aid),
        )
        return await bridge.authorise(request)


def _chooser(args: argparse.Namespace) -> Chooser:
    """The application choice: ``--aid`` when given, else the card's priority order."""
    if not args.aid:
        return choose_first
    try:
        wanted = bytes.fromhex(args.aid)
    except ValueError:
        raise _UsageError(f"--aid {args.aid!r} is not hexadecimal") from None

    async def choose(candidates: Sequence[Candidate]) -> Candidate:
        for candidate in candidates:
            if candidate.aid.startswith(wanted):
                return candidate
        offered = ", ".join(f"{c.aid.hex().upper()} ({c.display_name})" for c in candidates)
        raise NoApplication(f"the card has no application {args.aid.upper()}; it offers {offered}")

    return choose


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
    config = kernel_config_from_profile(ctx.profile())

    async def go(pcsc: CardReader | None) -> TransactionResult:
        async with _session(args, pcsc) as (session, _):
            kernel = EmvKernel(config, chooser=_chooser(args))
            return await kernel.read(session, contactless=args.contactless)

    _print(_run_card_job(args, go), _READ_KEYS, args.json)
    return 0


def _transact(ctx: CliContext, args: argparse.Namespace) -> int:
    profile = ctx.profile()
    config = kernel_config_from_profile(profile)
    currency = profile.currency(args.currency) if args.currency else profile.default_currency
    amount = parse_amount(args.amount, currency)
    if args.issuer == "simulated" and not args.simulated:
        raise _UsageError("--issuer simulated needs --simulated PROFILE (the test issuer "
                          "only knows the simulated cards' keys)")
    data = TransactionData(
        amount=amount.minor,
        currency_numeric=currency.numeric,
        currency_exponent=currency.exponent,
        online_available=not args.offline,
    )

    async def go(pcsc: CardReader | None) -> TransactionResult:
        async with _session(args, pcsc) as (session, sim_card):
            authoriser: OnlineAuthoriser | None = None
            if args.issuer == "simulated" and sim_card is not None:
                from terminal.cli.sim_issuer import SimulatedIssuer

                authoriser = SimulatedIssuer(sim_card.profile)
            elif args.issuer == "psp":
                authoriser = _PspAuthoriser(profile, amount)
            if args.pinpad:
                from drivers.pinpad.serial_pinpad import SerialPinPad

                pinpad_settings = ctx.profile().pinpad
                async with SerialPinPad(args.pinpad, pinpad_settings.baud) as pad:

                    async def pin_entry(request: OnlinePinRequest) -> Any:
                        return await pad.get_pin(request.pan, request.amount,
                                                 request.currency_numeric,
                                                 timeout_s=pinpad_settings.pin_timeout_s)

                    kernel = EmvKernel(config, pin_entry=pin_entry, authoriser=authoriser,
                                       chooser=_chooser(args))
                    return await kernel.transact(session, data, contactless=args.contactless)
            kernel = EmvKernel(config, authoriser=authoriser, chooser=_chooser(args))
            return await kernel.transact(session, data, contactless=args.contactless)

    result = _run_card_job(args, go)
    # With a real acquirer the issuer's answer (ARC, tag 8A) is worth showing too.
    keys: tuple[str, ...] = (*_TRANSACT_KEYS, "arc") if args.issuer == "psp" else _TRANSACT_KEYS
    _print(result, keys, args.json)
    return 0
