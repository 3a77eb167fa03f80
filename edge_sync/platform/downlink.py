"""Signed downlinks: config, blacklist, FX rates and commands, platform → one terminal.

The payload comes from a JSON file (or TOML, for a profile update). It is signed with the
platform key (:func:`edge_sync.messages.build_downlink`) and published with QoS 1 on
``etika/v1/t/{terminal_id}/down/{kind}``; ``config`` is retained, so a terminal that comes
online later still receives its latest configuration.
"""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt

from edge_sync.messages import DOWNLINK_KINDS, Downlink, build_downlink, downlink_topic
from edge_sync.platform.errors import DownlinkError
from edge_sync.platform.mqtt import MqttSettings, make_client
from edge_sync.signing import Signer

__all__ = ["RETAINED_KINDS", "publish_downlink", "read_payload", "sign_downlink"]

RETAINED_KINDS = frozenset({"config"})


def read_payload(path: Path) -> dict[str, Any]:
    """The payload object of a downlink file (``.toml`` is read as TOML, anything else JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DownlinkError(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DownlinkError(f"{path} is not UTF-8 text", path=str(path)) from exc
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DownlinkError(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise DownlinkError(f"{path} must hold an object (the downlink payload)", path=str(path))
    return data


def sign_downlink(signer: Signer, kind: str, payload: Mapping[str, Any]) -> Downlink:
    if kind not in DOWNLINK_KINDS:
        raise DownlinkError(f"unknown downlink kind {kind!r}: use {', '.join(DOWNLINK_KINDS)}")
    try:
        # TOML dates are not JSON: refuse them here rather than send an unsignable payload.
        json.dumps(payload)
    except TypeError as exc:
        raise DownlinkError(f"the {kind} payload is not JSON-serialisable: {exc}") from exc
    return build_downlink(signer, kind=kind, payload=payload, message_id=str(uuid.uuid4()))


async def publish_downlink(
    settings: MqttSettings, terminal_id: str, downlink: Downlink
) -> str:
    """Publish one signed downlink (QoS 1, ``config`` retained); returns the topic."""
    try:
        topic = downlink_topic(terminal_id, downlink.kind)
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
