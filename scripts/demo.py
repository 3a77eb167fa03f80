"""`make demo`: payments at a simulated counter, every link a real component.

What runs, each as its own process on this machine (loopback only):

* pcscd with vsmartcard-vpcd's virtual readers, and simulated EMV cards plugged into them
  (``etika sim card``) — when pcscd cannot run here, the cards are used in-process instead;
* a serial PIN pad on a pseudo-terminal (``etika sim pinpad``), DUKPT-enciphering the PIN;
* the profile's ISO 8583 acquirers (``etika sim psp``), which open the P2PE envelope,
  verify the card's ARQC and the PIN block, and answer with an ARPC.

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
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
ETIKA = [sys.executable, "-m", "terminal.cli.main"]
PCSCD = shutil.which("pcscd") or "/usr/sbin/pcscd"
CONTACT_READER = "Virtual PCD 00 00"
CONTACTLESS_READER = "Virtual PCD 00 01"

console = Console()


class DemoError(Exception):
    """A step of the demo could not run; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"{what} exited at start (status {process.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise DemoError(f"{what} does not listen on 127.0.0.1:{port} after 30 s")


class Processes:
    """Every background process of the demo, stopped by PID in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[str]]] = []

    def start(self, what: str, command: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, env=etika_env())
        self.started.append((what, process))
        return process

    def stop_all(self) -> None:
        for _what, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def etika_env() -> dict[str, str]:
    # The CLI derives the token's configuration from the data dir it is given.
    return {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}


def etika(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ETIKA, *args], capture_output=True, text=True, timeout=120,
                          env=etika_env(), check=False)


def readers() -> list[str] | None:
    """pcscd's reader list, or ``None`` when no pcscd answers."""
    try:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCardEstablishContext,
            SCardListReaders,
            SCardReleaseContext,
        )
    except ImportError:
        return None
    rc, context = SCardEstablishContext(SCARD_SCOPE_USER)
    if rc != SCARD_S_SUCCESS:
        return None
    try:
        rc, names = SCardListReaders(context, [])
        return list(names) if rc == SCARD_S_SUCCESS else []
    finally:
        SCardReleaseContext(context)


def ensure_pcscd(processes: Processes) -> bool:
    """A pcscd with the two vpcd readers: the one running, or ours. False if impossible."""
    found = readers()
    if found is None and Path(PCSCD).exists():
        processes.start("pcscd", [PCSCD, "--foreground"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not found:
            time.sleep(0.2)
            found = readers()
    return found is not None and CONTACT_READER in found and CONTACTLESS_READER in found


@contextlib.contextmanager
def card_on_reader(processes: Processes, profile: str, contactless: bool) -> Iterator[None]:
    """``etika sim card`` plugged into vpcd until the block ends (then pulled out)."""
    port = "35964" if contactless else "35963"
    command = [*ETIKA, "sim", "card", "--profile", profile, "--port", port]
    if contactless:
        command.append("--contactless")
    process = processes.start(f"card {profile}", command)
    reader = CONTACTLESS_READER if contactless else CONTACT_READER
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DemoError(f"the simulated card {profile} could not reach vpcd")
            if _card_present(reader):
                break
            time.sleep(0.1)
        else:
            raise DemoError(f"pcscd never saw the card {profile} in {reader}")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        # Let pcscd see the card leave before the next one comes.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _card_present(reader):
            time.sleep(0.1)


def _card_present(reader: str) -> bool:
    from smartcard.scard import (
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCARD_STATE_PRESENT,
        SCARD_STATE_UNAWARE,
        SCardEstablishContext,
        SCardGetStatusChange,
        SCardReleaseContext,
    )

    rc, context = SCardEstablishContext(SCARD_SCOPE_USER)
    if rc != SCARD_S_SUCCESS:
        return False
    try:
        rc, states = SCardGetStatusChange(context, 0, [(reader, SCARD_STATE_UNAWARE)])
        return rc == SCARD_S_SUCCESS and bool(states[0][1] & SCARD_STATE_PRESENT)
    finally:
        SCardReleaseContext(context)


def start_acquirers(processes: Processes, profile_dir: Path) -> None:
    """Move every ISO 8583 acquirer of the profile copy to a free port and start it there."""
    routing = profile_dir / "routing.toml"
    text = routing.read_text()
    for old in sorted(set(re.findall(r"^port = (\d+)$", text, flags=re.MULTILINE))):
        port = free_port()
        text = re.sub(rf"^port = {old}$", f"port = {port}", text, flags=re.MULTILINE)
        process = processes.start(f"acquirer :{port}", [
            *ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port)])
        wait_for_port(port, process, f"the ISO 8583 acquirer on port {port}")
    routing.write_text(text)


def start_pinpad(processes: Processes, pin: str) -> str:
    process = processes.start(f"PIN pad ({pin})", [*ETIKA, "sim", "pinpad", "--pin", pin])
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"/dev/pts/\d+", line)
    if match is None:
        raise DemoError(f"the PIN pad simulator did not start: {line.strip()!r}")
    return match.group(0)


def transact(profile_dir: Path, data_dir: Path, *args: str) -> dict[str, object]:
    result = etika("--profile", str(profile_dir), "--data-dir", str(data_dir),
                   "card", "transact", "--json", *args)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["(no message)"])[-1]}
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


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

    processes = Processes()
    rows: list[tuple[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="etika-demo-") as tmp:
        profile_dir = Path(tmp) / "profile"
        shutil.copytree(args.profile, profile_dir)
        try:
            console.rule("simulators")
            start_acquirers(processes, profile_dir)
            good_pin = start_pinpad(processes, "1234")
            wrong_pin = start_pinpad(processes, "9999")
            real_stack = ensure_pcscd(processes)
            console.print(
                "acquirers, PIN pads and "
                + ("pcscd + vpcd readers ready" if real_stack
                   else "[yellow]no pcscd here: cards run in-process[/]")
            )
            scenarios = [
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
            for title, card, contactless, extra in scenarios:
                console.rule(title)
                if real_stack:
                    reader = CONTACTLESS_READER if contactless else CONTACT_READER
                    with card_on_reader(processes, card, contactless):
                        answer = transact(profile_dir, args.data_dir, "--reader", reader,
                                          "--timeout", "10", *extra)
                else:
                    answer = transact(profile_dir, args.data_dir, "--simulated", card, *extra)
                console.print_json(json.dumps(answer))
                rows.append((title, answer))
        except DemoError as exc:
            console.print(f"[red]demo: {exc}[/]")
            return 1
        finally:
            processes.stop_all()

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
