"""The terminal's HTTPS fallback against a real ``etika platform serve`` over TLS, with the
terminal's client certificate (the platform requires one)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_sync import pki as pki_module
from edge_sync.errors import TransportError
from edge_sync.https import HttpsLinkSettings, HttpsTransport
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import build_envelope
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from edge_sync.worker import OutboxWorker, WorkerSettings
from tests.fixtures.mosquitto import free_port
from tests.integration.platform_key import platform_public_key

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
TERMINAL_ID = "ETK00001"
SIGNER = SoftwareSigner.generate()


@pytest.fixture
def platform_url(test_pki: pki_module.TestPki, tmp_path: Path) -> Iterator[str]:
    """`etika platform serve` over HTTPS only, client certificates required."""
    database = tmp_path / "platform.db"
    storage = open_storage(str(database))
    storage.register_key(TERMINAL_ID, 1, SIGNER.public_key_pem().decode(), "2026-11-21T00:00Z")
    storage.close()
    port = free_port()
    log = tmp_path / "platform.log"
    # `platform key` first, as at deployment: serve only opens the key (ETIKA_DATA_DIR's).
    platform_public_key(Path(os.environ["ETIKA_DATA_DIR"]))
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "platform", "serve", "--no-mqtt",
         "--database", str(database), "--http-port", str(port),
         "--https-cert", str(test_pki.platform_pem), "--https-key", str(test_pki.platform_key),
         "--https-client-ca", str(test_pki.ca_pem)],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(test_pki.ca_pem))
    context.load_cert_chain(str(test_pki.terminal_pem), str(test_pki.terminal_key))
    try:
        deadline = time.monotonic() + 30  # a guard against a platform that never starts
        while True:
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            try:
                with httpx.Client(verify=context) as http:
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


async def test_https_fallback_with_client_certificate(
    platform_url: str, test_pki: pki_module.TestPki
) -> None:
    """Over TLS with the terminal's certificate the batch is committed and acked; without a
    client certificate the platform refuses the connection (a TransportError, retried)."""
    outbox = MemoryOutbox()
    ids = [outbox.enqueue("platform", "transaction", {"amount_minor": i, "currency": "MAD"},
                          f"t{i}", 1.0) for i in range(30)]
    # The serving process signs its acks with the key of its data dir (ETIKA_DATA_DIR).
    data_dir = Path(os.environ["ETIKA_DATA_DIR"])
    platform_key = platform_public_key(data_dir)
    good = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url=platform_url,
                             ca_file=test_pki.ca_pem, cert_file=test_pki.terminal_pem,
                             key_file=test_pki.terminal_key,
                             platform_public_key=platform_key.encode())
    settings = WorkerSettings(terminal_id=TERMINAL_ID, batch_size=10, max_in_flight=20)
    async with HttpsTransport(good) as https:
        worker = OutboxWorker(outbox, {"platform": https}, SIGNER, settings)
        report = await worker.drain()
        worker.close()
    assert report.delivered == 30 and all(outbox.state_of(m) == "delivered" for m in ids)

    anonymous = HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url=platform_url,
                                  ca_file=test_pki.ca_pem)
    envelope = build_envelope(SIGNER, terminal_id=TERMINAL_ID, kind="transaction", seq=1,
                              idempotency_key="t", payload={})
    async with HttpsTransport(anonymous) as https:
        with pytest.raises(TransportError):
            await https.deliver([envelope], timeout=5)
