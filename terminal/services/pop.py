"""The PoP back end's client as the profile describes it (``sync.toml`` ``pop_*``)."""

from __future__ import annotations

import contextlib
import ssl
import uuid
from pathlib import Path

from edge_sync.errors import PopUnavailableError
from edge_sync.http_client import client_tls_context
from edge_sync.pop import HttpsPopClient, PopClient, PopReceipt, PopRecord
from edge_sync.signing import Signer
from terminal.errors import ConfigError
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


def profile_pop_client(profile: Profile, signer: Signer, stack: contextlib.AsyncExitStack,
                       data_dir: Path | None = None) -> PopClient:
    """HTTPS to ``[sync] pop_url`` (closed with ``stack``), or :class:`UnconfiguredPopClient`.

    Over HTTPS the back end's certificate is checked against ``[sync] ca_file`` (relative to
    the data dir) when the profile names one, else against the system's CAs.
    """
    sync = profile.sync
    if not sync.pop_url:
        return UnconfiguredPopClient()
    context = None
    if sync.pop_url.startswith("https://") and sync.ca_file:
        ca = Path(sync.ca_file)
        if not ca.is_absolute() and data_dir is not None:
            ca = data_dir / ca
        try:
            context = client_tls_context(ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"sync.toml:sync.ca_file: cannot load {ca} for the PoP back "
                               f"end's certificate ({exc})"]) from exc
    client = HttpsPopClient(sync.pop_url, signer, profile.terminal.terminal_id,
                            timeout_s=sync.pop_timeout_s, audience=sync.pop_audience,
                            ssl_context=context)
    stack.push_async_callback(client.aclose)
    return client
