"""Signed downlinks: config, blacklist, CRL, FX rates and commands, platform → one terminal.

The payload must match the schema the terminal applies (:mod:`edge_sync.downlink`:
``ConfigUpdate``, ``BlacklistUpdate``, ``CrlUpdate``, ``FxUpdate``, ``Command``); a payload
that does not is refused here, before anything is signed or sent. It is read from a JSON
file; ``config`` may also be a TOML file holding the payload (top-level ``version`` and
``[files]``), or the profile itself — one ``<name>.toml`` file or a profile directory —
which is then wrapped as ``{"version": …, "files": {name: text}}``.

The downlink is bound to one terminal, given the next sequence of that terminal and kind
from the platform database, and an expiry (:data:`DEFAULT_TTL_S` per kind); it is signed
with the platform key (:func:`edge_sync.messages.build_downlink`) and published with QoS 1 on
``terminals/etika/v1/t/{terminal_id}/down/{kind}`` (the terminal receives it as
``etika/v1/t/{terminal_id}/down/{kind}``, :mod:`edge_sync.platform.topics`); ``config`` is
retained, so a terminal that comes online later (before the expiry) still receives its latest
configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt
from pydantic import BaseModel, ValidationError

from edge_sync.bounded_json import MAX_DEPTH, decode_json
from edge_sync.downlink import BlacklistUpdate, Command, ConfigUpdate, CrlUpdate, FxUpdate
from edge_sync.errors import MessageFormatError
from edge_sync.messages import DOWNLINK_KINDS, Downlink, build_downlink
from edge_sync.platform.errors import DownlinkError
from edge_sync.platform.mqtt import MqttSettings, make_client
from edge_sync.platform.topics import platform_downlink_topic
from edge_sync.signing import Signer

__all__ = [
    "DEFAULT_TTL_S",
    "RETAINED_KINDS",
    "SCHEMAS",
    "publish_downlink",
    "read_payload",
    "sign_downlink",
]

RETAINED_KINDS = frozenset({"config"})
#: How long a downlink stays valid by default: a retained config waits a week for a terminal
#: that is away; a command or a rate set is worth little a day later.
DEFAULT_TTL_S: dict[str, float] = {
    "config": 7 * 86400.0,
    "blacklist": 7 * 86400.0,
    "crl": 7 * 86400.0,
    "fx": 86400.0,
    "cmd": 3600.0,
}
#: What each kind's payload must be: the models the terminal validates with.
SCHEMAS: dict[str, type[BaseModel]] = {
    "config": ConfigUpdate,
    "blacklist": BlacklistUpdate,
    "crl": CrlUpdate,
    "fx": FxUpdate,
    "cmd": Command,
}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DownlinkError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DownlinkError(f"{path} is not UTF-8 text", path=str(path)) from exc


def read_payload(path: Path, kind: str, config_version: str | None = None) -> dict[str, Any]:
    """The payload of a downlink file (for ``config``, also a ``.toml`` file or a directory)."""
    path = Path(path)
    if kind == "config" and path.suffix == ".toml" and path.is_file():
        try:
            document = tomllib.loads(_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise DownlinkError(f"{path} is not valid TOML: {exc}", path=str(path)) from exc
        except RecursionError as exc:  # tomllib recurses per level of arrays/inline tables
            raise DownlinkError(f"{path} is nested too deep", path=str(path)) from exc
        except ValueError as exc:  # int() of a decimal past the digit limit, let out bare
            raise DownlinkError(f"{path} is not valid TOML: a number of more than "
                                f"{sys.get_int_max_str_digits()} digits",
                                path=str(path)) from exc
        if set(document) == {"version", "files"}:
            return document  # the payload itself, written as TOML
    if kind == "config" and (path.is_dir() or path.suffix == ".toml"):
        files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
        if not files:
            raise DownlinkError(f"{path} holds no <name>.toml profile file", path=str(path))
        version = config_version or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return {"version": version, "files": {f.name: _text(f) for f in files}}
    text = _text(path)
    try:
        # The terminal's bounds (one level is the downlink around the payload).
        data: Any = decode_json(text, str(path), max_depth=MAX_DEPTH - 1)
    except MessageFormatError as exc:
        raise DownlinkError(f"{path} is not valid JSON: {exc.message}", path=str(path)) from exc
    if not isinstance(data, dict):
        raise DownlinkError(f"{path} must hold an object (the downlink payload)", path=str(path))
    return data


def sign_downlink(
    signer: Signer,
    kind: str,
    payload: Mapping[str, Any],
    *,
    terminal_id: str,
    seq: int,
    ttl_s: float | None = None,
) -> Downlink:
    """Check the payload against its kind's schema, then sign it for ``terminal_id``."""
    if kind not in DOWNLINK_KINDS:
        raise DownlinkError(f"unknown downlink kind {kind!r}: use {', '.join(DOWNLINK_KINDS)}")
    try:
        json.dumps(payload)
    except TypeError as exc:
        raise DownlinkError(f"the {kind} payload is not JSON-serialisable: {exc}") from exc
    try:
        SCHEMAS[kind].model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'payload'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise DownlinkError(
            f"the {kind} payload does not match what terminals accept: {problems}", kind=kind
        ) from exc
    ttl = DEFAULT_TTL_S[kind] if ttl_s is None else ttl_s
    if not 0 < ttl <= 366 * 86400:
        raise DownlinkError(f"the downlink lifetime must be within (0, 366 days], not {ttl:g} s")
    try:
        return build_downlink(
            signer, terminal_id=terminal_id, kind=kind, seq=seq, payload=payload, ttl_s=ttl,
            message_id=str(uuid.uuid4()),
        )
    except ValueError as exc:
        raise DownlinkError(str(exc), terminal_id=terminal_id) from exc


async def publish_downlink(
    settings: MqttSettings, terminal_id: str, downlink: Downlink
) -> str:
    """Publish one signed downlink (QoS 1, ``config`` retained); returns the topic."""
    try:
        topic = platform_downlink_topic(terminal_id, downlink.kind)
    except ValueError as exc:
        raise DownlinkError(str(exc), terminal_id=terminal_id) from exc
    # Never the serving worker's client id: the broker would disconnect that worker.
    pusher = replace(settings, client_id=f"etika-platform-push-{uuid.uuid4().hex[:12]}")
    try:
        async with make_client(pusher, manual_ack=False, persistent=False) as client:
            await client.publish(
                topic, downlink.to_json(), qos=1, retain=downlink.kind in RETAINED_KINDS
            )
    except aiomqtt.MqttError as exc:
        raise DownlinkError(
            f"cannot publish to the broker at {settings.host}:{settings.port}: {exc}; "
            "check --mqtt-host/--mqtt-port",
            host=settings.host,
            port=settings.port,
        ) from exc
    return topic
