"""The qVSDC-modelled contactless path (rules in terminal/emv/contactless.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from terminal.emv.config import TransactionData
from terminal.emv.errors import NoApplicationError, TransactionNotAllowedError
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.tvr import Tvr, TvrBit

from .cardkit import QVSDC_PDOL, App, KitCard, KitReader, kernel_config


class Issuer:
    def __init__(self, arc: bytes = b"00") -> None:
        self.arc = arc
        self.requests: list[OnlineRequest] = []

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        self.requests.append(request)
        return OnlineResponse(arc=self.arc)


async def tap(app: App, amount: int = 2500, ppse: bool = True, **kw: Any) -> TransactionResult:
    app.qvsdc = True
    app.pdol = QVSDC_PDOL
    card = KitCard(app, ppse=ppse)
    reader = KitReader(card)
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=amount, currency_numeric=504,
                           when=datetime(2026, 11, 22, 10, 30))
    return await EmvKernel(kernel_config(), **kw).transact(session, data, contactless=True)


async def test_offline_approval_needs_fdda() -> None:
    """Card TC + valid fDDA under the floor limit: approved offline, oda fdda ok."""
    result = await tap(App(oda="dda"))
    assert (result.interface, result.oda, result.oda_result) == ("contactless", "fdda", "ok")
    assert (result.cryptogram, result.decision, result.cvm) == ("TC", "approved_offline",
                                                                 "no_cvm")


@pytest.mark.parametrize(
    ("ctq",         "online", "decision"),
    [
        (b"\x00\x00", False,    "declined_offline"),
        (b"\x20\x00", True,     "approved_online"),
    ],
)
async def test_fdda_failure(ctq: bytes, online: bool, decision: str) -> None:
    """A tampered fDDA signature declines, or goes online when the CTQ asks for it."""
    kw: dict[str, Any] = {"authoriser": Issuer()} if online else {}
    result = await tap(App(oda="dda", tamper_signature=True, ctq=ctq), **kw)
    assert result.oda_result == "failed"
    assert TvrBit.DDA_FAILED in Tvr(bytes.fromhex(result.tvr))
    assert result.decision == decision


async def test_switch_interface_when_fdda_fails() -> None:
    """CTQ byte 1 b5: fDDA failure asks for the contact chip."""
    with pytest.raises(TransactionNotAllowedError):
        await tap(App(oda="dda", tamper_signature=True, ctq=b"\x10\x00"))


async def test_above_floor_limit_goes_online_with_the_gpo_cryptogram() -> None:
    """TTQ 'online cryptogram required': the card's ARQC goes to the issuer, no GEN AC."""
    issuer = Issuer()
    result = await tap(App(oda="dda", ctq=b"\x40\x00"), amount=20000, authoriser=issuer)
    assert (result.first_cryptogram, result.cryptogram, result.decision) == (
        "ARQC", "ARQC", "approved_online")
    assert result.cvm == "signature"
    assert issuer.requests[0].icc_data[0x9F26]


async def test_arqc_without_host_is_declined() -> None:
    """Unable to go online with a qVSDC ARQC declines (there is no second cryptogram)."""
    result = await tap(App(oda="dda"), amount=20000)
    assert result.decision == "declined_unable_online"


async def test_above_contactless_limit_is_refused() -> None:
    """Amount over the contactless transaction limit: use another interface."""
    with pytest.raises(TransactionNotAllowedError):
        await tap(App(oda="dda"), amount=200000)


async def test_card_without_ppse() -> None:
    """No PPSE: no contactless application (insert the card)."""
    with pytest.raises(NoApplicationError):
        await tap(App(oda="dda"), ppse=False)


async def test_expired_card_declines_offline() -> None:
    """An expired application turns the card's TC into a decline."""
    result = await tap(App(oda="dda", expiry="241231"))
    assert result.decision == "declined_offline"
    assert TvrBit.EXPIRED_APPLICATION in Tvr(bytes.fromhex(result.tvr))
