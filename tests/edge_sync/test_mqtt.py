"""The MQTT transport's edges that need no broker: error mapping and ack dispatch."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge_sync.ack_binding import SentLog
from edge_sync.errors import TransportError
from edge_sync.messages import Ack, build_ack, build_envelope
from edge_sync.mqtt import MqttLinkSettings, MqttTransport
from edge_sync.signing import SoftwareSigner
from tests.fixtures.mosquitto import free_port

SIGNER = SoftwareSigner.generate()
PLATFORM = SoftwareSigner.generate()
MID = "8a4f1c1e-4a39-4d36-9b44-8d0c4bd1f3a1"


def envelope() -> object:
    return build_envelope(SIGNER, terminal_id="T1", kind="transaction", seq=1,
                          idempotency_key="k", payload={})


async def test_deliver_while_disconnected_raises_transport_error() -> None:
    """With no broker connection, deliver fails at once (so failover can use HTTPS)."""
    transport = MqttTransport(MqttLinkSettings(terminal_id="T1", port=free_port()))
    with pytest.raises(TransportError, match="not connected"):
        await transport.deliver([envelope()], timeout=1)  # type: ignore[list-item]


def test_missing_tls_files_are_a_transport_error(tmp_path: Path) -> None:
    """Unreadable CA/cert files are reported with what to do, not as an ssl traceback."""
    settings = MqttLinkSettings(terminal_id="T1", ca_file=tmp_path / "missing.pem")
    with pytest.raises(TransportError, match="scripts/setup"):
        MqttTransport(settings)


@pytest.mark.network
async def test_refused_connection_is_mapped_and_retried() -> None:
    """A port with no broker: the connection loop records the aiomqtt error and keeps trying."""
    settings = MqttLinkSettings(terminal_id="T1", port=free_port(), reconnect_min_s=0.01,
                                reconnect_max_s=0.02)
    async with MqttTransport(settings) as transport:
        assert not await transport.wait_connected(0.5)
        assert transport.last_error is not None and not transport.connected


#: Every exception class aiomqtt exports, read from the module (not a hand-picked list).
AIOMQTT_ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(aiomqtt, inspect.isclass)
     if issubclass(cls, BaseException)),
    key=lambda cls: cls.__name__,
)


def _aiomqtt_error(cls: type[BaseException]) -> BaseException:
    return cls(7, "injected") if issubclass(cls, aiomqtt.MqttCodeError) else cls("injected")


def test_aiomqtt_exceptions_all_derive_from_mqtt_error() -> None:
    """Catching aiomqtt.MqttError (link loop, platform consumer, pusher) catches all of them."""
    assert len(AIOMQTT_ERRORS) >= 3
    assert all(issubclass(cls, aiomqtt.MqttError) for cls in AIOMQTT_ERRORS)


@pytest.mark.parametrize("cls", AIOMQTT_ERRORS, ids=lambda cls: cls.__name__)
async def test_every_aiomqtt_error_keeps_the_link_retrying(cls: type[BaseException]) -> None:
    """Whatever aiomqtt raises, the link records it, fails deliveries with TransportError, retries."""
    settings = MqttLinkSettings(terminal_id="T1", port=free_port(), reconnect_min_s=0.01,
                                reconnect_max_s=0.02)
    attempts = 0

    class Failing:
        async def __aenter__(self) -> Any:
            nonlocal attempts
            attempts += 1
            raise _aiomqtt_error(cls)

        async def __aexit__(self, *exc: object) -> None:
            return None

    transport = MqttTransport(settings)
    transport._make_client = Failing  # type: ignore[method-assign]
    async with transport:
        async def retried() -> None:
            while attempts < 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(retried(), 30)  # a hang guard, not a timing assertion
        assert transport.last_error == str(_aiomqtt_error(cls))
        assert not transport.connected
        with pytest.raises(TransportError, match="not connected"):
            await transport.deliver([envelope()], timeout=1)  # type: ignore[list-item]


async def test_acks_settle_waiters_and_late_acks_are_passed_on() -> None:
    """A signed ack for a message no longer waited for goes to on_late_ack; malformed,
    unsigned, forged or misdirected acks and foreign topics are dropped and counted."""
    late: list[Ack] = []
    settings = MqttLinkSettings(terminal_id="T1", platform_public_key=PLATFORM.public_key_pem())
    sent = SentLog()
    sent.sent(MID, 5)  # what deliver notes when it publishes
    transport = MqttTransport(settings, on_late_ack=late.append, sent_log=sent)
    ack = build_ack(PLATFORM, terminal_id="T1", destination="platform", message_id=MID,
                    seq=5, status="duplicate")
    await transport._dispatch("etika/v1/t/T1/ack", ack.to_json())
    refused = [
        b"{garbage",
        Ack(message_id=MID, status="accepted").to_json(),
        build_ack(SIGNER, terminal_id="T1", destination="platform", message_id=MID,
                  seq=5, status="accepted").to_json(),
        build_ack(PLATFORM, terminal_id="T2", destination="platform", message_id=MID,
                  seq=5, status="accepted").to_json(),
        build_ack(PLATFORM, terminal_id="T1", destination="pop", message_id=MID,
                  seq=5, status="accepted").to_json(),
        # The very ack again, once settled: it answers nothing sent any more.
        ack.to_json(),
    ]
    for raw in refused:
        await transport._dispatch("etika/v1/t/T1/ack", raw)
    await transport._dispatch("elsewhere/topic", b"{}")
    assert late == [ack]
    assert transport.refused_acks == len(refused)


async def test_downlinks_reach_the_callback_and_its_errors_are_contained() -> None:
    """A downlink is handed to the callback; a failing callback does not break the link."""
    seen: list[tuple[str, bytes]] = []

    async def on_downlink(kind: str, raw: bytes) -> None:
        seen.append((kind, raw))
        raise RuntimeError("handler bug")

    transport = MqttTransport(MqttLinkSettings(terminal_id="T1"), on_downlink=on_downlink)
    await transport._dispatch("etika/v1/t/T1/down/fx", b"{}")
    assert seen == [("fx", b"{}")]


async def test_cancelled_deliver_gives_its_window_back() -> None:
    """A deliver cancelled while waiting for acks frees every in-flight slot it took."""
    import asyncio

    class _Info:
        rc = 0

    class _Paho:
        def publish(self, *args: object, **kwargs: object) -> _Info:
            return _Info()

    class _Client:
        _client = _Paho()

    transport = MqttTransport(MqttLinkSettings(terminal_id="T1", max_inflight=3))
    transport._client = _Client()  # type: ignore[assignment]
    batch = [build_envelope(SIGNER, terminal_id="T1", kind="transaction", seq=i,
                            idempotency_key=f"k{i}", payload={}) for i in range(3)]
    task = asyncio.create_task(transport.deliver(batch, timeout=30))
    await asyncio.sleep(0.05)
    assert transport._window.locked()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not transport._window.locked() and transport._waiters == {}
