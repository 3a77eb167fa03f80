"""Downlinks through a real Mosquitto: published by the platform's own publisher, applied by
the terminal's handler to a real profile directory and store."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from edge_sync.downlink import DownlinkHandler
from edge_sync.messages import build_downlink
from edge_sync.mqtt import MqttTransport
from edge_sync.platform.downlink import publish_downlink
from edge_sync.platform.topics import platform_downlink_topic
from edge_sync.signing import SoftwareSigner
from terminal.profile import load_profile
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks
from tests.fixtures.mosquitto import PLATFORM_CN, MosquittoBroker

pytestmark = pytest.mark.network

TERMINAL_ID = "ETK00001"
PLATFORM = SoftwareSigner.generate()
NEW_SYNC = '[sync]\nmqtt_host = "broker.example"\nmqtt_port = 9883\n'


async def wait_for_results(handler: DownlinkHandler, count: int) -> None:
    async def loop() -> None:
        while len(handler.results) < count:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), 20)  # a guard against a hang, not a timing assertion


async def test_retained_profile_applied_and_tampered_downlink_refused(
    mosquitto: MosquittoBroker, tmp_path: Path, default_profile_dir: Path
) -> None:
    """A retained, signed config published before the terminal connects is applied to the
    profile on connection; a tampered FX downlink is refused and an alert row is queued;
    the retained config coming again on reconnection is not applied twice."""
    profile = tmp_path / "profile"
    shutil.copytree(default_profile_dir, profile)
    store = Store.open(tmp_path / "etika.db")
    platform_mqtt = mosquitto.platform_settings()
    config = build_downlink(
        PLATFORM, terminal_id=TERMINAL_ID, kind="config", seq=1,
        payload={"version": "42", "files": {"sync.toml": NEW_SYNC}},
    )
    await publish_downlink(platform_mqtt, TERMINAL_ID, config)

    handler = DownlinkHandler(
        PLATFORM.public_key_pem(),
        TerminalDownlinkHooks(FleetStore(store), profile),
        SqliteOutbox(store),
        terminal_id=TERMINAL_ID,
    )
    link = mosquitto.terminal_link(TERMINAL_ID)
    async with MqttTransport(link, on_downlink=handler.handle) as transport:
        assert await transport.wait_connected(10)
        await wait_for_results(handler, 1)
        assert handler.results[0].outcome == "applied"
        assert load_profile(profile).sync.mqtt_port == 9883

        fx = build_downlink(PLATFORM, terminal_id=TERMINAL_ID, kind="fx", seq=1, payload={
            "base": "MAD", "as_of": "2026-11-22T00:00:00Z", "rates": {"EUR": "10.85"}})
        tampered = json.loads(fx.to_json())
        tampered["payload"]["rates"]["EUR"] = "0.01"
        # A forger with broker access as the platform (a stolen platform certificate): the
        # signature still stops it.
        async with mosquitto.client(PLATFORM_CN, identifier="etika-platform-forger") as forger:
            await forger.publish(
                platform_downlink_topic(TERMINAL_ID, "fx"), json.dumps(tampered).encode(),
                qos=1,
            )
        await wait_for_results(handler, 2)
        assert handler.results[1].outcome == "rejected"
        assert FleetStore(store).fx_rates() == {}

    async with MqttTransport(link, on_downlink=handler.handle) as transport:
        assert await transport.wait_connected(10)
        await wait_for_results(handler, 3)  # the retained config, once more
        assert handler.results[2].outcome == "duplicate"

    rows = store.connection.execute("SELECT kind, payload FROM outbox ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["downlink_applied", "alert"]
    alert = json.loads(rows[1][1])
    assert alert["alert"] == "downlink_rejected" and "signature" in alert["reason"]
    store.close()
