"""Key rotation that revokes (#12 item 3), on SQLite and PostgreSQL: announcements only
from the current key for an unused version, older versions retired after a grace period,
and ``etika platform revoke-key``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import PlatformStorage, open_storage
from edge_sync.signing import SoftwareSigner
from terminal.cli.main import main
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

pytestmark = pytest.mark.network  # the PostgreSQL half talks to 127.0.0.1:5432


class Clock:
    def __init__(self) -> None:
        self.now = "2026-11-21T10:00:00.000Z"

    def __call__(self) -> str:
        return self.now


def send(ingestor: Ingestor, signer: SoftwareSigner, kind: str = "note",
         payload: dict[str, Any] | None = None) -> Any:
    message = envelope(signer, kind=kind, payload=payload if payload is not None else {})
    ack, = ingestor.ingest([RawUplink(TERMINAL_ID, message.to_json(), kind)])
    return ack


def announce(ingestor: Ingestor, signer: SoftwareSigner, new: SoftwareSigner) -> Any:
    return send(ingestor, signer, "keys_rotated",
                {"key_version": new.key_version, "public_key_pem": new.public_key_pem().decode()})


def test_a_stolen_old_key_cannot_announce_after_the_rotation(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """Once v2 is announced by v1, v1 (stolen) can no longer announce v3: refused, v3 never
    registered, and v2's messages still verify."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    v2, forged_v3 = SoftwareSigner.generate(key_version=2), SoftwareSigner.generate(key_version=3)
    assert announce(ingestor, registered, v2).status == "accepted"
    refused = announce(ingestor, registered, forged_v3)
    assert refused.status == "rejected" and "current key (version 2)" in (refused.reason or "")
    assert storage.key_versions(TERMINAL_ID) == [1, 2]
    assert send(ingestor, v2).status == "accepted"


def test_a_version_announced_first_by_a_thief_is_not_silently_replaced(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """If a thief announces v2 first, the real terminal's v2 is refused with a reason it
    reports up (not ignored); revoking the thief's v2 then refuses its messages."""
    ingestor = Ingestor(storage, signer=SoftwareSigner.generate())
    thief_v2, real_v2 = SoftwareSigner.generate(key_version=2), SoftwareSigner.generate(2)
    assert announce(ingestor, registered, thief_v2).status == "accepted"
    real = announce(ingestor, registered, real_v2)
    assert real.status == "rejected" and "already registered" in (real.reason or "")
    assert storage.revoke_key(TERMINAL_ID, 2, "2026-11-21T10:05:00.000Z")
    fresh = Ingestor(storage)  # a worker after the cache time
    assert send(fresh, thief_v2) is None
    assert fresh.counts["refused"] == 1
    assert "revoked" in storage.rejections(limit=1)[0].reason


def test_older_versions_retire_after_the_grace_period(
    storage: PlatformStorage, registered: SoftwareSigner
) -> None:
    """After v2 is announced, v1 still verifies for the grace period, then is refused."""
    clock = Clock()
    ingestor = Ingestor(storage, clock, key_grace_s=3600)
    v2 = SoftwareSigner.generate(key_version=2)
    assert announce(ingestor, registered, v2).status == "accepted"
    clock.now = "2026-11-21T10:59:59.000Z"
    assert send(ingestor, registered).status == "accepted"
    clock.now = "2026-11-21T11:00:01.000Z"
    assert send(ingestor, registered) is None
    assert "retired" in storage.rejections(limit=1)[0].reason
    assert send(ingestor, v2).status == "accepted"
    record = storage.key_record(TERMINAL_ID, 1)
    assert record is not None and record.retire_after == "2026-11-21T11:00:00.000Z"


def test_revoke_key_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``etika platform revoke-key T V`` revokes at once; an unknown version exits 1."""
    data = tmp_path / "var"
    signer = SoftwareSigner.generate()
    storage = open_storage(str(data / "platform" / "platform.db"))
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "now")
    storage.close()
    assert main(["--data-dir", str(data), "platform", "revoke-key", TERMINAL_ID, "1"]) == 0
    assert "revoked key version 1" in capsys.readouterr().out
    assert main(["--data-dir", str(data), "platform", "revoke-key", TERMINAL_ID, "7"]) == 1
    assert "no key version 7" in capsys.readouterr().err
    storage = open_storage(str(data / "platform" / "platform.db"))
    try:
        record = storage.key_record(TERMINAL_ID, 1)
        assert record is not None and record.revoked_at is not None
        assert send(Ingestor(storage), signer) is None
    finally:
        storage.close()
