"""The terminal under chaos: a child process that takes sales until the store holds N.

Run by :mod:`tests.resilience.chaos` (which SIGKILLs and restarts it)::

    python -m tests.resilience.driver --profile P --data-dir D --target N --seed S
    python -m tests.resilience.driver --profile P --data-dir D --drain

On start it runs recovery (what a restarted terminal does), then loops: one sale on an
in-process simulated card through :meth:`PaymentManager.sale` (the profile's PSP over
loopback, the PoP back end over HTTP, the SoftHSM2 key store), and every few sales one sync
(outbox to PSP, PoP and — through Mosquitto — the platform) followed by settlement. The
number of sales already taken is read from the store, so a restart carries on where the
killed process stopped. ``--drain`` takes no sale: it syncs and settles until every
payment is final and the outbox is empty (or it gives up), then prints what is left.

Each line printed is JSON (``{"sale": …}``, ``{"sync": …}``, ``{"drained": …}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message=".*TripleDES.*")

from etika_errors import EtikaError  # noqa: E402
from simulators.card.reader import in_process_reader  # noqa: E402
from terminal.money import currency, parse_amount  # noqa: E402
from terminal.payments.model import SaleRequest  # noqa: E402
from terminal.payments.recovery import recover, settle  # noqa: E402
from terminal.profile import load_profile  # noqa: E402
from terminal.services import TerminalServices  # noqa: E402
from terminal.services.sync import SyncOptions  # noqa: E402

__all__ = ["CARDS", "NON_FINAL", "main"]

#: The simulated cards the workload pays with (all approvable without a PIN pad).
CARDS = ("visa-credit", "mastercard-debit", "cb", "domestic-visa")
#: Payment states that still wait for something (a sync, a settlement, an answer).
NON_FINAL = ("created", "authorising", "pop_deferred", "reversal_pending")
SYNC_EVERY = 8


def _emit(**fields: Any) -> None:
    print(json.dumps(fields, default=str), flush=True)


def _count(services: TerminalServices) -> int:
    return int(services.store.connection.execute("SELECT COUNT(*) FROM payments").fetchone()[0])


def _pending(services: TerminalServices) -> tuple[int, int]:
    """(payments not final, outbox rows neither delivered nor dead)."""
    conn = services.store.connection
    marks = ",".join("?" * len(NON_FINAL))
    payments = conn.execute(f"SELECT COUNT(*) FROM payments WHERE status IN ({marks})",
                            NON_FINAL).fetchone()[0]
    outbox = conn.execute("SELECT COUNT(*) FROM outbox WHERE state NOT IN ('delivered', 'dead')"
                          ).fetchone()[0]
    return int(payments), int(outbox)


async def _sync(services: TerminalServices) -> dict[str, Any]:
    """One drain of every destination, then settlement (as ``etika sync run --once``)."""
    options = SyncOptions(once=True, transport="mqtt", connect_timeout_s=1.5)
    notices: list[str] = []
    try:
        report = await services.sync.run(options, on_notice=notices.append,
                                         psp_transports=services.psp_transports,
                                         pop_transport=services.pop_transport)
        summary: dict[str, Any] = {k: v for k, v in report.as_dict().items() if v}
    except EtikaError as exc:  # a link down, a refused batch: the run goes on, reported
        summary = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        await services.aclose()
    async with services.payments() as manager:
        settled = await settle(manager)
    summary["settled"] = settled.changed
    if notices:
        summary["notices"] = notices[:3]
    return summary


async def _run(services: TerminalServices, target: int, seed: int, drain: bool,
               drain_seconds: float) -> int:
    async with services.payments() as manager:
        report = await recover(manager)
    _emit(recovered=report.as_json())
    MAD = currency("MAD")
    since_sync = 0
    while not drain:
        done = _count(services)
        if done >= target:
            break
        # One generator per sale index: the same sale is asked again after a kill.
        rng = random.Random(seed * 1_000_003 + done)
        card = rng.choice(CARDS)
        amount = parse_amount(f"{rng.randint(100, 15_000) / 100:.2f}", MAD)
        async with services.payments() as manager:
            outcome = await manager.sale(
                SaleRequest(amount=amount, card_timeout_s=2.0, order_ref=f"chaos-{done}"),
                in_process_reader(card))
        _emit(sale=done, id=str(outcome.payment_id), state=outcome.state,
              offline=outcome.offline)
        since_sync += 1
        if since_sync >= SYNC_EVERY:
            since_sync = 0
            _emit(sync=await _sync(services))
    deadline = time.monotonic() + drain_seconds
    while True:
        _emit(sync=await _sync(services))
        payments, outbox = _pending(services)
        if not drain or (payments == 0 and outbox == 0) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    payments, outbox = _pending(services)
    _emit(drained={"payments_not_final": payments, "outbox_pending": outbox,
                   "payments": _count(services)})
    return 0 if not drain or (payments, outbox) == (0, 0) else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    args = parser.parse_args(argv)
    with TerminalServices(load_profile(args.profile), args.data_dir) as services:
        return asyncio.run(_run(services, args.target, args.seed, args.drain,
                                args.drain_seconds))


if __name__ == "__main__":
    sys.exit(main())
