"""Signed ack batches (one platform signature per commit and terminal): what verifies, what
is refused, and that a refused batch settles none of its acks."""

from __future__ import annotations

import json
import uuid

import pytest

from edge_sync.ack_batch import build_ack_batch, check_ack_batch, is_ack_batch
from edge_sync.errors import MessageFormatError, SignatureError
from edge_sync.messages import Ack, AckVerifier, build_ack
from edge_sync.signing import SoftwareSigner

PLATFORM, ROGUE = SoftwareSigner.generate(), SoftwareSigner.generate()
TERMINAL = "ETK00001"
IDS = [str(uuid.uuid4()) for _ in range(3)]
ACKS = [Ack(message_id=IDS[0], seq=1, status="accepted"),
        Ack(message_id=IDS[1], seq=2, status="duplicate"),
        Ack(message_id=IDS[2], seq=3, status="rejected", reason="bad amount")]


def _verifier() -> AckVerifier:
    return AckVerifier(PLATFORM.public_key_pem(), TERMINAL, "platform")


def test_a_batch_from_the_platform_key_gives_back_each_ack_bound_to_us() -> None:
    """Every ack of the batch comes back, in order, bound to this terminal and destination."""
    raw = build_ack_batch(PLATFORM, terminal_id=TERMINAL, destination="platform",
                          acks=ACKS).to_json()
    assert is_ack_batch(raw)
    acks = check_ack_batch(_verifier(), raw)
    assert [(a.message_id, a.seq, a.status, a.reason) for a in acks] == [
        (IDS[0], 1, "accepted", None), (IDS[1], 2, "duplicate", None),
        (IDS[2], 3, "rejected", "bad amount")]
    assert {a.issued_at for a in acks} == {json.loads(raw)["issued_at"]}
    assert {(a.terminal_id, a.destination) for a in acks} == {(TERMINAL, "platform")}
    assert [a.delivered for a in acks] == [True, True, False]


def _tampered(raw: bytes) -> bytes:
    body = json.loads(raw)
    body["acks"][2]["status"] = "accepted"  # make the rejected one look delivered
    return json.dumps(body).encode()


def _batch(signer: SoftwareSigner, terminal: str = TERMINAL, destination: str = "platform"
           ) -> bytes:
    return build_ack_batch(signer, terminal_id=terminal, destination=destination,
                           acks=ACKS).to_json()


@pytest.mark.parametrize(
    ("raw",                                         "error",             "words"),
    [
        (_batch(ROGUE),                              SignatureError,      "does not verify"),
        (_tampered(_batch(PLATFORM)),                SignatureError,      "does not verify"),
        (_batch(PLATFORM, terminal="ETK00666"),      SignatureError,      "bound to ETK00666"),
        (_batch(PLATFORM, destination="pop"),        SignatureError,      "bound to"),
        (b'{"acks": []}',                            MessageFormatError,  "ack batch does not match"),
        (b'{"acks": "x", "v": 1}',                   MessageFormatError,  "ack batch does not match"),
    ],
)
def test_a_batch_that_is_not_the_platforms_for_us_is_refused_whole(
    raw: bytes, error: type[Exception], words: str
) -> None:
    """Another key, an edited batch, another terminal or destination, or a malformed body:
    the whole batch is refused (none of its acks settles anything)."""
    with pytest.raises(error, match=words):
        check_ack_batch(_verifier(), raw)


def test_a_message_acked_twice_in_a_batch_comes_back_once() -> None:
    """A commit that met one uplink twice (an MQTT redelivery) acks it twice; the terminal
    settles it once, with the first ack, so the late-ack path never runs twice for it."""
    again = Ack(message_id=IDS[0], seq=1, status="duplicate")
    raw = build_ack_batch(PLATFORM, terminal_id=TERMINAL, destination="platform",
                          acks=[ACKS[0], again, ACKS[1]]).to_json()
    acks = check_ack_batch(_verifier(), raw)
    assert [(a.message_id, a.status) for a in acks] == [(IDS[0], "accepted"),
                                                       (IDS[1], "duplicate")]


def test_single_signed_acks_still_verify() -> None:
    """A single ack (an older platform, or an HTTPS answer's) is not taken for a batch."""
    ack = build_ack(PLATFORM, terminal_id=TERMINAL, destination="platform",
                    message_id=IDS[0], seq=1, status="accepted")
    assert not is_ack_batch(ack.to_json())
    assert _verifier().check(ack) == ack
