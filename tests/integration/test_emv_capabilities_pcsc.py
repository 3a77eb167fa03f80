"""#13 items 11–14 on the real stack: pcscd + vpcd + pyscard, the card in its own thread."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from terminal.cli.main import main
from tests.fixtures.fixed_dice import profile_without_random_selection

pytestmark = [
    pytest.mark.hardware,
    # pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
    pytest.mark.filterwarnings("ignore:.*TripleDES.*"),
]

READER = "Virtual PCD 00 00"


@pytest.fixture(scope="module")
def fixed_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default profile without random selection: each row pins one outcome, so the
    20 % "randomly selected for online" of Book 3 §10.6.2 must not roll the dice here."""
    return profile_without_random_selection(tmp_path_factory.mktemp("profile"))


@pytest.fixture
def transact(capsys: pytest.CaptureFixture[str],
              fixed_profile: Path) -> Callable[..., dict[str, object]]:
    def run(*argv: str) -> dict[str, object]:
        status = main(["--profile", str(fixed_profile), "card", "transact", "--currency", "MAD",
                       "--reader", READER, "--timeout", "10", "--json", *argv])
        out = capsys.readouterr()
        assert status == 0, out.err
        result: dict[str, object] = json.loads(out.out)
        return result
    return run


def test_revoked_issuer_certificate_over_pcscd(vpcd_card: Callable[..., object],
                                               transact: Callable[..., dict[str, object]]) -> None:
    """Book 2 §6.3 step 10: the card whose issuer certificate is on the profile's CRL fails
    DDA (TVR byte 1 b4) and, offline, is declined."""
    vpcd_card("visa-revoked")
    result = transact("--amount", "25.00", "--offline")
    assert (result["oda"], result["oda_result"]) == ("dda", "failed")
    assert int(str(result["tvr"])[:2], 16) & 0x08
    assert result["cryptogram"] == "AAC"


def test_application_behind_a_pse_ddf_over_pcscd(vpcd_card: Callable[..., object],
                                                 transact: Callable[..., dict[str, object]]) -> None:
    """Book 1 §12.3.2: the Visa application listed only in the PSE's DDF is selectable and
    runs the transaction (DDA verified)."""
    vpcd_card("domestic-visa-ddf")
    result = transact("--amount", "25.00", "--aid", "A0000000031010")
    assert (result["aid"], result["oda"], result["oda_result"]) == ("A0000000031010", "dda", "ok")


@pytest.fixture
def pinpad_process() -> Iterator[Callable[[str], str]]:
    """`etika sim pinpad --pin PIN` processes on ptys; yields a function giving the path."""
    processes: list[subprocess.Popen[str]] = []

    def start(pin: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "terminal.cli.main", "sim", "pinpad", "--pin", pin],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        assert process.stdout is not None
        match = re.search(r"/dev/pts/\d+", process.stdout.readline())
        assert match, "the PIN pad simulator printed no pty path"
        return match.group(0)

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.mark.parametrize(
    ("pin",  "cvm"),
    [
        ("1234", "offline_enciphered_pin"),
        ("9999", "online_pin"),  # 44 failed, "apply succeeding": 42 03 online PIN is next
    ],
)
def test_offline_enciphered_pin_over_pcscd(vpcd_card: Callable[..., object],
                                           transact: Callable[..., dict[str, object]],
                                           pinpad_process: Callable[[str], str], pin: str,
                                           cvm: str) -> None:
    """Book 3 §10.5.1: the co-badged domestic card's CVM 44 — the serial pad enciphers the
    PIN for the card, the terminal relays VERIFY 88; the right PIN verifies, a wrong one
    fails that CVM (the card counts it in 9F17) and the CVM list moves on."""
    vpcd_card("domestic-visa")
    result = transact("--amount", "25.00", "--offline", "--pinpad",
                       pinpad_process(pin))
    assert (result["aid"], result["cvm"]) == ("D5040000011010", cvm)
    assert not int(str(result["tvr"])[4:6], 16) & 0x80  # TVR byte 3 b8: CVM not failed


@pytest.mark.parametrize(
    ("card",                   "amount",  "cvm",    "cryptogram", "decision"),
    [
        ("mastercard-contactless", "25.00",   "no_cvm", "TC",         "approved_offline"),
        ("mastercard-contactless", "400.00",  "signature", "ARQC",    "declined_unable_online"),
        ("mastercard-mobile",      "400.00",  "cdcvm",  "ARQC",       "declined_unable_online"),
    ],
)
def test_mastercard_contactless_over_pcscd(vpcd_card: Callable[..., object],
                                           transact: Callable[..., dict[str, object]], card: str,
                                           amount: str, cvm: str, cryptogram: str,
                                           decision: str) -> None:
    """Book C-2 essentials on the real stack: PPSE, PDOL with 9F1D, CDA in the single
    GENERATE AC, the CVM-required limit and on-device CVM."""
    vpcd_card(card, interface="contactless")
    result = transact("--amount", amount, "--contactless")
    assert (result["aid"], result["oda"], result["oda_result"]) == ("A0000000041010", "cda", "ok")
    assert (result["cvm"], result["cryptogram"], result["decision"]) == (cvm, cryptogram, decision)
