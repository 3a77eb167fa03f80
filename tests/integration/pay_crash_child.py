"""The terminal side of the crash-at-every-step test, as a process of its own.

    python -m tests.integration.pay_crash_child DATA_DIR PSP_PORT POP_URL SIGNER_PEM \
        sale KILL_AT | refund PAYMENT_ID KILL_AT | recover

``sale``/``refund`` SIGKILL this process when the payment manager passes step ``KILL_AT``
(``-`` never). ``recover`` runs what a restarted terminal runs: recovery, one drain of the
PSP and PoP outbox destinations, settlement; it prints the payments and refunds as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import warnings
from pathlib import Path

from edge_sync.connectors import (
    BreakerSettings,
    HostContext,
    Iso8583Connector,
    Iso8583Settings,
    PspOutboxTransport,
    Router,
    RouteRule,
)
from edge_sync.outbox import RetryPolicy
from edge_sync.pop import HttpsPopClient
from edge_sync.pop_outbox import PopOutboxTransport
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from hsm.fake import SoftwareKeyStore
from simulators.card.reader import in_process_reader
from simulators.psp.keys import public_key_path
from terminal.emv.profile_adapter import kernel_config_from_profile
from terminal.money import currency, parse_amount
from terminal.payments.advice import advice_card_source
from terminal.payments.manager import PaymentManager
from terminal.payments.model import SaleRequest
from terminal.payments.recovery import recover, settle
from terminal.payments.refunds import refund_payment
from terminal.profile import load_profile
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox
from terminal.store.token_map import StoreTokenRegistry

warnings.filterwarnings("ignore", message=".*TripleDES.*")
PROFILE = Path(__file__).resolve().parents[2] / "firmware-config" / "default"
TERMINAL_ID = "ETK00001"


def _killer(kill_at: str):  # type: ignore[no-untyped-def]
    def on_step(step: str) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_step


async def main(argv: list[str]) -> int:
    data_dir, psp_port, pop_url, signer_pem, mode, *rest = argv
    profile = load_profile(PROFILE)
    signer = SoftwareSigner.from_pem(Path(signer_pem).read_bytes())
    context = HostContext(connector="cih", acquirer_id="504001", terminal_id=TERMINAL_ID,
                          merchant_id=profile.terminal.merchant_id,
                          merchant_name_location=profile.terminal.merchant_name)
    connector = Iso8583Connector(Iso8583Settings(
        context, "127.0.0.1", int(psp_port), public_key_path("iso8583").read_bytes(),
        timeout_s=2.0))
    router = Router([RouteRule(name="all", connectors=("cih",))], {"cih": connector}, {},
                    breakers={"cih": BreakerSettings(100, 30.0, 15.0)})
    pop = HttpsPopClient(pop_url, signer, TERMINAL_ID, timeout_s=2.0)
    store = Store.open(Path(data_dir) / "etika.db")
    keys = SoftwareKeyStore(StoreTokenRegistry(store))
    kill_at = rest[-1] if mode in ("sale", "refund") else "-"
    manager = PaymentManager(profile=profile, store=store, card_keys=keys, router=router,
                             pop=pop, kernel_config=kernel_config_from_profile(profile),
                             on_step=_killer(kill_at))
    try:
        if mode == "sale":
            amount = parse_amount("600.00", currency("MAD"))
            outcome = await manager.sale(SaleRequest(amount, card_timeout_s=1.0),
                                         in_process_reader("visa-credit", "contact"))
            print(json.dumps(outcome.as_json()))
        elif mode == "refund":
            refund = await refund_payment(manager, rest[0],
                                          parse_amount("100.00", currency("MAD")))
            print(json.dumps(refund.as_json()))
        else:
            await recover(manager)
            worker = OutboxWorker(
                SqliteOutbox(store),
                {"psp:cih": PspOutboxTransport(router, "cih",
                                               advice_card=advice_card_source(store, lambda: keys)),
                 "pop": PopOutboxTransport(pop)},
                signer, WorkerSettings(terminal_id=TERMINAL_ID, ack_timeout_s=5.0,
                                       retry=RetryPolicy(base_s=0.01, cap_s=0.05)))
            try:
                for _ in range(3):
                    await worker.drain()
            finally:
                worker.close()
            await settle(manager)
            payments = [dict(r) for r in store.connection.execute(
                "SELECT id, status FROM payments")]
            refunds = [dict(r) for r in store.connection.execute(
                "SELECT id, payment_id, status, amount_minor FROM refunds")]
            pops = [dict(r) for r in store.connection.execute(
                "SELECT id, payment_id, status FROM pop_transactions")]
            outbox = [dict(r) for r in store.connection.execute(
                "SELECT destination, kind, state FROM outbox WHERE destination != 'platform'")]
            print(json.dumps({"payments": payments, "refunds": refunds, "pop": pops,
                              "outbox": outbox, "journal": store.verify_journal()}))
    finally:
        await pop.aclose()
        await router.aclose()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
