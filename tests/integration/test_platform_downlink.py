"""``etika platform push`` on a real Mosquitto: signed, verifiable, config retained."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from edge_sync.downlink import ConfigUpdate
from edge_sync.errors import SignatureError
from edge_sync.messages import (
    Downlink,
    ack_topic,
    downlink_wildcard,
    parse_downlink,
    verify_downlink,
)
from edge_sync.platform.topics import platform_ack_topic
from terminal.cli.main import main
from tests.fixtures.mosquitto import PLATFORM_CN
from tests.fixtures.mosquitto import MosquittoBroker as Broker

pytestmark = pytest.mark.network


@pytest.fixture(autouse=True)
def _own_platform_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's platform gets a token of its own: in-process, SoftHSM2 keeps the token
    directory it first loaded, where another test's platform token (other PINs) may be."""
    monkeypatch.setenv("ETIKA_PLATFORM_TOKEN_LABEL", f"platform-{uuid.uuid4().hex[:12]}")


@pytest.fixture(autouse=True)
def _platform_key(_own_platform_token: None, data_dir: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    """``etika platform key`` first, as at deployment: push only opens the key, never
    creates one."""
    assert main(["--data-dir", str(data_dir), "platform", "key"]) == 0
    capsys.readouterr()


@pytest.fixture
def broker(mosquitto: Broker) -> Broker:
    """The shared Mosquitto fixture (plain and TLS listeners, free loopback ports)."""
    return mosquitto


async def _retained(broker: Broker, terminal_id: str) -> list[tuple[Downlink, bool]]:
    """What a terminal coming online now receives on its downlink topics."""
    found: list[tuple[Downlink, bool]] = []
    async with broker.client(terminal_id) as client:
        await client.subscribe(downlink_wildcard(terminal_id), qos=1)
        # Retained messages arrive right after SUBACK; a marker published after the
        # subscription (by the platform, on the one other topic the terminal may read)
        # tells us we have seen all of them.
        await client.subscribe(ack_topic(terminal_id), qos=1)
        async with broker.client(PLATFORM_CN, identifier="etika-platform-marker") as platform:
            await platform.publish(platform_ack_topic(terminal_id), b"end", qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                if message.payload == b"end":
                    break
                assert isinstance(message.payload, bytes)
                found.append((parse_downlink(message.payload), message.retain))
    return found


def test_pushed_config_is_retained_and_verifies(
    broker: Broker, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A late terminal gets the retained config (not the cmd), signed by the platform key."""
    config = tmp_path / "offline.toml"
    config.write_text('[offline]\nfloor_limit_minor = 50000\ncurrency = "MAD"\n')
    command = tmp_path / "cmd.json"
    command.write_text('{"command": "sync_now"}')
    base = ["--data-dir", str(data_dir), "platform", "push", "--terminal-id", "T-0001",
            *broker.platform_cli_args()]
    assert main([*base, "config", str(config), "--config-version", "v42"]) == 0
    assert "(retained)" in capsys.readouterr().out
    assert main([*base, "cmd", str(command)]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(data_dir), "platform", "key"]) == 0
    public_key = capsys.readouterr().out

    received = asyncio.run(_retained(broker, "T-0001"))
    assert [(d.kind, retained) for d, retained in received] == [("config", True)]
    downlink = received[0][0]
    assert downlink.payload == {"version": "v42", "files": {"offline.toml": config.read_text()}}
    ConfigUpdate.model_validate(downlink.payload)  # what the terminal's handler checks
    verify_downlink(downlink, public_key)
    tampered = downlink.model_copy(
        update={"payload": {"version": "v42", "files": {"offline.toml": "[offline]\n"}}})
    with pytest.raises(SignatureError):
        verify_downlink(tampered, public_key)


def test_push_refuses_a_payload_terminals_would_refuse(
    broker: Broker, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A blacklist carrying a full PAN never leaves the platform: exit 2, nothing published."""
    bad = tmp_path / "blacklist.json"
    bad.write_text('{"version": 1, "mode": "add", '
                   '"entries": [{"type": "bin", "value": "4111111111111111"}]}')
    status = main(["--data-dir", str(data_dir), "platform", "push", "blacklist", str(bad),
                   "--terminal-id", "T-0001", *broker.platform_cli_args()])
    err = capsys.readouterr().err
    assert status == 2
    assert "does not match what terminals accept" in err and "4111111111111111" not in err


def test_config_payload_written_as_toml(
    broker: Broker, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A TOML file with version and [files] is the payload itself, as the sync docs show."""
    payload = tmp_path / "update.toml"
    payload.write_text('version = "7"\n[files]\n"sync.toml" = """\n[sync]\nmqtt_port = 8883\n"""\n')
    status = main(["--data-dir", str(data_dir), "platform", "push", "config", str(payload),
                   "--terminal-id", "T-0001", *broker.platform_cli_args()])
    assert status == 0, capsys.readouterr().err
    received = asyncio.run(_retained(broker, "T-0001"))
    assert received[0][0].payload == {"version": "7",
                                      "files": {"sync.toml": "[sync]\nmqtt_port = 8883\n"}}


async def _handled_by_a_terminal(broker: Broker, public_key: str) -> list[Any]:
    """The terminal side's DownlinkHandler applying what a late terminal receives."""
    from edge_sync.downlink import DownlinkHandler, MemoryDownlinkHooks
    from edge_sync.memory_outbox import MemoryOutbox

    hooks = MemoryDownlinkHooks()
    handler = DownlinkHandler(public_key, hooks, MemoryOutbox(), terminal_id="T-0001")
    for downlink, _flag in await _retained(broker, "T-0001"):
        await handler.handle(downlink.kind, downlink.to_json())
    return [hooks, handler.results]


def test_terminal_handler_applies_what_the_platform_pushes(
    broker: Broker, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config pushed from a profile directory verifies and applies on the terminal side."""
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "limits.toml").write_text("[limits]\noffline_floor_minor = 10000\n")
    (profile / "sync.toml").write_text("[sync]\nbatch_size = 50\n")
    assert main(["--data-dir", str(data_dir), "platform", "push", "config", str(profile),
                 "--terminal-id", "T-0001", *broker.platform_cli_args(),
                 "--config-version", "2026-11-22.1"]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(data_dir), "platform", "key"]) == 0
    public_key = capsys.readouterr().out
    hooks, results = asyncio.run(_handled_by_a_terminal(broker, public_key))
    assert [(r.kind, r.outcome) for r in results] == [("config", "applied")], results
    assert hooks.configs[0].version == "2026-11-22.1"
    assert sorted(hooks.configs[0].files) == ["limits.toml", "sync.toml"]
