"""`make demo`: payments at a simulated counter, every link a real component.

What runs, each as its own process on this machine (loopback only):

* pcscd with vsmartcard-vpcd's virtual readers, and simulated EMV cards plugged into them
  (``etika sim card``) — when pcscd cannot run here, the cards are used in-process instead;
* a serial PIN pad on a pseudo-terminal (``etika sim pinpad``), DUKPT-enciphering the PIN;
* the profile's acquirers (``etika sim psp``: ISO 8583 hosts and REST gateways), which open
  the P2PE envelope, verify the card's ARQC and the PIN block, and answer with an ARPC.

They are started (and stopped, by PID) by :class:`simulators.demo.fleet.Fleet`, the same
launcher as ``etika demo``'s.

Then ``etika card transact`` runs the EMV kernel against them: an offline approval under
the floor limit, online approvals with online PIN through the acquirer, a wrong PIN, a
contactless tap, a co-badged domestic card (also with offline enciphered PIN: the pad
enciphers it for the card), a Mastercard contactless tap (M/Chip with CDA) and an expired
card. Everything is stopped by
PID at the end. The acquirers listen on free ports of a temporary copy of the profile, so
nothing else on the machine is disturbed.

    .venv/bin/python scripts/demo.py [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulators.demo.fleet import CONTACT_READER, CONTACTLESS_READER, Fleet
from simulators.demo.processes import ETIKA, DemoError, etika_env

ROOT = Path(__file__).resolve().parents[1]

console = Console()


def etika(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ETIKA, *args], capture_output=True, text=True, timeout=120,
                          env=etika_env(), check=False)


def transact(profile_dir: Path, data_dir: Path, *args: str) -> dict[str, object]:
    result = etika("--profile", str(profile_dir), "--data-dir", str(data_dir),
                   "card", "transact", "--json", *args)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["(no message)"])[-1]}
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def scenarios_for(good_pin: str, wrong_pin: str) -> list[tuple[str, str, bool, list[str]]]:
    """``(title, card profile, contactless, etika card transact options)`` per payment."""
    return [
        ("visa-credit, 25.00 MAD, under the floor limit", "visa-credit", False,
         ["--amount", "25.00"]),
        ("visa-credit, 750.00 MAD, online PIN, acquirer", "visa-credit", False,
         ["--amount", "750.00", "--issuer", "psp", "--pinpad", good_pin]),
        ("visa-credit, 750.00 MAD, wrong PIN", "visa-credit", False,
         ["--amount", "750.00", "--issuer", "psp", "--pinpad", wrong_pin]),
        ("mastercard-debit (CDA), 620.00 MAD, acquirer", "mastercard-debit", False,
         ["--amount", "620.00", "--issuer", "psp"]),
        ("domestic co-badged card, 300.00 MAD", "domestic-visa", False,
         ["--amount", "300.00", "--issuer", "psp"]),
        ("contactless tap, 20.00 MAD (fDDA, offline)", "visa-credit", True,
         ["--amount", "20.00", "--contactless"]),
        ("contactless tap, 120.00 MAD, acquirer", "visa-credit", True,
         ["--amount", "120.00", "--contactless", "--issuer", "psp"]),
        ("domestic card, offline enciphered PIN (pad enciphers for the card)",
         "domestic-visa", False, ["--amount", "25.00", "--pinpad", good_pin]),
        ("Mastercard contactless tap, 20.00 MAD (M/Chip, CDA)",
         "mastercard-contactless", True, ["--amount", "20.00", "--contactless"]),
        ("expired card", "visa-expired", False, ["--amount", "25.00"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "firmware-config" / "default")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("ETIKA_DATA_DIR", ROOT / "var")))
    args = parser.parse_args()

    for command in (["--profile", str(args.profile), "config", "check"],
                    ["--data-dir", str(args.data_dir), "hsm", "status"]):
        console.rule(f"etika {' '.join(command[2:])}")
        result = etika(*command)
        console.print(result.stdout.rstrip() or result.stderr.rstrip())
        if result.returncode != 0:
            return result.returncode

    rows: list[tuple[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="etika-demo-") as tmp:
        # The simulators come from the same launcher as `etika demo` (simulators.demo.fleet).
        fleet = Fleet(Path(tmp), args.profile)
        profile_dir = fleet.profile_dir
        try:
            console.rule("simulators")
            fleet.acquirers()
            good_pin = fleet.pinpad("1234")
            wrong_pin = fleet.pinpad("9999")
            real_stack = fleet.pcscd()
            console.print(
                "acquirers, PIN pads and "
                + ("pcscd + vpcd readers ready" if real_stack
                   else "[yellow]no pcscd here: cards run in-process[/]")
            )
            scenarios = scenarios_for(good_pin, wrong_pin)
            for title, card, contactless, extra in scenarios:
                console.rule(title)
                if real_stack:
                    reader = CONTACTLESS_READER if contactless else CONTACT_READER
                    plugged = fleet.card(card, contactless=contactless)
                    try:
                        answer = transact(profile_dir, args.data_dir, "--reader", reader,
                                          "--timeout", "10", *extra)
                    finally:
                        fleet.remove_card(plugged)
                else:
                    answer = transact(profile_dir, args.data_dir, "--simulated", card, *extra)
                console.print_json(json.dumps(answer))
                rows.append((title, answer))
        except DemoError as exc:
            console.print(f"[red]demo: {exc}[/]")
            return 1
        finally:
            fleet.stop()

    table = Table(title="payments at the simulated counter")
    for column in ("scenario", "ODA", "CVM", "cryptogram", "decision", "ARC"):
        table.add_column(column)
    for title, answer in rows:
        table.add_row(title, str(answer.get("oda", "-")), str(answer.get("cvm", "-")),
                      str(answer.get("cryptogram", "-")),
                      str(answer.get("decision", answer.get("error", "-"))),
                      str(answer.get("arc", "-")))
    console.print(table)
    console.rule("etika db status")
    status = etika("--data-dir", str(args.data_dir), "db", "status")
    console.print(status.stdout.rstrip())
    failed = [title for title, answer in rows if "error" in answer and "expired" not in title]
    if failed:
        console.print(f"[red]demo: these payments could not run: {', '.join(failed)}[/]")
        return 1
    return status.returncode


if __name__ == "__main__":
    raise SystemExit(main())
