"""One platform worker: the HTTP API (uvicorn) and the MQTT consumer in one event loop.

Run several workers (distinct ``client_id``) against one PostgreSQL and the broker shares the
uplink between them. uvicorn owns SIGINT/SIGTERM: when it stops, the consumer is cancelled;
an unacknowledged batch is simply redelivered to the next worker session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from edge_sync.platform.api import create_app
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.errors import ListenError
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.metrics import platform_registry
from edge_sync.platform.mqtt import MqttSettings
from edge_sync.platform.storage import PlatformStorage
from edge_sync.platform.token_forward import TokenActivationForwarder
from edge_sync.signing import Signer

__all__ = ["ServeSettings", "listen", "serve"]

log = logging.getLogger("etika.platform")


@dataclass(frozen=True)
class ServeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: ``None``: HTTP only (no broker), e.g. a worker that serves the fleet API.
    mqtt: MqttSettings | None = None
    max_batch: int = 500
    #: Serve HTTPS with this certificate chain and key (plain HTTP when ``None``).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Require a client certificate issued by this CA (the terminals' PKI).
    tls_client_ca: Path | None = None
    #: Bearer token the fleet, reconciliation and metrics endpoints require (None: open).
    operator_token: str | None = field(default=None, repr=False)
    #: Where token-activation events go (the token system's activations endpoint).
    token_system_url: str | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("HTTPS needs both a certificate and its key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("a client CA only makes sense with HTTPS (certificate and key)")


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; :class:`ListenError` when that cannot be."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; check --http-host",
            host=host,
            port=port,
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --http-port (or stop what uses it)",
            host=host,
            port=port,
        ) from exc
    return sock


async def serve(
    storage: PlatformStorage,
    settings: ServeSettings,
    signer: Signer | None = None,
    *,
    on_listening: Callable[[str, str, int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; every ack is signed with ``signer`` (the platform key).
    ``on_listening(scheme, host, port)`` is told the port bound (``http_port`` 0: any free
    one) before the first request is served."""
    ingestor = Ingestor(storage, signer=signer)
    consumer = (
        UplinkConsumer(ingestor, settings.mqtt, max_batch=settings.max_batch)
        if settings.mqtt is not None
        else None
    )

    def health() -> dict[str, Any]:
        if consumer is None:
            return {"mqtt": "disabled"}
        stats = consumer.stats
        return {
            "mqtt": "subscribed" if consumer.subscribed.is_set() else "connecting",
            "client_id": consumer.settings.client_id,
            "received": stats.received,
            "accepted": stats.accepted,
            "duplicate": stats.duplicate,
            "rejected": stats.rejected,
            "held": stats.held,
            "last_error": stats.last_error,
        }

    app = create_app(
        storage,
        ingestor,
        health,
        platform_registry(ingestor, consumer),
        operator_token=settings.operator_token,
    )
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        ssl_ca_certs=str(settings.tls_client_ca) if settings.tls_client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca else ssl.CERT_NONE,
    )
    server = uvicorn.Server(config)
    # Bound here rather than by uvicorn, so that a taken port is our one-line error (and
    # no MQTT session is opened for a worker that cannot serve).
    listener = listen(settings.http_host, settings.http_port)
    if on_listening is not None:
        on_listening("https" if settings.tls_cert else "http", settings.http_host,
                     int(listener.getsockname()[1]))
    task = None
    forwarder = (TokenActivationForwarder(storage, settings.token_system_url)
                 if settings.token_system_url else None)
    forwarding = (asyncio.create_task(forwarder.run(), name="platform-token-forward")
                  if forwarder is not None else None)
    if consumer is not None:
        task = asyncio.create_task(consumer.run(), name="platform-mqtt")
        # If the consumer ever dies, take the HTTP server down with it: a half worker
        # that answers /healthz but consumes nothing would hide the failure.
        task.add_done_callback(lambda _t: setattr(server, "should_exit", True))
    try:
        await server.serve(sockets=[listener])
    finally:
        listener.close()
        if forwarding is not None and forwarder is not None:
            forwarding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarding
            await forwarder.aclose()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
