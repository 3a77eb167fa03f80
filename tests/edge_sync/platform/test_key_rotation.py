"""Key rotation: a terminal announces its next key, signed with the key the platform trusts."""

from __future__ import annotations

from typing import Any

import pytest

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


def send(ingestor: Ingestor, signer: SoftwareSigner, kind: str, payload: dict[str, Any]) -> Any:
    message = envelope(signer, kind=kind, payload=payload)
    ack, = ingestor.ingest([RawUplink(TERMINAL_ID, message.to_json(), kind)])
    return ack


def test_announced_key_is_registered_and_then_verifies(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """keys_rotated signed by v1 registers v2; messages signed by v2 are then accepted."""
    ingestor = Ingestor(storage)
    new = SoftwareSigner.generate(key_version=2)
    assert send(ingestor, new, "note", {}) is None  # not yet known: held, no ack
    ack = send(ingestor, registered, "keys_rotated",
               {"key_version": 2, "public_key_pem": new.public_key_pem().decode(),
                "downlink_id": "d-1", "downlink_kind": "cmd"})
    assert ack.status == "accepted"
    assert send(ingestor, new, "note", {}).status == "accepted"
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and summary.key_versions == [1, 2]


@pytest.mark.parametrize(
    ("payload",                                                    "reason"),
    [
        ({"key_version": 1, "public_key": "{pem}"},                   "above the signing key"),
        ({"key_version": 0, "public_key": "{pem}"},                   "above the signing key"),
        ({"key_version": 2, "public_key": "not a key"},               "payload.public_key"),
        ({"key_version": 2, "public_key": 42},                        "PEM string"),
        ({"public_key": "{pem}"},                                     "key_version"),
    ],
)
def test_bad_announcements_are_refused(
    storage: PlatformStorage, registered: SoftwareSigner, payload: dict[str, Any], reason: str
) -> None:
    """A lower or equal version, a non-key, or no version: refused with the reason."""
    pem = SoftwareSigner.generate().public_key_pem().decode()
    payload = {k: (pem if v == "{pem}" else v) for k, v in payload.items()}
    ack = send(Ingestor(storage), registered, "keys_rotated", payload)
    assert ack.status == "rejected"
    assert ack.reason is not None and reason in ack.reason


def test_a_registered_version_is_never_replaced(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Announcing a version that exists is refused, saying so: the first key of it stays."""
    ingestor = Ingestor(storage)
    first, second = SoftwareSigner.generate(key_version=2), SoftwareSigner.generate(key_version=2)
    acks = [send(ingestor, registered, "keys_rotated",
                 {"key_version": 2, "public_key": candidate.public_key_pem().decode()})
            for candidate in (first, second)]
    assert [a.status for a in acks] == ["accepted", "rejected"]
    assert "already registered" in (acks[1].reason or "")
    assert send(ingestor, first, "note", {}).status == "accepted"
    assert send(ingestor, second, "note", {}) is None  # does not verify: no ack


def test_without_a_public_key_it_is_only_stored(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """A rotation report without the key (the hook did not include it) registers nothing."""
    ack = send(Ingestor(storage), registered, "keys_rotated", {"key_version": 2})
    assert ack.status == "accepted"
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and summary.key_versions == [1]


def test_unregistered_version_of_a_known_terminal_is_held_not_rejected(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """No ack (the terminal retries) instead of a rejection that would dead-letter it."""
    ingestor = Ingestor(storage)
    rotated = SoftwareSigner.generate(key_version=3)
    message = envelope(rotated, kind="note", payload={})
    held, = ingestor.ingest([RawUplink(TERMINAL_ID, message.to_json(), "note")])
    assert held is None
    assert storage.message_count() == 0
    logged = storage.rejections(TERMINAL_ID)[0]
    assert logged.held and "--key-version 3" in logged.reason
    summary = storage.terminal(TERMINAL_ID)
    assert summary is not None and summary.rejected == 0  # held is not refused
    storage.register_key(TERMINAL_ID, 3, rotated.public_key_pem().decode(), "later")
    again, = ingestor.ingest([RawUplink(TERMINAL_ID, message.to_json(), "note")])
    assert again is not None and again.status == "accepted"
