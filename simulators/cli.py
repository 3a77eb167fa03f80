"""``etika sim <kind>``: start the simulators (the other side of every link).

A command group of the ``etika`` console script that the simulators' own distribution
(``simulators/pyproject.toml``) registers through the ``etika.commands`` entry point: the
terminal never imports it, and without the simulators installed there is no ``etika sim``.
Each simulator adds one ``register_<kind>(sim_subparsers)`` function here and calls it
from :func:`register`; the simulator itself is imported only when its command runs.
"""

from __future__ import annotations

import argparse

from etika_argtypes import CommandGroups, milliseconds, port_or_zero
from etika_argtypes import port as _port
from terminal.cli.context import CliContext

__all__ = [
    "register", "register_card", "register_pinpad", "register_pop", "register_printer",
    "register_psp"]


def register(groups: CommandGroups) -> None:
    sim = groups.add_parser("sim", help="run a simulator (PIN pad, cards, PSP, ...)")
    kinds = sim.add_subparsers(dest="kind", metavar="KIND", required=True)
    register_pinpad(kinds)
    register_psp(kinds)
    register_card(kinds)
    register_pop(kinds)
    register_printer(kinds)


# --- PIN pad ----------------------------------------------------------------------------


def register_pinpad(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pinpad = kinds.add_parser(
        "pinpad",
        help="a serial PIN pad on a pseudo-terminal (prints the port path, serves until stopped)",
        description="Serve a simulated DUKPT PIN pad on a pseudo-terminal. The first line "
        "printed is the port path to give to `etika pinpad get-pin --port`. Test keys only: "
        "a 10-byte KSN means TDES DUKPT and ISO 9564 format 0, a 12-byte KSN AES DUKPT and "
        "format 4.",
    )
    pinpad.add_argument(
        "--bdk",
        metavar="HEX",
        help="test base derivation key (16 bytes TDES; 16, 24 or 32 bytes AES)",
    )
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


# --- PSP (acquirer hosts and REST gateways) ---------------------------------------------


def register_psp(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    psp = kinds.add_parser(
        "psp",
        help="a simulated acquirer: ISO 8583 host or Stripe/PayPal-like REST gateway",
        description="Serve a simulated PSP on 127.0.0.1 until interrupted. It opens the "
        "P2PE envelope with its TEST private key (simulators/psp/keys/), verifies ARQCs with "
        "the card simulator's issuer keys and PIN blocks with the test BDKs, applies issuer "
        "rules (balance, limits, expiry, lost/stolen) and deduplicates by idempotency key.",
    )
    psp.add_argument(
        "--kind",
        required=True,
        choices=("iso8583", "stripe", "paypal"),
        help="which protocol to speak",
    )
    psp.add_argument("--port", required=True, type=port_or_zero, metavar="N",
                     help="TCP port (0: any free port; the first line printed says which)")
    psp.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    psp.add_argument(
        "--faults",
        metavar="SPEC",
        help="comma-separated faults: latency=SECONDS, timeout=N, drop=N, drop-after=N, "
        "decline=CODE[:N], duplicate=N, malformed=N, truncated=N",
    )
    psp.add_argument("--key", metavar="PEM", help="P2PE private key (default: the TEST key)")
    psp.add_argument(
        "--control-port", type=port_or_zero, metavar="N",
        help="iso8583 only: also serve GET /ledger/summary and POST /v1/admin/faults on "
        "127.0.0.1:N (the in-memory ledger for reconciliation; faults without a restart; "
        "0: any free port, printed in the first line)")
    psp.add_argument("--capture", metavar="FILE",
                     help="iso8583 only: append every frame received to FILE, as received "
                     "(tests that scan the wire)")
    psp.set_defaults(handler=_psp)


def _psp(ctx: CliContext, args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulators.psp.errors import PspSimulatorError
    from simulators.psp.faults import parse_faults
    from simulators.psp.server import run

    parse_faults(args.faults)  # refuse a bad spec before binding
    key = Path(args.key) if args.key else None
    if (args.control_port is not None or args.capture) and args.kind != "iso8583":
        raise PspSimulatorError("--control-port and --capture are for --kind iso8583 only")
    return run(args.kind, host=args.host, port=args.port, faults=args.faults, key=key,
               control_port=args.control_port,
               capture=Path(args.capture) if args.capture else None)


# --- EMV card (on pcscd through vsmartcard-vpcd) -----------------------------------------


def register_card(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = kinds.add_parser(
        "card",
        help="an EMV card on pcscd's virtual reader (vsmartcard-vpcd), served until stopped",
        description="Connect a simulated EMV card to the vpcd driver inside pcscd: port "
        "35963 is reader 'Virtual PCD 00 00', 35964 is 'Virtual PCD 00 01'. The card is "
        "inserted while this runs; Ctrl-C removes it. Cryptograms are real (test issuer "
        "keys, simulators/card/issuer.py) and the RSA certificates chain to the default "
        "profile's test CAPKs. --list-profiles shows the cards.",
    )
    card.add_argument("--profile", metavar="NAME", help="card profile, e.g. visa-credit, cb")
    card.add_argument(
        "--port",
        type=_port,
        default=35963,
        metavar="N",
        help="vpcd port (default: %(default)s = Virtual PCD 00 00)",
    )
    card.add_argument("--host", default="127.0.0.1", help="vpcd address (default: %(default)s)")
    card.add_argument(
        "--contactless", action="store_true", help="present the contactless interface (PPSE, qVSDC)"
    )
    card.add_argument(
        "--faults",
        metavar="LIST",
        help="comma-separated: tamper-issuer-cert, tamper-icc-cert, tamper-ssad, tamper-sdad, t0",
    )
    card.add_argument("--list-profiles", action="store_true", help="list the card profiles")
    card.set_defaults(handler=_card)


def _card(ctx: CliContext, args: argparse.Namespace) -> int:
    import warnings

    # pyemv (the card's cryptography) uses TDES through a deprecated import path; the
    # warning is pyemv's business, not the operator's (as in ``etika card``).
    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    from simulators.card.errors import CardSimulatorError
    from simulators.card.run import build_card, describe_profiles, serve

    if args.list_profiles:
        print(describe_profiles())
        return 0
    if not args.profile:
        raise CardSimulatorError("--profile NAME is required (see --list-profiles)")
    card = build_card(args.profile, args.contactless, args.faults)
    return serve(card, args.host, args.port)


# --- PoP back end (etika-pop-consensus stand-in, with the token-system stand-in) -----------



def register_pop(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pop = kinds.add_parser(
        "pop",
        help="the PoP back end (etika-pop-consensus) stand-in, with the token-system stand-in",
        description="Serve the PoP back end on HTTP(S) until interrupted. It verifies each "
        "terminal's signature on its records (keys from --key-file or POST "
        "/v1/admin/terminals), refuses replayed, reordered and redirected records, keeps a "
        "hash-chained ledger in SQLite, confirms records after --confirm-delay-ms, and "
        "deduplicates on record id. GET /ledger/summary gives counts and sums per currency "
        "and status; /v1/token-system/activations records token-activation events. The "
        "first line printed is the URL it listens on (--port 0 picks a free port).",
    )
    pop.add_argument("--port", required=True, type=port_or_zero, metavar="N",
                     help="TCP port (0: any free port)")
    pop.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    pop.add_argument("--data-dir", dest="pop_data_dir", metavar="DIR",
                     help="where the ledger lives (default: <etika data dir>/pop-sim)")
    pop.add_argument("--confirm-delay-ms", type=milliseconds, default=0, metavar="N",
                     help="confirm records this long after acceptance (default: %(default)s)")
    pop.add_argument(
        "--faults", metavar="SPEC",
        help="comma-separated faults: reject=N, timeout=N, drop=N, error=N, slow=MS, twice=N")
    pop.add_argument(
        "--key-file", action="append", default=[], metavar="TERMINAL_ID=PEM[:VERSION]",
        help="register a terminal's public key (PEM key or certificate); repeatable")
    pop.add_argument("--audience", metavar="NAME",
                     help="the back end's name requests must be signed for "
                     "(default: etika-pop-consensus)")
    pop.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    pop.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    pop.add_argument("--capture", metavar="FILE",
                     help="append every request received (head and body) to FILE, for "
                     "tests that scan the wire")
    pop.set_defaults(handler=_pop)



def _pop(ctx: CliContext, args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulators.pop.run import build_server, serve

    data_dir = Path(args.pop_data_dir) if args.pop_data_dir else ctx.data_dir / "pop-sim"
    server = build_server(data_dir, confirm_delay_ms=args.confirm_delay_ms,
                          faults=args.faults, key_files=args.key_file, audience=args.audience,
                          capture=Path(args.capture) if args.capture else None)
    return serve(server, args.host, args.port,
                 tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                 tls_key=Path(args.tls_key) if args.tls_key else None)


# --- receipt printer ----------------------------------------------------------------------


def register_printer(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    printer = kinds.add_parser(
        "printer",
        help="an ESC/POS receipt printer on a pseudo-terminal (prints the port path)",
        description="Serve a simulated ESC/POS receipt printer on a pseudo-terminal. The "
        "first line printed is the port path to give to `etika ui --printer`. Each receipt "
        "(up to a paper cut) is kept as text, in --out when given. SIGUSR1 toggles out of "
        "paper, SIGUSR2 toggles power.",
    )
    printer.add_argument("--out", metavar="DIR", help="write each receipt to DIR/receipt-NNNN.txt")
    printer.add_argument("--faults", metavar="SPEC",
                         help="comma-separated: paper-out, off (at start)")
    printer.set_defaults(handler=_printer)


def _printer(ctx: CliContext, args: argparse.Namespace) -> int:
    from pathlib import Path

    from simulators.printer.run import parse_faults, serve

    return serve(Path(args.out) if args.out else None, parse_faults(args.faults))
