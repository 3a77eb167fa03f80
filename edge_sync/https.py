"""The HTTPS fallback (httpx): ``POST /v1/terminals/{id}/messages`` when MQTT is unavailable.

One request carries a batch ``{"messages": [envelope, ...]}`` (at most ``max_batch``; longer
batches are split and sent in order) and the platform answers ``{"acks": [ack, ...]}`` after
its commit. TLS verifies the platform against the test or production CA and presents the
terminal's client certificate. httpx errors are mapped to :class:`TransportError` here, at
the edge; a 4xx other than 408/429 is a contract problem and says so. Each ack must verify
with the platform key and name this terminal, this destination and a message of the batch
(:class:`~edge_sync.messages.AckVerifier`); others are dropped and counted.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge_sync.ack_binding import SentLog
from edge_sync.bounded_json import MAX_MESSAGE_BYTES, storable_text, validate_json
from edge_sync.errors import MessageFormatError, SignatureError, TransportError
from edge_sync.http_client import (
    JSON_HEADERS,
    OwnsHttpClient,
    client_tls_context,
    http_client,
    read_capped,
)
from edge_sync.messages import Ack, AckBatch, AckVerifier, Envelope, messages_path

__all__ = ["HttpsLinkSettings", "HttpsTransport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpsLinkSettings:
    """The platform's base URL and the terminal's TLS identity (from the profile's ``[sync]``)."""

    terminal_id: str
    base_url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    max_batch: int = 500
    #: The platform's public key (PEM): acks that do not verify with it settle nothing.
    platform_public_key: bytes | str | None = None
    #: The outbox destination this link carries; every ack must name it.
    destination: str = "platform"

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.ca_file is None:
            return True  # the system's CAs
        try:
            return client_tls_context(self.ca_file, self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"cannot load the HTTPS TLS files ({self.ca_file}, {self.cert_file}): {exc}; "
                "run scripts/setup to create the test PKI or fix the [sync] paths",
                url=self.base_url,
            ) from exc


class HttpsTransport(OwnsHttpClient):
    """A :class:`~edge_sync.transport.Transport` over HTTPS; ``async with`` closes its client."""

    def __init__(
        self, settings: HttpsLinkSettings, *, transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        if settings.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._settings = settings
        self._url = settings.base_url.rstrip("/") + messages_path(settings.terminal_id)
        self._client = http_client(
            verify=settings.ssl_context() if transport is None else True,
            transport=transport, headers=JSON_HEADERS,
        )
        self._verifier = AckVerifier.for_link(
            settings.platform_public_key, settings.terminal_id, settings.destination
        )
        #: Acks dropped: unsigned, forged, misdirected, or for a message not in the batch.
        self.refused_acks = 0

    @property
    def name(self) -> str:
        return "https"

    async def deliver(self, envelopes: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        acks: dict[str, Ack] = {}
        size = self._settings.max_batch
        for start in range(0, len(envelopes), size):
            try:
                acks.update(await self._post(envelopes[start : start + size], timeout))
            except TransportError:
                if not acks:
                    raise
                return acks  # what was acknowledged stays acknowledged; the rest is retried
        return acks

    async def _post(self, batch: Sequence[Envelope], timeout: float) -> dict[str, Ack]:
        body = b'{"messages":[' + b",".join(e.to_json() for e in batch) + b"]}"
        # Acks are held to this request: its messages, their seqs, not issued before it.
        sent = SentLog(self._clock)
        for envelope in batch:
            sent.sent(envelope.message_id, envelope.seq)
        try:
            # Streamed so that an answer is read only up to the bound, never whole.
            async with self._client.stream("POST", self._url, content=body,
                                           timeout=timeout) as response:
                content = await read_capped(response, MAX_MESSAGE_BYTES)
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"HTTPS POST {self._url} timed out after {timeout:g} s", url=self._url
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                f"HTTPS POST {self._url} failed: {exc!s} ({type(exc).__name__})", url=self._url
            ) from exc
        if content is None:
            raise TransportError(
                f"HTTPS answer from {self._url} is larger than {MAX_MESSAGE_BYTES} bytes; "
                "it is not an ack batch", url=self._url)
        if response.status_code != 200:
            hint = (
                "the platform refused the request itself (contract mismatch?)"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429)
                else "the platform is unavailable; retrying later"
            )
            raise TransportError(
                f"HTTPS POST {self._url} answered {response.status_code}: "
                f"{storable_text(content[:200].decode('utf-8', 'replace'), 200)}; {hint}",
                url=self._url,
                status=response.status_code,
            )
        try:
            answer = validate_json(AckBatch, content, "HTTPS answer")
        except MessageFormatError as exc:
            # Retried like an outage: the messages' fate is unknown, the receiver dedups.
            raise TransportError(
                f"HTTPS answer from {self._url} is not an ack batch: {exc.message}",
                url=self._url,
            ) from exc
        acks: dict[str, Ack] = {}
        for ack in answer.acks:
            try:
                if self._verifier is None:
                    raise SignatureError(
                        "no platform public key is configured (sync.toml "
                        "platform_public_key): acks cannot be verified", reason="no key"
                    )
                checked = self._verifier.check(ack)
                if not sent.settleable([checked]):
                    raise SignatureError(
                        f"ack for {ack.message_id}, which this batch did not carry",
                        reason="not in flight",
                    )
            except SignatureError as exc:
                self.refused_acks += 1
                log.warning("sync: ack refused: %s", exc)
                continue
            acks[checked.message_id] = checked
        return acks
