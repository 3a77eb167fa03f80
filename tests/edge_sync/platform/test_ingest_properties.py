"""Properties of ingestion: whatever arrives, exactly one ack comes back and nothing raises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from tests.edge_sync.platform.conftest import TERMINAL_ID, envelope

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["v", "message_id", "terminal_id", "kind", "seq", "created_at", "idempotency_key",
          "payload", "key_version", "signature"]


def test_any_bytes_are_refused_without_an_ack(tmp_path: Path) -> None:
    """Random bytes (truncated, binary, empty) are refused one by one, never raised, and
    never acked (nobody vouches for the message id they may quote)."""
    ingestor = Ingestor(open_storage(str(tmp_path / "p.db")))

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
    def check(bodies: list[bytes]) -> None:
        before = ingestor.counts["refused"]
        acks = ingestor.ingest([RawUplink(TERMINAL_ID, body, "transaction") for body in bodies])
        assert acks == [None] * len(bodies)
        assert ingestor.counts["refused"] == before + len(bodies)

    check()


def test_any_change_to_a_signed_envelope_is_refused(tmp_path: Path) -> None:
    """Replacing or dropping any field of a signed envelope is refused (or held), never stored."""
    storage = open_storage(str(tmp_path / "p.db"))
    signer = SoftwareSigner.generate()
    storage.register_key(TERMINAL_ID, 1, signer.public_key_pem().decode(), "now")
    ingestor = Ingestor(storage)
    original = envelope(signer).wire()

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(FIELDS), st.one_of(st.just("<drop>"), JSON))
    def check(field: str, value: Any) -> None:
        changed = dict(original)
        if value == "<drop>":
            del changed[field]
        elif value == original[field]:
            return
        else:
            changed[field] = value
        body = json.dumps(changed).encode()
        outcomes = dict(ingestor.counts)
        ack, = ingestor.ingest([RawUplink(TERMINAL_ID, body, "transaction")])
        # Unverifiable, so no ack; held when the changed key_version is not registered.
        assert ack is None, (field, value)
        grew = {k for k, v in ingestor.counts.items() if v != outcomes[k]}
        assert grew in ({"refused"}, {"held"}, {"refused", "suppressed"}), (field, value)

    check()
    assert storage.message_count() == 0
