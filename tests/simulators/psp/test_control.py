"""The ISO 8583 host's control port: its in-memory ledger for reconciliation, and faults
changed without a restart (``etika sim psp --control-port``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from simulators.psp.control import ControlServer
from tests.fixtures.psp import authorisation


async def test_ledger_summary_and_faults(iso_host: Callable[..., Any]) -> None:
    """After one sale the summary lists it by its idempotency key, with per-currency sums
    and no card data; POST /v1/admin/faults replaces the faults; a bad spec is a 400."""
    async with iso_host() as sim:
        control = ControlServer(sim.host)
        port = await control.start()
        base = f"http://127.0.0.1:{port}"
        try:
            request = authorisation()
            answer = await sim.connector.authorise(request)
            assert answer.approved
            async with httpx.AsyncClient(base_url=base) as client:
                summary = (await client.get("/ledger/summary")).json()
                assert [e["key"] for e in summary["entries"]] == [request.idempotency_key]
                assert summary["by_currency"]["MAD"]["captured"] == {
                    "count": 1, "amount_minor": 2500}
                assert "4761739001010010" not in str(summary)
                changed = await client.post("/v1/admin/faults", json={"spec": "timeout=2"})
                assert changed.status_code == 200 and sim.host.faults.timeout == 2
                bad = await client.post("/v1/admin/faults", json={"spec": "explode=1"})
                assert bad.status_code == 400 and bad.json()["error"] == "bad_faults"
                cleared = await client.post("/v1/admin/faults", json={"spec": ""})
                assert cleared.status_code == 200 and sim.host.faults.timeout == 0
                missing = await client.get("/nowhere")
                assert missing.status_code == 404
        finally:
            await control.close()
