"""``etika platform serve`` over HTTPS with client certificates (the terminals' PKI)."""

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

from edge_sync import pki as test_pki_module
from edge_sync.messages import build_envelope, messages_path
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from tests.fixtures.mosquitto import free_port
from tests.integration.platform_key import platform_public_key

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[2]
TERMINAL_ID = "ETK00001"


@pytest.fixture
def https_platform(test_pki: test_pki_module.TestPki, tmp_path: Path) -> Iterator[tuple[str, SoftwareSigner]]:
    """A platform process serving HTTPS only (no MQTT), client certificates required."""
    signer = SoftwareSigner.generate()
    database = tmp_path / "platform.db"
    storage = open_storage(str(database))
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "2026-11-21T00:00Z")
    storage.close()
    port = free_port()
    log = tmp_path / "platform.log"
    platform_data = tmp_path / "platform-data"
    platform_public_key(platform_data)  # `platform key` first: serve only opens the key
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal.cli.main", "--data-dir", str(platform_data),
         "platform", "serve", "--no-mqtt",
         "--database", str(database), "--http-port", str(port),
         "--https-cert", str(test_pki.platform_pem), "--https-key", str(test_pki.platform_key),
         "--https-client-ca", str(test_pki.ca_pem)],
        cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"platform exited: {log.read_text()}")
            try:
                with httpx.Client(verify=_context(test_pki, with_cert=True)) as http:
                    if http.get(f"{url}/healthz").status_code == 200:
                        break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url, signer
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def _context(pki: test_pki_module.TestPki, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_pem))
    if with_cert:
        context.load_cert_chain(str(pki.terminal_pem), str(pki.terminal_key))
    return context


def test_https_fallback_with_a_client_certificate(
    https_platform: tuple[str, SoftwareSigner], test_pki: test_pki_module.TestPki
) -> None:
    """A terminal presenting its certificate posts a batch and gets acks after the commit."""
    url, signer = https_platform
    message = build_envelope(signer, terminal_id=TERMINAL_ID, kind="status", seq=1,
                             idempotency_key="s-1", payload={"backlog": {"platform": 3}})
    with httpx.Client(base_url=url, verify=_context(test_pki, with_cert=True)) as http:
        body = {"messages": [message.wire(), message.wire()]}
        response = http.post(messages_path(TERMINAL_ID), json=body)
        assert response.status_code == 200
        assert [a["status"] for a in response.json()["acks"]] == ["accepted", "duplicate"]
        terminal = http.get(f"/v1/terminals/{TERMINAL_ID}").json()
    assert terminal["backlog"] == {"platform": 3}


def test_https_refuses_a_client_without_certificate(
    https_platform: tuple[str, SoftwareSigner], test_pki: test_pki_module.TestPki
) -> None:
    """Without a client certificate the TLS handshake fails: nothing reaches the API."""
    url, _ = https_platform
    with httpx.Client(verify=_context(test_pki, with_cert=False)) as http, \
            pytest.raises(httpx.HTTPError):
        http.get(f"{url}/v1/terminals")
