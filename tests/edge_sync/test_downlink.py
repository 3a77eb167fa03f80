"""Downlink handling on the terminal: verify, validate, apply once, refuse and report."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from edge_sync.downlink import DownlinkHandler, MemoryDownlinkHooks
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import build_downlink
from edge_sync.signing import SoftwareSigner

PLATFORM = SoftwareSigner.generate()
FORGER = SoftwareSigner.generate()

CONFIG = {"version": "2026.11.1", "files": {"limits.toml": "[offline]\n"}}
BLACKLIST = {"version": 3, "mode": "add",
             "entries": [{"type": "bin", "value": "476173", "reason": "fraud wave"}]}
FX = {"base": "MAD", "as_of": "2026-11-22T00:00:00Z", "rates": {"EUR": "10.8500"}}


def make() -> tuple[DownlinkHandler, MemoryDownlinkHooks, MemoryOutbox, list[str]]:
    hooks, outbox, woken = MemoryDownlinkHooks(), MemoryOutbox(), []
    handler = DownlinkHandler(
        PLATFORM.public_key_pem(), hooks, outbox,
        terminal_id=TERMINAL_ID,
        on_sync_now=lambda: woken.append("now"),
        run_blocking=_inline,
    )
    return handler, hooks, outbox, woken


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


TERMINAL_ID = "T-0001"
_SEQ = itertools.count(1)


def signed(kind: str, payload: dict[str, Any], signer: SoftwareSigner = PLATFORM) -> bytes:
    """A downlink for this terminal, each one newer than the last."""
    return build_downlink(
        signer, terminal_id=TERMINAL_ID, kind=kind, seq=next(_SEQ), payload=payload
    ).to_json()


def alerts(outbox: MemoryOutbox) -> list[dict[str, Any]]:
    return [dict(r.row.payload) for r in outbox.rows() if r.row.kind == "alert"]


@pytest.mark.parametrize(
    ("kind",       "payload",    "attribute"),
    [
        ("config",    CONFIG,       "configs"),
        ("blacklist", BLACKLIST,    "blacklists"),
        ("fx",        FX,           "fx"),
    ],
)
async def test_signed_downlink_is_applied_once(
    kind: str, payload: dict[str, Any], attribute: str
) -> None:
    """A well-signed, valid downlink is applied; the same message again is a duplicate."""
    handler, hooks, outbox, _ = make()
    raw = signed(kind, payload)
    assert (await handler.handle(kind, raw)).outcome == "applied"
    assert (await handler.handle(kind, raw)).outcome == "duplicate"
    assert len(getattr(hooks, attribute)) == 1
    assert alerts(outbox) == []


async def test_tampered_downlink_is_refused_and_reported() -> None:
    """A payload changed after signing is refused, reported up, and not marked as seen."""
    handler, hooks, outbox, _ = make()
    doc = json.loads(signed("config", CONFIG))
    doc["payload"]["version"] = "evil"
    result = await handler.handle("config", json.dumps(doc).encode())
    assert result.outcome == "rejected" and "signature" in (result.reason or "")
    assert hooks.configs == [] and hooks.log == {}
    (alert,) = alerts(outbox)
    assert alert["alert"] == "downlink_rejected" and alert["message_id"] == doc["message_id"]


async def test_downlink_signed_by_another_key_is_refused() -> None:
    """Only the platform's key is trusted."""
    handler, hooks, _, _ = make()
    result = await handler.handle("fx", signed("fx", FX, FORGER))
    assert result.outcome == "rejected" and hooks.fx == []


@pytest.mark.parametrize(
    ("kind",       "payload",                                                  "why"),
    [
        ("config",    {"version": "1", "files": {"../etc/passwd.toml": "x"}},    "profile file"),
        ("blacklist", {"version": 1, "mode": "add",
                       "entries": [{"type": "bin", "value": "4761739001010010"}]}, "bin"),
        ("blacklist", {"version": 1, "mode": "add",                              # unkeyed digest
                       "entries": [{"type": "pan_sha256", "value": "ab" * 32}]}, "type"),
        ("blacklist", {"version": 1, "mode": "add",
                       "entries": [{"type": "fingerprint", "value": "xyz"}]},    "fingerprint"),
        ("fx",        {"base": "MAD", "as_of": "x", "rates": {"EUR": "-1"}},     "ASCII digits"),
        ("cmd",       {"command": "format_disk"},                                "command"),
    ],
)
async def test_schema_violations_are_refused_with_reason(
    kind: str, payload: dict[str, Any], why: str
) -> None:
    """A signed downlink whose payload breaks its schema is refused, recorded and reported."""
    handler, hooks, outbox, _ = make()
    result = await handler.handle(kind, signed(kind, payload))
    assert result.outcome == "rejected" and why in (result.reason or "")
    assert hooks.log[result.message_id or ""][0] == "rejected"
    assert alerts(outbox)[0]["kind"] == kind


async def test_profile_that_does_not_load_is_refused() -> None:
    """When the terminal's profile loader refuses the pushed profile, the platform is told why."""
    handler, hooks, outbox, _ = make()
    hooks.refuse_config = "limits.toml:offline.max_amount: field required"
    result = await handler.handle("config", signed("config", CONFIG))
    assert result.outcome == "rejected"
    assert "field required" in alerts(outbox)[0]["reason"]


async def test_malformed_and_misrouted_downlinks_are_refused() -> None:
    """Non-JSON, and a kind that does not match its topic, are refused and reported."""
    handler, _, outbox, _ = make()
    assert (await handler.handle("cmd", b"{not json")).outcome == "rejected"
    assert (await handler.handle("cmd", signed("fx", FX))).outcome == "rejected"
    assert len(alerts(outbox)) == 2


async def test_commands() -> None:
    """sync_now wakes the worker; rotate_keys and report_diagnostics report up."""
    handler, hooks, outbox, woken = make()
    await handler.handle("cmd", signed("cmd", {"command": "sync_now"}))
    await handler.handle("cmd", signed("cmd", {"command": "rotate_keys"}))
    await handler.handle("cmd", signed("cmd", {"command": "report_diagnostics"}))
    assert woken == ["now"] and hooks.rotations == 1
    kinds = [r.row.kind for r in outbox.rows()]
    assert kinds == ["keys_rotated", "diagnostics"]


async def test_without_a_platform_key_every_downlink_is_refused() -> None:
    """A terminal with no platform key configured refuses downlinks and says why."""
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(
        None, hooks, outbox, terminal_id=TERMINAL_ID, run_blocking=_inline
    )
    result = await handler.handle("fx", signed("fx", FX))
    assert result.outcome == "rejected" and "platform_public_key" in (result.reason or "")
    assert hooks.fx == [] and len(alerts(outbox)) == 1
