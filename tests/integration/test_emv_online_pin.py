"""Online PIN end to end: simulated card → kernel → serial PIN pad on a pty → issuer checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import simulators.card.reader as reader_module
import simulators.card.sim_issuer as sim_issuer
from drivers.base import EncryptedPin
from simulators.pinpad.device import DEFAULT_TDES_BDK
from simulators.pinpad.host import verify_pin
from terminal.emv.config import TransactionData
from terminal.emv.cvm import OnlinePinRequest
from terminal.emv.kernel import EmvKernel
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.emv.tvr import Tvr, TvrBit
from terminal.profile import load_profile
from tests.fixtures.pinpad import TEST_PIN

pytestmark = [
    pytest.mark.hardware,
    # pyemv (the simulated card and issuer) uses TDES through a deprecated import path.
    pytest.mark.filterwarnings("ignore:.*TripleDES.*"),
]


async def test_online_pin_through_the_serial_pin_pad(
    pinpad_sim: Callable[..., Awaitable[Any]], open_pinpad: Callable[..., Awaitable[Any]]
) -> None:
    """visa-credit asks online PIN: the pad's enciphered block reaches the issuer and verifies."""
    sim = await pinpad_sim()
    pad = await open_pinpad(sim)
    profile_dir = Path(__file__).parents[2] / "firmware-config" / "default"
    config = replace(kernel_config_from_profile(load_profile(profile_dir)),
                     random_bytes=lambda n: b"\xff" * n)
    reader = reader_module.in_process_reader("visa-credit")
    session = await reader.connect(await reader.wait_for_card())
    pans: list[str] = []

    async def pin_entry(request: OnlinePinRequest) -> EncryptedPin:
        pans.append(request.pan)
        pin: EncryptedPin = await pad.get_pin(request.pan, request.amount,
                                              request.currency_numeric)
        return pin

    issuer = sim_issuer.SimulatedIssuer(reader.card.profile)
    kernel = EmvKernel(config, pin_entry=pin_entry, authoriser=issuer)
    result = await kernel.transact(session, TransactionData(
        amount=75000, currency_numeric=504, when=datetime(2026, 11, 22, 10, 0)))
    assert result.cvm == "online_pin"
    assert TvrBit.ONLINE_PIN_ENTERED in Tvr(bytes.fromhex(result.tvr))
    assert (result.first_cryptogram, result.cryptogram, result.decision) == (
        "ARQC", "TC", "approved_online")
    block = result.online_pin
    verify_pin(DEFAULT_TDES_BDK, block.ksn, block.pin_block, pans[0], TEST_PIN)


async def test_cli_transact_with_pinpad(pinpad_sim: Callable[..., Awaitable[Any]]) -> None:
    """etika card transact --pinpad PORT: online PIN on the pty pad, issuer approves."""
    import asyncio
    import json
    import sys

    sim = await pinpad_sim()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "terminal.cli.main", "card", "transact", "--amount", "750.00",
        "--simulated", "visa-credit", "--issuer", "simulated", "--pinpad", sim.slave_path,
        "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert (result["cvm"], result["decision"]) == ("online_pin", "approved_online")
