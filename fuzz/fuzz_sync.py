"""Atheris harness: what a broker or the platform's HTTPS answer hands the terminal's sync.

The first byte picks the entry point, the rest is the message:

0. an ack on the MQTT ack topic (the link's own dispatch: parse, verify, settle);
1. a downlink on a ``down/{kind}`` topic (the next byte picks the kind), through the
   downlink handler;
2. an ack, 3. an ack batch, 4. a downlink, each with fuzzed fields (values drawn from the
   input: any Unicode, huge integers, deep nesting) merged into a valid one and *signed by
   the platform key*, so the checks behind the signature run too;
5. a signed downlink whose payload is such fuzzed fields (the next byte picks the kind: the
   payload schemas);
6. an HTTPS answer to a POST of one envelope (the HTTPS link);
7. a message batch (``{"messages": [...]}``): each envelope parsed and verified;
8. a config downlink's TOML file (``ConfigUpdate``'s bounds).

Allowed: a refusal in the project's own error tree (``MessageFormatError``,
``SignatureError``, ``TransportError``, a downlink ``rejected``). A refused downlink must
change nothing and its alert must be signable. Anything else is a crash.
``python fuzz/fuzz_sync.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import uuid
from typing import Any

import atheris

with atheris.instrument_imports(include=["edge_sync"]):
    import httpx
    from pydantic import ValidationError

    from edge_sync.ack_binding import SentLog
    from edge_sync.bounded_json import canonical_json, decode_json
    from edge_sync.downlink import ConfigUpdate, DownlinkHandler, MemoryDownlinkHooks
    from edge_sync.errors import MessageFormatError, SignatureError, TransportError
    from edge_sync.https import HttpsLinkSettings, HttpsTransport
    from edge_sync.memory_outbox import MemoryOutbox
    from edge_sync.messages import (
        DOWNLINK_KINDS,
        MessageBatch,
        build_envelope,
        parse_envelope,
        utc_now_iso,
        verify_envelope,
    )
    from edge_sync.mqtt import MqttLinkSettings, MqttTransport
    from edge_sync.signing import SoftwareSigner

PLATFORM = SoftwareSigner.generate()
TERMINAL = SoftwareSigner.generate()
TERMINAL_ID = "ETK00001"
ACK_TOPIC = f"etika/v1/t/{TERMINAL_ID}/ack"
MID = "8a4f1c1e-4a39-4d36-9b44-8d0c4bd1f3a1"
KINDS = (*DOWNLINK_KINDS, "firmware")
_LOOP = asyncio.new_event_loop()


async def _inline(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _link() -> MqttTransport:
    sent = SentLog()
    sent.sent(MID, 5)
    return MqttTransport(
        MqttLinkSettings(terminal_id=TERMINAL_ID, platform_public_key=PLATFORM.public_key_pem()),
        on_late_ack=lambda ack: None, sent_log=sent)


_ANSWER: list[bytes] = [b""]
_HTTPS = HttpsTransport(
    HttpsLinkSettings(terminal_id=TERMINAL_ID, base_url="https://platform.test",
                      platform_public_key=PLATFORM.public_key_pem()),
    transport=httpx.MockTransport(lambda request: httpx.Response(200, content=_ANSWER[0])))
_ENVELOPE = build_envelope(TERMINAL, terminal_id=TERMINAL_ID, kind="transaction", seq=5,
                           idempotency_key="k", payload={}, message_id=MID)


def _signed(unsigned: dict[str, Any]) -> bytes | None:
    """``unsigned`` signed by the platform as JSON text, or ``None`` if canonical JSON
    cannot carry it (the builders' refusal, which is allowed)."""
    try:
        signed = canonical_json(unsigned)
    except MessageFormatError:
        return None
    signature = base64.b64encode(PLATFORM.sign(signed)).decode("ascii")
    return json.dumps({**unsigned, "signature": signature}).encode()


NAMES = ("v", "message_id", "status", "reason", "terminal_id", "destination", "seq",
         "issued_at", "expires_at", "kind", "payload", "acks", "signature", "version", "mode",
         "entries", "type", "value", "base", "as_of", "rates", "files", "command", "args",
         "rid", "index", "serial", "sync.toml", "EUR")
STRINGS = (MID, TERMINAL_ID, "platform", "accepted", "rejected", "duplicate", "fx", "config",
           "replace", "add", "bin", "token", "476173", "MAD", "10.85", "2026-11-22T00:00:00Z",
           "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00", "sync_now", "rotate_keys",
           "report_diagnostics", "A000000003", "92", "7E5E01", "\udfff", "\x00")


def _value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> object:
    """A JSON-ish value from the input: scalars, known field values, any Unicode (lone
    surrogates included), huge integers, and nesting past every bound."""
    choice = fdp.ConsumeIntInRange(0, 9 if depth < 40 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return fdp.ConsumeBool()
    if choice == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 9))
    if choice == 3:
        return fdp.ConsumeRegularFloat()
    if choice == 4:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24))
    if choice == 5:
        return STRINGS[fdp.ConsumeIntInRange(0, len(STRINGS) - 1)]
    if choice == 6:
        nested: object = []
        for _ in range(fdp.ConsumeIntInRange(0, 3000)):  # built iteratively: no recursion here
            nested = [nested]
        return nested
    if choice == 7:
        return 10 ** fdp.ConsumeIntInRange(0, 5000)
    if choice == 8:
        return [_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return _object(fdp, depth + 1)


def _object(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        name = (NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)] if fdp.ConsumeBool()
                else fdp.ConsumeUnicode(8))
        fields[name] = _value(fdp, depth + 1)
    return fields


