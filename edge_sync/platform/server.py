"""One platform worker: the HTTP API (uvicorn) and the MQTT consumer in one event loop.

Run several workers (distinct ``client_id``) against one PostgreSQL and the broker shares the
uplink between them. uvicorn owns SIGINT/SIGTERM: when it stops, the consumer is cancelled;
an unacknowledged batch is simply redelivered to the next worker session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import uvicorn

from edge_sync.platform.api import create_app
from edge_sync.platform.consumer import UplinkConsumer
from edge_sync.platform.ingest import Ingestor
from edge_sync.platform.mqtt import MqttSettings
from edge_sync.platform.storage import PlatformStorage

__all__ = ["ServeSettings", "serve"]

log = logging.getLogger("etika.platform")


@dataclass(frozen=True)
class ServeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: ``None``: HTTP only (no broker), e.g. a worker that serves the fleet API.
    mqtt: MqttSettings | None = None
    max_batch: int = 500


async def serve(storage: PlatformStorage, settings: ServeSettings) -> None:
    """Serve until SIGINT/SIGTERM."""
    ingestor = Ingestor(storage)
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
            "last_error": stats.last_error,
        }

    app = create_app(storage, ingestor, health)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = None
    if consumer is not None:
        task = asyncio.create_task(consumer.run(), name="platform-mqtt")
        # If the consumer ever dies, take the HTTP server down with it: a half worker
        # that answers /healthz but consumes nothing would hide the failure.
        task.add_done_callback(lambda _t: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
