"""Token-activation events, from the terminals' uplinks to the token system (seed 001 §3.3).

A terminal reports ``token_activation`` when a dual transaction is confirmed on both legs;
the platform stores it like every uplink (after its signature is checked) and this
forwarder posts each stored event to the token system (``etika-token-system``; ``etika sim
pop`` serves its stand-in at ``/v1/token-system/activations``). The token system
deduplicates on the event's ``event_id``, so an event posted twice (a platform restart
forgets what it forwarded) is recorded once; an event it refuses is logged and counted and
not retried. Every httpx failure stays inside: the next round tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import httpx

from edge_sync.platform.storage import PlatformStorage

__all__ = ["ForwardStats", "TokenActivationForwarder"]

log = logging.getLogger("etika.platform.token")


@dataclass
class ForwardStats:
    forwarded: int = 0
    refused: int = 0
    failed_rounds: int = 0


class TokenActivationForwarder:
    """Posts stored ``token_activation`` payloads to ``{url}`` (the activations endpoint)."""

    def __init__(self, storage: PlatformStorage, url: str, *, every_s: float = 2.0,
                 batch: int = 500, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the token system URL must be http(s)://…, not {url!r}")
        self.url = url
        self._storage = storage
        self._every_s = every_s
        self._batch = batch
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._done: set[tuple[str, str]] = set()  # (terminal, message id) forwarded or refused
        self.stats = ForwardStats()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def forward_once(self) -> int:
        """Post every stored event not yet forwarded by this process; how many went."""
        sent = 0
        terminals = await asyncio.to_thread(self._storage.terminals)
        for terminal in terminals:
            stored = await asyncio.to_thread(self._storage.messages, terminal.terminal_id,
                                             "token_activation", self._batch)
            for item in reversed(stored):  # oldest first
                envelope = item.get("envelope") or {}
                key = (terminal.terminal_id, str(envelope.get("message_id")))
                payload = envelope.get("payload")
                if key in self._done or not isinstance(payload, dict):
                    continue
                try:
                    answer = await self._client.post(self.url, json=payload)
                except httpx.HTTPError as exc:
                    self.stats.failed_rounds += 1
                    log.warning("token system %s unreachable: %s", self.url, exc)
                    return sent
                if answer.status_code == 200:
                    self.stats.forwarded += 1
                    sent += 1
                elif 400 <= answer.status_code < 500:
                    self.stats.refused += 1
                    log.warning("token system refused activation %s of %s: HTTP %d",
                                key[1], key[0], answer.status_code)
                else:
                    self.stats.failed_rounds += 1
                    return sent  # the token system is in trouble: try the rest later
                self._done.add(key)
        return sent

    async def run(self) -> None:
        """Forward until cancelled."""
        while True:
            with contextlib.suppress(Exception):
                await self.forward_once()
            await asyncio.sleep(self._every_s)
