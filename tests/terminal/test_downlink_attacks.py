"""Downlink attacks on the terminal's real store and profile: each refused, logged, counted,
and nothing changes (#12 item 1, #15 item 4, #17 items 8-9)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_sync.downlink import DownlinkHandler
from edge_sync.messages import build_downlink
from edge_sync.signing import SoftwareSigner
from terminal.store import Store
from terminal.store.fleet import FleetStore
from terminal.store.outbox import SqliteOutbox
from terminal.sync_hooks import TerminalDownlinkHooks

PLATFORM = SoftwareSigner.generate()
ROGUE = SoftwareSigner.generate()
US, THEM = "ETK00001", "ETK00002"
SYNC = '[sync]\nmqtt_host = "{host}"\nmqtt_port = 9883\nmqtt_tls = true\n'
BLACKLIST = {"version": 5, "mode": "replace",
             "entries": [{"type": "bin", "value": "476173", "reason": "fraud wave"}]}
FX = {"base": "MAD", "as_of": "2026-11-22T00:00:00Z", "rates": {"EUR": "10.85"}}


class Terminal:
    """One terminal's downlink side over its real store and profile directory."""

    def __init__(self, root: Path, default_profile_dir: Path) -> None:
        self.profile = root / "profiles" / "shop"
        shutil.copytree(default_profile_dir, self.profile)
        self.store = Store.open(root / "etika.db")
        self.fleet = FleetStore(self.store)
        self.outbox = SqliteOutbox(self.store)
        self.handler = DownlinkHandler(
            PLATFORM.public_key_pem(), TerminalDownlinkHooks(self.fleet, self.profile),
            self.outbox, terminal_id=US,
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything a downlink can change."""
        conn = self.store.connection
        return {
            "profile": {f.name: f.read_text() for f in sorted(self.profile.rglob("*.toml"))},
            "blacklist": conn.execute("SELECT * FROM blacklist ORDER BY value").fetchall(),
            "fx": self.fleet.fx_rates(),
            "outbox": conn.execute(
                "SELECT kind, payload FROM outbox WHERE kind != 'alert' ORDER BY id").fetchall(),
        }

    def alerts(self) -> list[dict[str, Any]]:
        rows = self.store.connection.execute(
            "SELECT payload FROM outbox WHERE kind = 'alert' ORDER BY id"
        ).fetchall()
        return [json.loads(r[0]) for r in rows]


@pytest.fixture
def terminal(tmp_path: Path, default_profile_dir: Path) -> Iterator[Terminal]:
    opened = Terminal(tmp_path, default_profile_dir)
    yield opened
    opened.store.close()


def down(kind: str, payload: dict[str, Any], seq: int, *, terminal_id: str = US,
         signer: SoftwareSigner = PLATFORM, **times: str) -> bytes:
    return build_downlink(signer, terminal_id=terminal_id, kind=kind, seq=seq, payload=payload,
                          **times).to_json()


async def refused(terminal: Terminal, kind: str, raw: bytes, why: str,
                  caplog: pytest.LogCaptureFixture) -> bool:
    """The downlink is refused for ``why``: logged, counted, reported up, nothing changed."""
    before, refusals = terminal.snapshot(), terminal.handler.counts["rejected"]
    with caplog.at_level(logging.WARNING, logger="edge_sync.downlink"):
        result = await terminal.handler.handle(kind, raw)
    assert result.outcome == "rejected"
    assert result.reason is not None and why in result.reason
    assert terminal.handler.counts["rejected"] == refusals + 1
    assert why in caplog.text
    assert terminal.alerts()[-1]["alert"] == "downlink_rejected"
    assert terminal.snapshot() == before
    return True


async def test_config_for_another_terminal_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A config the platform signed for terminal B does not swap terminal A's profile."""
    raw = down("config", {"version": "9", "files": {"sync.toml": SYNC.format(host="evil")}}, 1,
               terminal_id=THEM)
    assert await refused(terminal, "config", raw, f"addressed to terminal {THEM}", caplog)
    assert not terminal.fleet.seen(json.loads(raw)["message_id"])
    assert terminal.fleet.last_downlink_seq("config") == 0


async def test_expired_downlink_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A config signed long ago, past its expiry, is not applied when replayed now."""
    raw = down("config", {"version": "1", "files": {"sync.toml": SYNC.format(host="old")}}, 1,
               issued_at="2024-01-01T00:00:00.000Z", expires_at="2024-01-08T00:00:00.000Z")
    assert await refused(terminal, "config", raw, "expired at 2024-01-08", caplog)


async def test_downlink_issued_in_the_future_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A downlink dated well ahead of the terminal's clock is refused, not kept for later."""
    raw = down("fx", FX, 1, issued_at="2999-01-01T00:00:00.000Z",
               expires_at="2999-01-02T00:00:00.000Z")
    assert await refused(terminal, "fx", raw, "issued in the future", caplog)


@pytest.mark.parametrize(
    ("kind",        "payload"),
    [
        ("config",    {"version": "1", "files": {"sync.toml": SYNC.format(host="old")}}),
        ("blacklist", {"version": 1, "mode": "replace", "entries": []}),
        ("fx",        {**FX, "as_of": "2026-11-21T00:00:00Z"}),
    ],
)
async def test_older_sequence_is_refused_after_a_newer_one(
    terminal: Terminal, kind: str, payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Genuine but older downlinks (replayed or reordered) never roll back a newer one."""
    newer = {
        "config": {"version": "2", "files": {"sync.toml": SYNC.format(host="new")}},
        "blacklist": BLACKLIST,
        "fx": FX,
    }[kind]
    older = down(kind, payload, 3)  # signed first, delivered last
    assert (await terminal.handler.handle(kind, down(kind, newer, 4))).outcome == "applied"
    assert await refused(terminal, kind, older, "is not newer than 4", caplog)


async def test_blacklist_version_rollback_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """An old blacklist version under a fresh sequence cannot wipe the list in force."""
    assert (await terminal.handler.handle("blacklist", down("blacklist", BLACKLIST, 1))).outcome \
        == "applied"
    wipe = {"version": 4, "mode": "replace", "entries": []}
    assert await refused(terminal, "blacklist", down("blacklist", wipe, 2),
                  "blacklist version 4 is not newer than 5", caplog)
    assert terminal.fleet.is_blacklisted("bin", "476173")


async def test_older_fx_rates_are_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """FX rates as of an earlier date than those in force are refused."""
    assert (await terminal.handler.handle("fx", down("fx", FX, 1))).outcome == "applied"
    stale = {**FX, "as_of": "2026-11-21T23:59:59Z", "rates": {"EUR": "0.01"}}
    assert await refused(terminal, "fx", down("fx", stale, 2), "are not newer than", caplog)


async def test_downlink_signed_with_another_key_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A well-formed downlink signed by anyone but the platform is refused."""
    raw = down("blacklist", {"version": 99, "mode": "replace", "entries": []}, 1, signer=ROGUE)
    assert await refused(terminal, "blacklist", raw, "does not verify", caplog)


@pytest.mark.parametrize(
    ("field",        "why"),
    [
        ("payload",    "not valid Unicode"),
        ("message_id", "message_id"),
    ],
)
async def test_lone_surrogate_is_refused_and_its_alert_stored(
    terminal: Terminal, field: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate escaped in a downlink is the project's refusal, and the alert it
    causes is stored and can be signed for the uplink (#17 item 8)."""
    doc = json.loads(down("fx", FX, 1))
    if field == "payload":
        doc["payload"]["rates"] = {"EUR": "\udfff"}
    else:
        doc["message_id"] = "\udfff" * 3
    raw = json.dumps(doc).encode()  # ASCII JSON with \\udfff escapes, as a broker carries it
    assert await refused(terminal, "fx", raw, why, caplog)
    alert = terminal.alerts()[-1]
    json.dumps(alert, ensure_ascii=False).encode("utf-8")  # signable as is
    # The bad id is described in the reason, not repeated as the alert's message id.
    assert alert["message_id"] == (doc["message_id"] if field == "payload" else None)


async def test_lone_surrogate_in_the_topic_kind_is_refused_and_stored(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A downlink topic whose kind is not valid Unicode is refused; the alert replaces the
    surrogate (U+FFFD) instead of carrying it (#17 item 8)."""
    assert await refused(terminal, "\udfff", down("fx", FX, 1), "arrived on the", caplog)
    assert terminal.alerts()[-1]["kind"] == "\ufffd"


async def test_huge_integer_in_a_downlink_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """An integer literal past CPython's digit limit is refused as not JSON, not raised."""
    raw = down("fx", FX, 1)[:-1] + b', "extra": ' + b"9" * 5000 + b"}"
    assert await refused(terminal, "fx", raw, "not JSON", caplog)


async def test_lone_surrogate_in_a_payload_key_is_refused(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """#17 item 8: a lone surrogate in an object key (not a value) of an unsigned downlink
    is a refusal, not a UnicodeEncodeError out of the serializer before verification."""
    doc = json.loads(down("fx", FX, 1))
    doc["payload"]["rates"]["\udfff"] = "1"
    assert await refused(terminal, "fx", json.dumps(doc).encode(), "not valid Unicode", caplog)


@pytest.mark.parametrize(
    ("kind",      "payload"),
    [
        ("fx",      {**FX, "rates": {"EUR": "1e999999999"}}),
        ("fx",      {**FX, "rates": {"EUR": "1E-999999999"}}),
        ("fx",      {**FX, "rates": {"EUR": " 10.5 "}}),
        ("fx",      {**FX, "rates": {"EUR": "\u0664\u0662"}}),   # Arabic-Indic 42
        ("fx",      {**FX, "rates": {"EUR": "1000000001"}}),
        ("fx",      {**FX, "rates": {"EUR": "0.000"}}),
        ("config",  {"version": "\x00", "files": {"sync.toml": SYNC.format(host="x")}}),
        ("config",  {"version": "v 2", "files": {"sync.toml": SYNC.format(host="x")}}),
    ],
    ids=["fx-huge-exponent", "fx-tiny-exponent", "fx-spaces", "fx-arabic-digits",
         "fx-above-1e9", "fx-zero", "config-version-nul", "config-version-space"],
)
async def test_rates_and_versions_the_profile_would_not_take_are_refused(
    terminal: Terminal, kind: str, payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """#17 item 9 (review): an FX rate Decimal() takes but currencies.toml would not (an
    exponent, spaces, non-ASCII digits, out of range) and a config version that is not
    printable ASCII are invalid payloads; nothing is stored."""
    assert await refused(terminal, kind, down(kind, payload, 1), "invalid payload", caplog)


@pytest.mark.parametrize(
    ("kind",        "payload"),
    [
        ("fx",        {**FX, "rates": {"EUR\n": "10.85"}}),
        ("fx",        {**FX, "base": "MAD\n"}),
        ("config",    {"version": "2", "files": {"sync.toml\n": SYNC.format(host="x")}}),
        ("blacklist", {"version": 1, "mode": "add",
                       "entries": [{"type": "bin", "value": "476173\n"}]}),
    ],
    ids=["fx-code", "fx-base", "config-file-name", "blacklist-bin"],
)
async def test_a_trailing_newline_in_a_signed_payload_is_refused(
    terminal: Terminal, kind: str, payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """#17 item 9: a code, file name or BIN with a trailing newline (which a ``$`` regex
    lets through) is an invalid payload, not an IntegrityError or ValueError raised later."""
    assert await refused(terminal, kind, down(kind, payload, 1), "invalid payload", caplog)


@pytest.mark.parametrize("depth", [40, 5000])
async def test_deeply_nested_downlink_is_refused(
    terminal: Terminal, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Deep JSON nesting in a downlink is refused with the project's error (#17 item 9)."""
    nested = "[" * depth + "]" * depth
    raw = ('{"v": 1, "kind": "cmd", "payload": {"args": ' + nested + "}}").encode()
    assert await refused(terminal, "cmd", raw, "nested", caplog)


@pytest.mark.parametrize(
    "toml",
    [
        "x = " + "[" * 5000 + "]" * 5000 + "\n",          # arrays: beyond tomllib's recursion
        "x = " + "{a = " * 400 + "1" + "}" * 400 + "\n",  # inline tables
        ".".join(["a"] * 200) + " = 1\n",                   # dotted keys: parsed, then too deep
    ],
    ids=["arrays", "inline tables", "dotted keys"],
)
async def test_deep_toml_in_a_signed_config_is_refused(
    terminal: Terminal, toml: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Deeply nested TOML inside a correctly signed config is refused before anything is
    written: the profile is unchanged and the refusal is alerted (#17 item 9)."""
    raw = down("config", {"version": "3", "files": {"sync.toml": toml}}, 1)
    assert await refused(terminal, "config", raw, "nested too deep", caplog)


async def test_an_overlong_number_in_a_signed_config_is_refused_in_plain_words(
    terminal: Terminal, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5,000-digit integer in a signed config's TOML is refused as not TOML, and the alert
    says so rather than quoting CPython's advice to raise sys.set_int_max_str_digits."""
    raw = down("config", {"version": "3", "files": {"sync.toml": "x = " + "9" * 5000 + "\n"}}, 1)
    assert await refused(terminal, "config", raw, "too many digits", caplog)
    assert "set_int_max_str_digits" not in caplog.text


@pytest.mark.parametrize("version", [2**63, "9" * 300], ids=["int", "digit-string"])
async def test_a_blacklist_version_past_sqlite_integers_is_refused(
    terminal: Terminal, version: object, caplog: pytest.LogCaptureFixture
) -> None:
    """#17 item 9 (found by tests/fuzz): a signed blacklist whose version does not fit
    SQLite's 64-bit INTEGER is an invalid payload, not an OverflowError from the store."""
    raw = down("blacklist", {**BLACKLIST, "version": version}, 1)
    assert await refused(terminal, "blacklist", raw, "invalid payload", caplog)