def _ack_fields() -> dict[str, Any]:
    return {"v": 1, "message_id": MID, "status": "accepted", "reason": None,
            "terminal_id": TERMINAL_ID, "destination": "platform", "seq": 5,
            "issued_at": utc_now_iso()}


def _downlink_fields(kind: str, payload: object) -> dict[str, Any]:
    return {"v": 1, "message_id": str(uuid.uuid4()), "terminal_id": TERMINAL_ID, "kind": kind,
            "seq": 1, "issued_at": utc_now_iso(), "expires_at": "2999-01-01T00:00:00Z",
            "payload": payload}


def _dispatch_ack(raw: bytes) -> None:
    link = _link()
    _LOOP.run_until_complete(link._dispatch(ACK_TOPIC, raw))


def _downlink(kind: str, raw: bytes, *, signed: bool) -> None:
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(PLATFORM.public_key_pem(), hooks, outbox,
                              terminal_id=TERMINAL_ID, run_blocking=_inline)
    result = _LOOP.run_until_complete(handler.handle(kind, raw))
    if result.outcome == "rejected":
        changed = (hooks.configs, hooks.blacklists, hooks.crls, hooks.fx, hooks.rotations)
        if any(changed):
            raise AssertionError(f"a refused downlink changed the terminal: {result}")
        for row in outbox.claim("platform", 10, 0.0):  # the alert must be signable
            canonical_json(row.payload)
    elif not signed:
        raise AssertionError(f"an unsigned downlink was {result.outcome}")


def _https(raw: bytes) -> None:
    _ANSWER[0] = raw
    try:
        _LOOP.run_until_complete(_HTTPS.deliver([_ENVELOPE], 5.0))
    except TransportError:
        pass


def _batch(raw: bytes) -> None:
    try:
        value = decode_json(raw, "message batch")
        batch = MessageBatch.model_validate(value)
    except (MessageFormatError, ValidationError):
        return
    for item in batch.messages:
        try:
            verify_envelope(parse_envelope(item), TERMINAL.public_key_pem())
            canonical_json(item)
        except (MessageFormatError, SignatureError):
            continue


def _toml(raw: bytes) -> None:
    text = raw.decode("utf-8", "replace")  # a config downlink carries str (JSON text)
    try:
        ConfigUpdate.model_validate({"version": "1", "files": {"sync.toml": text}})
    except ValidationError:
        pass


def check(data: bytes) -> None:
    """One input: its first byte picks the entry point (see the module docstring)."""
    if not data:
        return
    which, rest = data[0] % 9, data[1:]
    kind = "fx"
    if which in (1, 5) and rest:  # these take the topic's kind from the next byte
        kind, rest = KINDS[rest[0] % len(KINDS)], rest[1:]
    if which == 0:
        _dispatch_ack(rest)
    elif which == 1:
        _downlink(kind, rest, signed=False)
    elif which in (2, 3, 4, 5):
        fields = _object(atheris.FuzzedDataProvider(rest))
        if which == 2:
            unsigned = {**_ack_fields(), **fields}
        elif which == 3:
            ack = {k: v for k, v in _ack_fields().items() if k in ("message_id", "seq", "status")}
            unsigned = {"v": 1, "terminal_id": TERMINAL_ID, "destination": "platform",
                        "issued_at": utc_now_iso(), "acks": [ack], **fields}
        elif which == 4:
            unsigned = {**_downlink_fields(kind, {}), **fields}
        else:
            unsigned = _downlink_fields(kind, fields)
        raw = _signed(unsigned)
        if raw is None:
            return
        if which in (2, 3):
            _dispatch_ack(raw)
        else:
            topic_kind = unsigned["kind"] if isinstance(unsigned.get("kind"), str) else kind
            _downlink(topic_kind, raw, signed=True)
    elif which == 6:
        _https(rest)
    elif which == 7:
        _batch(rest)
    else:
        _toml(rest)


def main() -> None:
    # Every refusal logs a warning: noise at this rate. Only when fuzzing: the suite imports
    # this module to replay kept inputs, and must keep its logging.
    logging.disable(logging.CRITICAL)
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
