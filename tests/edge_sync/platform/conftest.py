"""Shared fixtures of the platform tests: a storage per engine, a registered terminal."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_sync.messages import Envelope, build_envelope
from edge_sync.platform.storage import PlatformStorage, open_storage
from edge_sync.signing import SoftwareSigner

TERMINAL_ID = "T-0001"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh platform database URL: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return str(tmp_path / "platform.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def storage(database: str) -> Iterator[PlatformStorage]:
    opened = open_storage(database)
    yield opened
    opened.close()


@pytest.fixture
def signer() -> SoftwareSigner:
    return SoftwareSigner.generate(key_version=1)


@pytest.fixture
def registered(storage: PlatformStorage, signer: SoftwareSigner) -> SoftwareSigner:
    """The terminal ``T-0001`` registered with ``signer``'s public key."""
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "2026-11-21T00:00:00Z")
    return signer


_seq = itertools.count(1)


def envelope(
    signer: SoftwareSigner,
    kind: str = "transaction",
    payload: dict[str, Any] | None = None,
    terminal_id: str = TERMINAL_ID,
    seq: int | None = None,
    created_at: str = "2026-11-21T10:00:00.000Z",
) -> Envelope:
    """A signed envelope; a transaction of 100.00 MAD unless told otherwise."""
    number = next(_seq) if seq is None else seq
    if payload is None:
        payload = {
            "transaction_id": f"tx-{number}",
            "amount_minor": 10000,
            "currency": "MAD",
            "business_date": "2026-11-21",
            "state": "completed",
        }
    return build_envelope(
        signer,
        terminal_id=terminal_id,
        kind=kind,
        seq=number,
        idempotency_key=f"idem-{number}",
        payload=payload,
        created_at=created_at,
    )
