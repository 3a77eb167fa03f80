"""The PoP back end's client as the profile describes it (``sync.toml`` ``pop_*``)."""

from __future__ import annotations

import contextlib
import uuid

from edge_sync.errors import PopUnavailableError
from edge_sync.pop import HttpsPopClient, PopClient, PopReceipt, PopRecord
from edge_sync.signing import Signer
from terminal.profile import Profile

__all__ = ["UnconfiguredPopClient", "profile_pop_client"]


class UnconfiguredPopClient:
    """No PoP back end in the profile: every record waits in the outbox, and says why."""

    async def submit(self, record: PopRecord) -> PopReceipt:
        raise PopUnavailableError("no PoP back end is configured ([sync] pop_url in sync.toml)")

    async def cancel(self, record_id: uuid.UUID, reason: str) -> PopReceipt:
        raise PopUnavailableError("no PoP back end is configured ([sync] pop_url in sync.toml)")

    async def status(self, record_id: uuid.UUID) -> PopReceipt:
        raise PopUnavailableError("no PoP back end is configured ([sync] pop_url in sync.toml)")


def profile_pop_client(profile: Profile, signer: Signer,
                       stack: contextlib.AsyncExitStack) -> PopClient:
    """HTTPS to ``[sync] pop_url`` (closed with ``stack``), or :class:`UnconfiguredPopClient`."""
    sync = profile.sync
    if not sync.pop_url:
        return UnconfiguredPopClient()
    client = HttpsPopClient(sync.pop_url, signer, profile.terminal.terminal_id,
                            timeout_s=sync.pop_timeout_s, audience=sync.pop_audience)
    stack.push_async_callback(client.aclose)
    return client
