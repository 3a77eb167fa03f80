"""The platform pushes the certification revocation list like the blacklist (#13 item 12).

A signed ``crl`` downlink (replace / add / remove) rewrites the profile's ``crl.toml``
through the atomic profile swap; the next transaction's ODA checks the new list
(EMV 4.4 Book 2 §6.3 step 10).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import simulators.card.reader as reader_module
from edge_sync.downlink import DownlinkHandler, MemoryDownlinkHooks
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import build_downlink
from edge_sync.platform.downlink import sign_downlink
from edge_sync.platform.errors import DownlinkError
from edge_sync.signing import SoftwareSigner
from simulators.card.personalise import issuer_cert_serial
from simulators.card.profiles import get_profile
from terminal.emv.config import TransactionData
from terminal.emv.kernel import EmvKernel
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.profile import load_profile
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES.*")

TERMINAL_ID = "ETK00001"
PLATFORM = SoftwareSigner.generate()
VISA_SERIAL = issuer_cert_serial(get_profile("visa-credit").apps[0]).hex().upper()


@pytest.fixture
def profile(tmp_path: Path, default_profile_dir: Path) -> Path:
    target = tmp_path / "profiles" / "shop"
    shutil.copytree(default_profile_dir, target)
    return target


async def _oda(profile: Path, card: str) -> str:
    config = replace(kernel_config_from_profile(load_profile(profile)),
                     random_bytes=lambda n: b"\xff" * n)
    reader = reader_module.in_process_reader(card, "contact", ())
    session = await reader.connect(await reader.wait_for_card())
    data = TransactionData(amount=2500, currency_numeric=504, when=datetime(2026, 11, 22),
                           online_available=False)
    result = await EmvKernel(config).transact(session, data)  # type: ignore[arg-type]
    return result.oda_result


def _entry(serial: str, rid: str = "A000000003", index: str = "92") -> dict[str, str]:
    return {"rid": rid, "index": index, "serial": serial}


async def test_pushed_crl_revokes_and_unrevokes_a_card(profile: Path, tmp_path: Path) -> None:
    """add revokes the Visa card's issuer certificate, remove lifts it, replace sets all."""
    with Store.open(tmp_path / "etika.db") as store:
        handler = DownlinkHandler(
            PLATFORM.public_key_pem(),
            TerminalDownlinkHooks(FleetStore(store), profile),
            SqliteOutbox(store),
            terminal_id=TERMINAL_ID,
        )
        sequence = iter(range(1, 100))

        async def push(payload: dict[str, Any]) -> str:
            raw = build_downlink(PLATFORM, terminal_id=TERMINAL_ID, kind="crl",
                                 seq=next(sequence), payload=payload).to_json()
            return (await handler.handle("crl", raw)).outcome

        assert await _oda(profile, "visa-credit") == "ok"
        assert await push({"version": 1, "mode": "add", "entries": [_entry(VISA_SERIAL)]}) \
            == "applied"
        assert {r.serial for r in load_profile(profile).revoked} == {"7E5E01", VISA_SERIAL}
        assert await _oda(profile, "visa-credit") == "failed"
        assert await push({"version": 2, "mode": "remove", "entries": [_entry(VISA_SERIAL)]}) \
            == "applied"
        assert await _oda(profile, "visa-credit") == "ok"
        assert await push({"version": 3, "mode": "replace", "entries": []}) == "applied"
        assert load_profile(profile).revoked == []
        assert await _oda(profile, "visa-revoked") == "ok"
        kinds = [r[0] for r in store.connection.execute("SELECT kind FROM outbox ORDER BY id")]
        assert kinds == ["downlink_applied"] * 3


@pytest.mark.parametrize(
    ("entry",                                  "where"),
    [
        (_entry("7E5E"),                           "serial"),
        (_entry("7e5e01"),                         "serial"),  # upper-case hex on the wire
        (_entry("7E5E01", rid="A0000003"),         "rid"),
        ({"rid": "A000000003", "index": "92"},     "serial"),
    ],
)
async def test_malformed_crl_entries_are_refused(entry: dict[str, str], where: str) -> None:
    """A CRL entry that is not RID(5) / index(1) / serial(3) hex is refused and reported."""
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(PLATFORM.public_key_pem(), hooks, outbox, terminal_id=TERMINAL_ID)
    raw = build_downlink(PLATFORM, terminal_id=TERMINAL_ID, kind="crl", seq=1,
                         payload={"version": 1, "mode": "add", "entries": [entry]}).to_json()
    result = await handler.handle("crl", raw)
    assert result.outcome == "rejected" and where in (result.reason or "")
    assert hooks.crls == []


def test_platform_refuses_to_sign_a_bad_crl() -> None:
    """The platform checks a crl payload against the terminal's schema before signing."""
    good = sign_downlink(PLATFORM, "crl", {"version": 1, "mode": "replace",
                                           "entries": [_entry("7E5E01")]},
                         terminal_id=TERMINAL_ID, seq=1)
    assert good.kind == "crl"
    with pytest.raises(DownlinkError, match="crl payload"):
        sign_downlink(PLATFORM, "crl", {"version": 1, "mode": "merge", "entries": []},
                      terminal_id=TERMINAL_ID, seq=1)
