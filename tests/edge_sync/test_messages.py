"""The sync wire contract: envelopes, acks, downlinks, canonical JSON and signatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.messages import (
    AckBatch,
    build_downlink,
    build_envelope,
    canonical_json,
    downlink_topic,
    messages_path,
    parse_ack,
    parse_downlink,
    parse_envelope,
    parse_topic,
    uplink_topic,
    verify_downlink,
    verify_envelope,
)
from edge_sync.platform.topics import (
    SHARED_UPLINK_FILTER,
    platform_ack_topic,
    platform_downlink_topic,
    terminal_topic,
)
from edge_sync.signing import SoftwareSigner, verify_signature

SIGNER = SoftwareSigner.generate(key_version=3)
OTHER = SoftwareSigner.generate()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _envelope(**overrides: object) -> dict[str, object]:
    env = build_envelope(
        SIGNER, terminal_id="T-0001", kind="transaction", seq=7,
        idempotency_key="txn-1", payload={"amount": 1000, "currency": "MAD"},
    )
    return {**env.wire(), **overrides}


def test_canonical_json_matches_contract() -> None:
    """Canonical JSON drops the signature, sorts keys, has no spaces and keeps UTF-8."""
    obj = {"b": 1, "a": {"z": "é", "y": [1, 2]}, "signature": "xx"}
    assert canonical_json(obj) == '{"a":{"y":[1,2],"z":"é"},"b":1}'.encode()


@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_envelope_round_trips_through_json_and_verifies(payload: dict[str, object]) -> None:
    """Any JSON payload survives to_json → parse and its signature still verifies."""
    env = build_envelope(
        SIGNER, terminal_id="T1", kind="advice", seq=1, idempotency_key="k", payload=payload
    )
    back = parse_envelope(env.to_json())
    assert back == env
    verify_envelope(back, SIGNER.public_key_pem())


def test_envelope_signature_is_der_over_canonical_json() -> None:
    """The signature field is base64 DER over canonical_json of the other fields."""
    wire = _envelope()
    verify_signature(
        SIGNER.public_key_pem(), canonical_json(wire), base64.b64decode(str(wire["signature"]))
    )
    assert wire["key_version"] == 3


@pytest.mark.parametrize(
    ("field",            "value"),
    [
        ("seq",             8),
        ("payload",         {"amount": 1001, "currency": "MAD"}),
        ("terminal_id",     "T-0002"),
        ("idempotency_key", "txn-2"),
    ],
)
def test_tampered_envelope_fails_verification(field: str, value: object) -> None:
    """Changing any signed field makes verification raise SignatureError."""
    env = parse_envelope(_envelope(**{field: value}))
    with pytest.raises(SignatureError):
        verify_envelope(env, SIGNER.public_key_pem())


def test_wrong_key_fails_verification() -> None:
    """An envelope does not verify against another terminal's key."""
    with pytest.raises(SignatureError):
        verify_envelope(parse_envelope(_envelope()), OTHER.public_key_pem())


@pytest.mark.parametrize(
    ("field",        "value"),
    [
        ("v",           2),
        ("message_id",  "not-a-uuid"),
        ("terminal_id", "T/1"),
        ("kind",        "Up#"),
        ("seq",         -1),
        ("created_at",  "2026-01-01T00:00:00+01:00"),
        ("created_at",  "yesterday"),
        ("payload",     [1, 2]),
        ("signature",   "%%%"),
        ("extra",       1),
    ],
)
def test_malformed_envelope_is_refused_with_reason(field: str, value: object) -> None:
    """A field that breaks the contract raises MessageFormatError naming the field."""
    with pytest.raises(MessageFormatError) as info:
        parse_envelope(_envelope(**{field: value}))
    assert field in info.value.fields["reason"]


@pytest.mark.parametrize("raw", [b"{", b"[1]", "\"x\"", b"\xff"])
def test_non_object_is_refused(raw: bytes | str) -> None:
    """Bytes that are not a JSON object are refused as a format error."""
    with pytest.raises(MessageFormatError):
        parse_envelope(raw)


