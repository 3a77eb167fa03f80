"""``etika pay|tx|refund|void`` end to end: every link a real process on loopback.

The acquirer is ``etika sim psp`` (ISO 8583), the PoP back end ``etika sim pop`` (it checks
the terminal's signature with the key ``etika hsm public-key`` prints), the key store the
SoftHSM2 token ``etika hsm init`` made, the card the in-process simulated card or a virtual
card over pcscd + vpcd, and the PIN pad ``etika sim pinpad`` on a pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import free_port
from tests.fixtures.pcsc import PCSCD_GROUP
from tests.integration.test_card_psp_cli import (  # the PIN pad process fixture too
    _wait_for_port,
    pinpad_process_factory,  # noqa: F401
)

# The whole module on pcscd's pytest-xdist worker: one of its tests uses pcscd, and the
# others share the counter (a module fixture) with it, which another worker would build again.
pytestmark = [pytest.mark.network, pytest.mark.hsm, pytest.mark.xdist_group(PCSCD_GROUP)]

ETIKA = [sys.executable, "-m", "terminal.cli.main"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}


def etika(profile: Path, data_dir: Path, *args: str, timeout: float = 90
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ETIKA, "--profile", str(profile), "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(), check=False)


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(profile, data dir): an initialised key store, the acquirers and the PoP back end
    started on free ports, the profile pointed at them."""
    from tests.conftest import DEFAULT_PROFILE_DIR

    root = tmp_path_factory.mktemp("pay")
    profile, data_dir = root / "profile", root / "var"
    shutil.copytree(DEFAULT_PROFILE_DIR, profile)
    init = etika(profile, data_dir, "hsm", "init")
    assert init.returncode == 0, init.stderr
    public = etika(profile, data_dir, "hsm", "public-key")
    assert public.returncode == 0, public.stderr
    key_file = root / "terminal.pub.pem"
    key_file.write_text(public.stdout)
    processes: list[subprocess.Popen[str]] = []
    try:
        routing = (profile / "routing.toml").read_text()
        for old in ("8583", "8584", "8585"):
            port = free_port()
            routing = re.sub(rf"^port = {old}$", f"port = {port}", routing, flags=re.MULTILINE)
            process = subprocess.Popen(
                [*ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
            processes.append(process)
            _wait_for_port(port, process)
        (profile / "routing.toml").write_text(routing)
        pop_port = free_port()
        pop = subprocess.Popen(
            [*ETIKA, "--data-dir", str(root / "pop"), "sim", "pop", "--port", str(pop_port),
             "--key-file", f"ETK00001={key_file}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
        processes.append(pop)
        _wait_for_port(pop_port, pop)
        sync = (profile / "sync.toml").read_text()
        sync = re.sub(r'^pop_url = .*$', f'pop_url = "http://127.0.0.1:{pop_port}"', sync,
                      flags=re.MULTILINE)
        (profile / "sync.toml").write_text(sync)
        yield profile, data_dir
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.stdout:
                process.stdout.close()


def test_pay_refund_void_and_history(counter: tuple[Path, Path]) -> None:
    """A sale is approved online with the PoP record confirmed; it shows in tx list and tx
    show (attempts, fraud check, journal, receipt), is partly refunded, and a second sale
    is voided; nothing printed carries the card number."""
    profile, data_dir = counter
    paid = etika(profile, data_dir, "pay", "--amount", "600.00", "--simulated", "visa-credit",
                 "--json")
    assert paid.returncode == 0, paid.stderr
    sale = json.loads(paid.stdout)
    assert (sale["state"], sale["approved"], sale["pop_status"]) == \
        ("completed", True, "confirmed")
    assert sale["reason"] == "approved by the issuer"
    listed = etika(profile, data_dir, "tx", "list", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [sale["payment_id"]]
    shown = etika(profile, data_dir, "tx", "show", sale["payment_id"])
    assert shown.returncode == 0, shown.stderr
    assert "attempt 1" in shown.stdout and "fraud" in shown.stdout and "journal" in shown.stdout
    refund = etika(profile, data_dir, "refund", sale["payment_id"], "--amount", "100.00",
                   "--json")
    assert refund.returncode == 0, refund.stderr
    assert json.loads(refund.stdout)["state"] == "approved"
    over = etika(profile, data_dir, "refund", sale["payment_id"], "--amount", "500.01")
    assert over.returncode == 1 and "more than is left" in over.stderr
    second = json.loads(etika(profile, data_dir, "pay", "--amount", "700.00", "--simulated",
                              "mastercard-debit", "--json").stdout)
    voided = etika(profile, data_dir, "void", second["payment_id"], "--json")
    assert voided.returncode == 0, voided.stderr
    assert json.loads(voided.stdout)["kind"] == "void"
    for output in (paid, listed, shown, refund, voided):
        assert "4761739001010010" not in output.stdout + output.stderr


@pytest.mark.parametrize(
    ("amount", "code", "message"),
    [
        ("0",      2, "above zero"),
        ("-3.00",  2, ""),
        ("abc",    2, ""),
    ],
)
def test_pay_refuses_bad_amounts(counter: tuple[Path, Path], amount: str, code: int,
                                 message: str) -> None:
    """A zero, negative or unreadable amount is refused in one line, before any card."""
    profile, data_dir = counter
    result = etika(profile, data_dir, "pay", "--amount", amount, "--simulated", "visa-credit")
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.hardware
def test_pay_over_pcscd_with_online_pin(counter: tuple[Path, Path], vpcd_card: object,
                                        pinpad_process_factory: object,  # noqa: F811
                                        ) -> None:
    """The README's path: a card in a PC/SC reader, the PIN on the serial PIN pad, the
    acquirer verifying ARQC and PIN block: approved online."""
    profile, data_dir = counter
    vpcd_card("visa-credit")  # type: ignore[operator]
    pad = pinpad_process_factory("1234")  # type: ignore[operator]
    paid = etika(profile, data_dir, "pay", "--amount", "750.00", "--pinpad", pad,
                 "--reader", "Virtual PCD 00 00", "--json")
    assert paid.returncode == 0, paid.stderr
    sale = json.loads(paid.stdout)
    assert sale["state"] == "completed" and sale["emv"]["cvm"] == "online_pin"


@pytest.fixture
def slow_profile(counter: tuple[Path, Path], tmp_path: Path) -> Iterator[Path]:
    """The counter's profile with every ISO 8583 route on an acquirer that answers after
    8 s, and a payment deadline long enough to wait for it."""
    profile, _ = counter
    slow = tmp_path / "profile"
    shutil.copytree(profile, slow)
    port = free_port()
    acquirer = subprocess.Popen(
        [*ETIKA, "sim", "psp", "--kind", "iso8583", "--port", str(port), "--faults",
         "latency=8"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        _wait_for_port(port, acquirer)
        routing = re.sub(r"^port = \d+$", f"port = {port}",
                         (slow / "routing.toml").read_text(), flags=re.MULTILINE)
        (slow / "routing.toml").write_text(routing)
        limits = (slow / "limits.toml").read_text().replace("deadline_ms = 2000",
                                                            "deadline_ms = 20000")
        (slow / "limits.toml").write_text(limits)
        yield slow
    finally:
        acquirer.send_signal(signal.SIGTERM)
        acquirer.wait(timeout=10)
        if acquirer.stdout:
            acquirer.stdout.close()


def _interrupt_when(process: subprocess.Popen[str], data_dir: Path, query: str
                    ) -> tuple[str, str]:
    """SIGINT ``process`` once ``query`` finds a row in its store (the request has left)."""
    import sqlite3
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.closing(sqlite3.connect(data_dir / "etika.db")) as db:
            if db.execute(query).fetchone():
                break
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=60)


def test_ctrl_c_during_the_acquirer_leg_leaves_no_charge(counter: tuple[Path, Path],
                                                         slow_profile: Path) -> None:
    """Ctrl-C while the acquirer is still thinking: exit 130, one line saying the payment
    was cancelled and a reversal queued; the payment is cancelled with the reversal in the
    outbox, so a charge the acquirer made is undone at the next sync."""
    _, data_dir = counter
    pay = subprocess.Popen(
        [*ETIKA, "--profile", str(slow_profile), "--data-dir", str(data_dir), "pay",
         "--amount", "650.00", "--simulated", "visa-credit"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    out, err = _interrupt_when(pay, data_dir,
                               "SELECT 1 FROM payments WHERE status = 'authorising'")
    assert pay.returncode == 130, err
    line = (out + err).strip().splitlines()[-1]
    assert "cancelled" in line and "reversal is queued" in line, out + err
    payment_id = re.search(r"payment ([0-9a-f-]{36})", line)
    assert payment_id, line
    shown = json.loads(etika(slow_profile, data_dir, "tx", "show", payment_id.group(1),
                             "--json").stdout)
    assert shown["status"] == "cancelled"


def test_ctrl_c_during_card_transact_queues_the_reversal(counter: tuple[Path, Path],
                                                         slow_profile: Path) -> None:
    """`card transact --issuer psp` interrupted after the request left says the customer
    may have been charged and queues the reversal for the PSP."""
    _, data_dir = counter
    import sqlite3

    before = etika(slow_profile, data_dir, "sync", "status", "--json")
    queued = _reversals(before.stdout)
    with contextlib.closing(sqlite3.connect(data_dir / "etika.db")) as db:
        reserved = db.execute("SELECT coalesce(sum(high_water), 0) FROM psp_trace").fetchone()[0]
    transact = subprocess.Popen(
        [*ETIKA, "--profile", str(slow_profile), "--data-dir", str(data_dir), "card",
         "transact", "--amount", "650.00", "--issuer", "psp", "--simulated", "visa-credit"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    # A new STAN block is reserved just before the request is sent.
    _, err = _interrupt_when(transact, data_dir, "SELECT 1 WHERE (SELECT coalesce(sum("
                             f"high_water), 0) FROM psp_trace) > {int(reserved)}")
    assert transact.returncode == 130, err
    assert "may have been charged" in err and "reversal is queued" in err, err
    after = etika(slow_profile, data_dir, "sync", "status", "--json")
    assert _reversals(after.stdout) > queued


def _reversals(status_json: str) -> int:
    rows = json.loads(status_json)["destinations"]
    return sum(r["depth"] for r in rows if r["destination"].startswith("psp:"))


def test_pay_with_offline_enciphered_pin(counter: tuple[Path, Path],
                                         pinpad_process_factory: object,  # noqa: F811
                                         ) -> None:
    """The co-badged domestic card prefers offline enciphered PIN (CVM 44): `etika pay`
    hands the PIN pad to the kernel for it, and the receipt says PIN verified offline."""
    profile, data_dir = counter
    pad = pinpad_process_factory("1234")  # type: ignore[operator]
    paid = etika(profile, data_dir, "pay", "--amount", "25.00", "--simulated",
                 "domestic-visa", "--pinpad", pad, "--json")
    assert paid.returncode == 0, paid.stderr
    sale = json.loads(paid.stdout)
    assert (sale["emv"]["aid"], sale["emv"]["cvm"]) == ("D5040000011010",
                                                        "offline_enciphered_pin")
    assert sale["approved"], sale["reason"]
