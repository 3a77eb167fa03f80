"""Child process for the terminal crash test: drains a store's outbox over MQTT until killed.

    python -m tests.integration.sync_drain_child DB KEY_PEM HOST PORT CA CERT KEY PLATFORM_PEM
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.outbox import RetryPolicy
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from terminal.store import Store
from terminal.store.outbox import SqliteOutbox


async def main(db: Path, key: Path, host: str, port: int, tls: list[str]) -> None:
    store = Store.open(db)
    signer = SoftwareSigner.from_pem(key.read_bytes())
    ca, cert, cert_key, platform_pem = (Path(p) for p in tls)
    link = MqttLinkSettings(terminal_id="ETK00001", host=host, port=port, max_inflight=200,
                            ca_file=ca, cert_file=cert, key_file=cert_key,
                            platform_public_key=platform_pem.read_bytes())
    async with MqttTransport(link) as transport:
        await transport.wait_connected(10)
        worker = OutboxWorker(
            SqliteOutbox(store), {"platform": transport}, signer,
            WorkerSettings(terminal_id="ETK00001", batch_size=100, max_in_flight=300,
                           retry=RetryPolicy(base_s=0.05, cap_s=0.3)),
        )
        while True:
            await worker.drain()
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                     sys.argv[5:9]))