def test_ack_delivered_statuses() -> None:
    """accepted and duplicate count as delivered, rejected does not."""
    mid = "8a4f1c1e-4a39-4d36-9b44-8d0c4bd1f3a1"
    assert parse_ack({"v": 1, "message_id": mid, "status": "accepted", "reason": None}).delivered
    assert parse_ack({"v": 1, "message_id": mid, "status": "duplicate", "reason": None}).delivered
    rejected = parse_ack({"v": 1, "message_id": mid, "status": "rejected", "reason": "bad sig"})
    assert not rejected.delivered
    with pytest.raises(MessageFormatError):
        parse_ack({"v": 1, "message_id": mid, "status": "maybe", "reason": None})
    batch = AckBatch(acks=[rejected])
    assert json.loads(batch.to_json())["acks"][0]["reason"] == "bad sig"


def test_downlink_signed_and_tamper_detected() -> None:
    """A downlink verifies with the platform key and fails once its payload is changed."""
    down = build_downlink(
        SIGNER, terminal_id="T-1", kind="fx", seq=1, payload={"rates": {"EUR": "10.85"}}
    )
    verify_downlink(parse_downlink(down.to_json()), SIGNER.public_key_pem())
    tampered = parse_downlink({**down.wire(), "payload": {"rates": {"EUR": "1.00"}}})
    with pytest.raises(SignatureError):
        verify_downlink(tampered, SIGNER.public_key_pem())
    with pytest.raises(MessageFormatError):
        parse_downlink({**down.wire(), "kind": "shell"})


def test_topics_and_paths() -> None:
    """Topic and path helpers follow the contract and refuse unsafe identifiers."""
    assert uplink_topic("T1", "transaction") == "etika/v1/t/T1/up/transaction"
    assert downlink_topic("T1", "config") == "etika/v1/t/T1/down/config"
    assert messages_path("T1") == "/v1/terminals/T1/messages"
    assert SHARED_UPLINK_FILTER == "$share/etika-platform/terminals/etika/v1/t/+/up/#"
    assert platform_ack_topic("T1") == "terminals/etika/v1/t/T1/ack"
    assert platform_downlink_topic("T1", "fx") == "terminals/etika/v1/t/T1/down/fx"
    assert terminal_topic("terminals/etika/v1/t/T1/up/x") == "etika/v1/t/T1/up/x"
    assert parse_topic("etika/v1/t/T1/up/pop_record") == ("T1", "up", "pop_record")
    assert parse_topic("etika/v1/t/T1/ack") == ("T1", "ack", None)
    with pytest.raises(ValueError):
        uplink_topic("T/1", "transaction")
    with pytest.raises(MessageFormatError):
        parse_topic("other/T1/up/x")


@pytest.mark.parametrize(
    ("pem",                 "signature"),
    [
        (b"not a pem",         b"\x30\x00"),
        (OTHER.public_key_pem(), b"not der"),
    ],
    # Fixed ids: OTHER's key is new on each run, and pytest-xdist's workers must collect
    # the same test ids.
    ids=["not-a-pem", "not-der"],
)
def test_verify_signature_maps_library_errors(pem: bytes, signature: bytes) -> None:
    """Bad keys and non-DER signatures become SignatureError, not library exceptions."""
    with pytest.raises(SignatureError):
        verify_signature(pem, b"data", signature)


VECTORS = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "sync_v1.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize(
    ("name",       "parse",          "verify"),
    [
        ("uplink",   parse_envelope,   verify_envelope),
        ("downlink", parse_downlink,   verify_downlink),
    ],
)
def test_known_answer_vectors(name: str, parse: Any, verify: Any) -> None:
    """The stored v1 vectors keep their canonical bytes (as the contract spells the rule)
    and their signatures still verify: the contract has not drifted."""
    obj = VECTORS[name]
    expected = bytes.fromhex(VECTORS[f"{name}_canonical_hex"])
    by_the_rule = json.dumps(
        {k: v for k, v in obj.items() if k != "signature"},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode()
    assert canonical_json(obj) == by_the_rule == expected
    verify(parse(json.dumps(obj)), VECTORS["public_key_pem"])
