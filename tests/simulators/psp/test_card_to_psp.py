"""End to end on loopback: simulated card → EMV kernel → ISO 8583 → simulated acquirer.

The ARQC is computed by the card simulator (not by the test), verified by the PSP
simulator with the issuer keys, and the ARPC it returns is checked by the card in
GENERATE AC 2. The PIN block comes from the PIN pad simulator and is verified with the BDK.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

import simulators.card.reader as reader_module
from drivers.base import EncryptedPin
from drivers.pinpad.messages import PinEntryRequest
from edge_sync.connectors import Router, RouteRule
from simulators.pinpad.device import DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, PinPadDevice
from terminal.emv.config import KernelConfig, TransactionData
from terminal.emv.cvm import OnlinePinRequest
from terminal.emv.kernel import EmvKernel, OnlineRequest, OnlineResponse, TransactionResult
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.profile import load_profile
from terminal.psp_routing import KernelAuthoriser
from tests.conftest import DEFAULT_PROFILE_DIR
from tests.fixtures.psp import EUR, MAD

pytestmark = [pytest.mark.network, pytest.mark.filterwarnings("ignore:.*TripleDES")]

IsoFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def config() -> KernelConfig:
    return replace(kernel_config_from_profile(load_profile(DEFAULT_PROFILE_DIR)),
                   random_bytes=lambda n: b"\xff" * n)


def pin_pad(pin: str) -> Callable[[OnlinePinRequest], Any]:
    device = PinPadDevice.from_bdk(DEFAULT_TDES_BDK, DEFAULT_TDES_KSN, pin=pin)

    async def enter(request: OnlinePinRequest) -> EncryptedPin:
        answer = device.encipher_pin(PinEntryRequest(
            pan=request.pan, amount_minor=request.amount,
            currency_numeric=request.currency_numeric, timeout_s=30))
        assert answer.pin_block is not None and answer.ksn is not None
        return EncryptedPin(ksn=answer.ksn, pin_block=answer.pin_block,
                            format=answer.pin_format or 0)

    return enter


class Tamper:
    """Flips a bit of the card's ARQC on its way to the PSP."""

    def __init__(self, inner: KernelAuthoriser) -> None:
        self.inner = inner

    async def authorise(self, request: OnlineRequest) -> OnlineResponse | None:
        icc = dict(request.icc_data)
        icc[0x9F26] = bytes([icc[0x9F26][0] ^ 0x80]) + icc[0x9F26][1:]
        return await self.inner.authorise(replace(request, icc_data=icc))


async def transact(config: KernelConfig, router: Router, profile: str, *, pin: str = "1234",
                   tamper: bool = False) -> tuple[TransactionResult, KernelAuthoriser]:
    reader = reader_module.in_process_reader(profile)
    session = await reader.connect(await reader.wait_for_card())
    bridge = KernelAuthoriser(router, uuid.uuid4(), MAD, network="visa")
    authoriser: Any = Tamper(bridge) if tamper else bridge
    kernel = EmvKernel(config, pin_entry=pin_pad(pin), authoriser=authoriser)
    data = TransactionData(amount=MAD.minor, currency_numeric=504,
                           when=datetime.now(), merchant_forced_online=True)
    return await kernel.transact(session, data), bridge


@pytest.mark.parametrize(
    "profile",
    [
        "visa-credit",        # ARPC method 1 in GENERATE AC 2
        "mastercard-debit",   # ARPC method 1 by EXTERNAL AUTHENTICATE
        "domestic-visa",      # ARPC method 2 (CSU) on the domestic application
    ],
)
async def test_card_arqc_verified_and_arpc_accepted_by_the_card(config: KernelConfig,
                                                               iso_host: IsoFactory,
                                                               profile: str) -> None:
    """The card's ARQC verifies at the PSP, the PIN too; the card accepts the ARPC (TC)."""
    async with iso_host() as sim:
        router = Router([RouteRule("all", ("cih",))], {"cih": sim.connector}, {})
        result, bridge = await transact(config, router, profile)
        assert bridge.response is not None and bridge.response.code == "00"
        assert result.decision == "approved_online" and result.cryptogram == "TC"
        sent = sim.host.received[0]
        assert "52" in sent and "53" in sent  # the PIN pad's block and KSN went through
        assert sim.acquirer.postings == 1


async def test_tampered_arqc_is_declined(config: KernelConfig, iso_host: IsoFactory) -> None:
    """One flipped bit in the ARQC: the PSP declines 05 and the card ends with an AAC."""
    async with iso_host() as sim:
        router = Router([RouteRule("all", ("cih",))], {"cih": sim.connector}, {})
        result, bridge = await transact(config, router, "visa-credit", tamper=True)
        assert bridge.response is not None and bridge.response.code == "05"
        assert result.cryptogram == "AAC"
        assert sim.acquirer.postings == 0


async def test_wrong_pin_from_the_pin_pad_is_declined(config: KernelConfig,
                                                     iso_host: IsoFactory) -> None:
    """A PIN block holding the wrong PIN is declined 55 by the PSP (BDK verification)."""
    async with iso_host() as sim:
        router = Router([RouteRule("all", ("cih",))], {"cih": sim.connector}, {})
        result, bridge = await transact(config, router, "visa-credit", pin="9999")
        assert bridge.response is not None and bridge.response.code == "55"
        assert result.cryptogram == "AAC"


@pytest.mark.parametrize("kind", ["stripe", "paypal"])
async def test_card_through_a_rest_gateway(config: KernelConfig, rest_gateway: Any,
                                           kind: str) -> None:
    """The same card, paying in euros through a REST gateway: ARQC verified, ARPC back in
    the charge's EMV data, TC from the card."""
    with rest_gateway(kind) as sim:
        router = Router([RouteRule("all", (kind,))], {kind: sim.connector}, {})
        reader = reader_module.in_process_reader("visa-credit")
        session = await reader.connect(await reader.wait_for_card())
        bridge = KernelAuthoriser(router, uuid.uuid4(), EUR, network="visa")
        kernel = EmvKernel(config, pin_entry=pin_pad("1234"), authoriser=bridge)
        result = await kernel.transact(session, TransactionData(
            amount=EUR.minor, currency_numeric=978, when=datetime.now(),
            merchant_forced_online=True))
        assert bridge.response is not None and bridge.response.approved
        assert result.decision == "approved_online" and result.cryptogram == "TC"
        assert sim.acquirer.postings == 1
        await sim.connector.aclose()
