"""#13 items 11–14 on the real stack: pcscd + vpcd + pyscard, the card in its own thread."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from terminal.cli.main import main

pytestmark = [
    pytest.mark.hardware,
    # pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
    pytest.mark.filterwarnings("ignore:.*TripleDES.*"),
]

READER = "Virtual PCD 00 00"


def _transact(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main(["card", "transact", "--currency", "MAD", "--reader", READER,
                   "--timeout", "10", "--json", *argv])
    out = capsys.readouterr()
    assert status == 0, out.err
    result: dict[str, object] = json.loads(out.out)
    return result


def test_revoked_issuer_certificate_over_pcscd(vpcd_card: Callable[..., object],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Book 2 §6.3 step 10: the card whose issuer certificate is on the profile's CRL fails
    DDA (TVR byte 1 b4) and, offline, is declined."""
    vpcd_card("visa-revoked")
    result = _transact(capsys, "--amount", "25.00", "--offline")
    assert (result["oda"], result["oda_result"]) == ("dda", "failed")
    assert int(str(result["tvr"])[:2], 16) & 0x08
    assert result["cryptogram"] == "AAC"


def test_application_behind_a_pse_ddf_over_pcscd(vpcd_card: Callable[..., object],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Book 1 §12.3.2: the Visa application listed only in the PSE's DDF is selectable and
    runs the transaction (DDA verified)."""
    vpcd_card("domestic-visa-ddf")
    result = _transact(capsys, "--amount", "25.00", "--aid", "A0000000031010")
    assert (result["aid"], result["oda"], result["oda_result"]) == ("A0000000031010", "dda", "ok")
