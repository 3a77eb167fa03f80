"""A waiting refund's failed retries are journalled: the auditor sees every attempt.

Through the real store (its journal chain verified) with the in-package scripted PSP
connector failing, then answering.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from edge_sync.connectors import BreakerSettings, Router, RouteRule
from edge_sync.connectors.base import Operation, PspReference, PspResponse
from edge_sync.connectors.errors import PspTimeoutError, PspUnreachableError
from edge_sync.connectors.fake import ScriptedConnector
from edge_sync.pop_fake import InMemoryPopBackend
from hsm.fake import SoftwareKeyStore
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.payments.manager import PaymentManager
from terminal.payments.messages import json_text
from terminal.payments.refunds import send_refund
from terminal.profile import load_profile
from terminal.store import StateChange, Store
from terminal.store.token_map import StoreTokenRegistry

PAN = "4761739001010010"  # the test card's PAN: it must appear nowhere in the journal


async def _no_sleep(_seconds: float) -> None:
    return None


def _manager(store: Store, profile_dir: Path,
             refunds: Sequence[PspResponse | Exception]) -> PaymentManager:
    profile = load_profile(profile_dir)
    connector = ScriptedConnector("cih", {Operation.REFUND: refunds})
    router = Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                    breakers={"cih": BreakerSettings(50, 30.0, 15.0)}, sleep=_no_sleep)
    return PaymentManager(profile=profile, store=store,
                          card_keys=SoftwareKeyStore(StoreTokenRegistry(store)),
                          router=router, pop=InMemoryPopBackend(),
                          kernel_config=kernel_config_from_profile(profile))


def _waiting_refund(store: Store) -> tuple[str, str]:
    """A completed payment known at the PSP and a refund of it left pending_sync."""
    pid, rid = str(uuid.uuid4()), str(uuid.uuid4())
    reference = PspReference(connector="cih", transaction_id=pid, operation="authorise")
    store.record(StateChange("payment", pid, "created",
                             fields={"amount_minor": 60000, "currency": "MAD",
                                     "pan_masked": "476173******0010"}))
    store.record(StateChange("payment", pid, "completed",
                             fields={"psp_reference": json_text(reference.as_dict())}))
    store.record(StateChange("refund", rid, "requested",
                             fields={"payment_id": pid, "amount_minor": 1000,
                                     "currency": "MAD", "kind": "refund"}))
    store.record(StateChange("refund", rid, "pending_sync", reason="PSP unreachable"))
    return pid, rid


def _attempts(store: Store, refund_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(action, json.loads(data)) for action, data in store.connection.execute(
        "SELECT action, data FROM audit_journal WHERE entity = 'refund_attempt' "
        "AND entity_id = ? ORDER BY id", (refund_id,))]


async def test_each_failed_retry_of_a_waiting_refund_is_journalled(
        data_dir: Path, default_profile_dir: Path) -> None:
    """Two failed retries leave two journal events (payment, PSP, error class, nothing
    else) and the refund waiting; the third retry is approved and adds no failure event."""
    store = Store.open(data_dir / "etika.db")
    try:
        manager = _manager(store, default_profile_dir, [
            PspUnreachableError(f"connection refused for card {PAN}", connector="cih"),
            PspTimeoutError("no answer", connector="cih")])
        pid, rid = _waiting_refund(store)
        first = await send_refund(manager, rid)
        second = await send_refund(manager, rid)
        assert (first.state, second.state) == ("pending_sync", "pending_sync")
        assert _attempts(store, rid) == [
            ("refund_retry_failed", {"payment_id": pid, "psp": "cih",
                                     "error": "PspUnreachableError"}),
            ("refund_retry_failed", {"payment_id": pid, "psp": "cih",
                                     "error": "PspTimeoutError"}),
        ]
        third = await send_refund(manager, rid)  # the script is empty: the PSP approves
        assert third.state == "approved"
        assert len(_attempts(store, rid)) == 2
        journal = " ".join(str(r[0]) for r in store.connection.execute(
            "SELECT data FROM audit_journal"))
        assert PAN not in journal
        assert store.verify_journal() > 0
        await manager.router.aclose()
    finally:
        store.close()
