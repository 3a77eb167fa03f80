"""How the platform reaches the broker: address, identity, TLS, and an aiomqtt client.

Platform workers connect with MQTT 5, a fixed client id per worker, ``clean_start=False``
and a session expiry, so a worker that crashes finds its unacknowledged uplinks waiting when
it comes back; and with manual acknowledgement, so the broker's PUBACK is sent only after
the platform's database commit (paho acknowledges on receipt otherwise).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["MqttSettings", "make_client"]


@dataclass(frozen=True)
class MqttSettings:
    """Broker address and this worker's identity (TLS when ``ca_file`` is given)."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "etika-platform-1"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30
    #: How long the broker keeps a disconnected worker's session. Mosquitto keeps handing
    #: an offline member of a shared subscription its share of the uplink: a worker that
    #: comes back finds it, one removed for good strands it until expiry (the terminals
    #: resend after their ack timeout meanwhile). Hence minutes, not hours.
    session_expiry_s: int = 300
    #: Unacknowledged QoS 1 messages the broker may have in flight to this worker.
    receive_maximum: int = 1000

    def tls_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file or self.cert_file))
        return context


def make_client(settings: MqttSettings, *, manual_ack: bool, persistent: bool) -> aiomqtt.Client:
    """An aiomqtt client for the platform (not yet connected)."""
    properties = Properties(PacketTypes.CONNECT)
    if persistent:
        properties.SessionExpiryInterval = settings.session_expiry_s
    properties.ReceiveMaximum = settings.receive_maximum
    client = aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=settings.client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=not persistent,
        keepalive=settings.keepalive,
        properties=properties,
        tls_context=settings.tls_context(),
        # Acks go out without waiting on each other; let paho keep them all on the wire.
        max_inflight_messages=settings.receive_maximum,
    )
    # aiomqtt warns above 10 publishes awaiting their PUBACK; a batch of acks is many more
    # by design (bounded by the batch size), so warn only well beyond that.
    client.pending_calls_threshold = max(settings.receive_maximum, 1000)
    if manual_ack:
        # aiomqtt 2.5 has no switch for this; paho's does exactly what we need, and must be
        # set before the session resumes (queued uplinks arrive right after CONNACK).
        client._client.manual_ack_set(True)
    return client
