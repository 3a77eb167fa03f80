"""Entry points under hostile input: each ends in the project's own error (or a refusal) and
changes no stored state.

* MQTT downlink payloads, raw or signed by the platform with a random payload;
* platform API bodies (``POST /v1/terminals/{id}/messages``);
* profile files (one file of a valid profile replaced by random TOML or bytes);
* CLI arguments (commands that end by themselves, random options and values).

The MQTT uplink (any bytes into the platform ingest) is fuzzed by
``tests/edge_sync/platform/test_ingest_properties.py``; card answers to the kernel by
``tests/terminal/emv/test_fuzz.py``; PIN pad frames by ``tests/drivers/test_pinpad_frame.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.downlink import DownlinkHandler, MemoryDownlinkHooks
from edge_sync.memory_outbox import MemoryOutbox
from edge_sync.messages import DOWNLINK_KINDS, build_downlink
from edge_sync.platform.api import create_app
from edge_sync.platform.storage import open_storage
from edge_sync.signing import SoftwareSigner
from etika_errors import EtikaError

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
PLATFORM = SoftwareSigner.generate(key_version=1)
TERMINAL_ID = "ETK00001"

JSON = st.recursive(
    # JSON has no NaN or Infinity (RFC 8259 §6): the canonicaliser refuses to sign them.
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=25)


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _hooks_state(hooks: MemoryDownlinkHooks) -> tuple[Any, ...]:
    return (len(hooks.configs), len(hooks.blacklists), len(hooks.crls), len(hooks.fx),
            dict(hooks.sequences))


@FUZZ
@given(kind=st.sampled_from([*DOWNLINK_KINDS, "firmware", ""]),
       raw=st.one_of(st.binary(max_size=300), JSON.map(lambda v: repr(v).encode())))
def test_any_raw_downlink_is_refused_and_changes_nothing(kind: str, raw: bytes) -> None:
    """Unsigned or broken downlink bytes are a refusal (counted), never an exception, and
    nothing is applied (DESIGN §5: a message is authenticated before it is read)."""
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(PLATFORM.public_key_pem(), hooks, outbox,
                              terminal_id=TERMINAL_ID, run_blocking=_inline)
    result = asyncio.run(handler.handle(kind, raw))
    assert result.outcome == "rejected" and result.reason
    assert _hooks_state(hooks) == (0, 0, 0, 0, {})
    assert handler.counts["rejected"] == 1


@FUZZ
@given(kind=st.sampled_from(DOWNLINK_KINDS),
       payload=st.dictionaries(st.sampled_from(["version", "mode", "entries", "base",
                                                "as_of", "rates", "profile", "files",
                                                "command", "args", "crl", "revoked"]),
                               JSON, max_size=5))
def test_signed_downlink_with_any_payload_is_applied_or_refused_cleanly(
        kind: str, payload: dict[str, Any]) -> None:
    """A properly signed downlink whose payload is random is applied only if its schema
    holds; otherwise it is refused with a reason and nothing is applied."""
    hooks, outbox = MemoryDownlinkHooks(), MemoryOutbox()
    handler = DownlinkHandler(PLATFORM.public_key_pem(), hooks, outbox,
                              terminal_id=TERMINAL_ID, run_blocking=_inline)
    raw = build_downlink(PLATFORM, terminal_id=TERMINAL_ID, kind=kind, seq=1,
                         payload=payload).to_json()
    result = asyncio.run(handler.handle(kind, raw))
    assert result.outcome in ("applied", "rejected")
    if result.outcome == "rejected":
        assert result.reason
        assert _hooks_state(hooks)[:4] == (0, 0, 0, 0)


@FUZZ
@given(body=st.one_of(st.binary(max_size=400), JSON.map(lambda v: repr(v).encode())),
       content_type=st.sampled_from(["application/json", "text/plain",
                                     "application/octet-stream", ""]))
def test_platform_api_bodies_never_500_and_store_nothing(tmp_path: Path, body: bytes,
                                                         content_type: str) -> None:
    """Any body posted as a terminal's messages is answered 2xx/4xx in JSON, never 500, and
    books no message or transaction."""
    storage = open_storage(str(tmp_path / f"p{abs(hash((body, content_type)))}.db"))
    try:
        storage.register_key(TERMINAL_ID, 1, PLATFORM.public_key_pem().decode(),
                             "2026-11-21T00:00:00Z")
        with TestClient(create_app(storage)) as client:
            answer = client.post(f"/v1/terminals/{TERMINAL_ID}/messages", content=body,
                                 headers={"content-type": content_type} if content_type else {})
        assert answer.status_code < 500, answer.text
        answer.json()
        assert storage.kind_counts(TERMINAL_ID) == {}
        assert storage.transaction_totals(None, TERMINAL_ID) == []
    finally:
        storage.close()


PROFILE_FILES = ("terminal.toml", "aids.toml", "capks.toml", "limits.toml", "routing.toml",
                 "sync.toml", "currencies.toml", "crl.toml")
TOML_TEXT = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(st.tuples(st.sampled_from(["[terminal]", "[[psp]]", "[sync]", "[offline]",
                                        "[[aid]]", "[fraud]", "", "[[route]]"]),
                       st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
                       st.one_of(st.integers(-10**12, 10**12).map(str),
                                 st.text(max_size=15).map(lambda t: repr(t).replace("'", '"')),
                                 st.sampled_from(["true", "[]", "{}", "[1, \"a\"]", "1e400",
                                                  "-0", "\"\\u0000\"", "nan"]))),
             max_size=8).map(lambda rows: "\n".join(f"{h}\n{k} = {v}" for h, k, v in rows)),
)


@FUZZ
@given(name=st.sampled_from(PROFILE_FILES), text=TOML_TEXT)
def test_any_profile_file_loads_or_is_a_config_error(tmp_path: Path, name: str,
                                                     text: str) -> None:
    """A profile whose file is random TOML or random bytes loads, or fails with the
    project's own error naming the file; the original profile is untouched."""
    from terminal.profile import load_profile
    from tests.conftest import DEFAULT_PROFILE_DIR

    target = tmp_path / f"profile-{abs(hash((name, text)))}"
    shutil.copytree(DEFAULT_PROFILE_DIR, target, dirs_exist_ok=True)
    before = (DEFAULT_PROFILE_DIR / name).read_bytes() if (DEFAULT_PROFILE_DIR / name).exists() \
        else None
    (target / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_profile(target)
    except EtikaError as exc:
        assert str(exc)
    finally:
        shutil.rmtree(target, ignore_errors=True)
    if before is not None:
        assert (DEFAULT_PROFILE_DIR / name).read_bytes() == before


COMMANDS: tuple[list[str], ...] = (
    ["tx", "list"], ["tx", "show"], ["refund"], ["void"], ["config", "show"],
    ["config", "validate"], ["db", "status"], ["sync", "status"], ["pay", "--amount"],
    ["platform", "fleet"], ["platform", "reconcile", "--date"], ["sim", "pop", "--port"],
    ["sim", "psp", "--kind"], ["sim", "card", "--profile"], ["hsm", "status"], [],
)
TOKENS = st.one_of(
    st.sampled_from(["--json", "--amount", "-1", "0", "1e9", "abc", "--currency", "XXX",
                     "--simulated", "nope", "--date", "2026-13-40", "--port", "70000",
                     "--faults", "timeout=-1", "--data-dir", "-h", "--profile", "\x00",
                     "12345678-1234-1234-1234-123456789012"]),
    st.text(max_size=20).filter(lambda t: "\x00" not in t),
)


@FUZZ
@given(command=st.sampled_from(COMMANDS), extra=st.lists(TOKENS, max_size=4))
def test_cli_arguments_end_in_a_usage_error_or_a_clean_result(
        tmp_path: Path, command: list[str], extra: list[str]) -> None:
    """Random arguments to the CLI end with exit status 0, 1 or 2 and at most one error
    line, never a traceback; the data dir gets no payment."""
    from terminal.cli.main import main

    argv = ["--data-dir", str(tmp_path / "var"), *command, *extra]
    # Nothing may start waiting: a server is refused by its fault spec before it listens,
    # a sale by its card profile before it looks for a reader.
    if command[:1] == ["sim"]:
        argv.append("--faults=unknown-fault")
    if command[:1] == ["pay"]:
        argv += ["--simulated", "no-such-card"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    assert code in (0, 1, 2), (argv, code, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue() + out.getvalue(), argv
    database = tmp_path / "var" / "etika.db"
    if database.exists():
        import sqlite3

        with contextlib.closing(sqlite3.connect(database)) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "payments" in tables:
                assert conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 0
