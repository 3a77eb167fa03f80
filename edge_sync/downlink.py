"""Downlinks on the terminal: verify, validate, apply once, and report refusals up.

The platform publishes signed messages on ``etika/v1/t/{id}/down/{config|blacklist|crl|fx|cmd}``
(``config`` retained, so it comes again on every connection). For each one the handler:

1. parses the envelope (:func:`edge_sync.messages.parse_downlink`) and checks the topic's kind;
2. verifies the platform's signature with the platform public key from the profile;
3. refuses it unless it names this terminal, has not expired, and was not issued in the
   future (beyond :data:`CLOCK_SKEW_S`);
4. skips it if this message id was already applied or refused (retained redelivery), and
   refuses it unless its signed ``seq`` is strictly above the newest of its kind;
5. validates the payload against the schema of its kind (below), and refuses a blacklist
   ``version`` or an FX ``as_of`` not newer than the one in force;
6. applies it through the terminal's :class:`DownlinkHooks` (``edge_sync`` does not import
   ``terminal``: the CLI wires the store and the profile loader in);
7. records the outcome (with its ``seq``, the kind's new floor), and for a refusal queues
   an ``alert`` row (``{"alert": "downlink_rejected", "message_id", "kind", "reason"}``).

A downlink whose signature does not verify is refused and reported but *not* recorded as
seen: its message id is not trustworthy, and a forger must not be able to burn the id of a
genuine message still to come. Nor is one addressed to another terminal: it is not ours
to burn. Every other refusal after verification is recorded, and raises the kind's floor.

Payload schemas (protocol version 1)::

    config     {"version": str, "files": {"<name>.toml": "<TOML text>", ...}}
               files replace those of the current profile; the result must load.
    blacklist  {"version": int, "mode": "replace"|"add"|"remove",
                "entries": [{"type": "token"|"bin"|"fingerprint", "value": str,
                             "reason": str|null}, ...]}
               never a clear PAN: tokens, 6–8 digit BINs or SHA-256 hex digests only.
    crl        {"version": int, "mode": "replace"|"add"|"remove",
                "entries": [{"rid": "A000000003", "index": "92", "serial": "7E5E01"}, ...]}
               revoked issuer public key certificates (EMV 4.4 Book 2 §5.3 step 10):
               RID (5 bytes), CA public key index (1 byte), certificate serial (3 bytes),
               hex; the terminal writes them into its profile's crl.toml.
    fx         {"base": "MAD", "as_of": "<ISO 8601 UTC>", "rates": {"EUR": "10.8500", ...}}
               decimal strings: 1 unit of the currency = rate units of base.
    cmd        {"command": "sync_now"|"rotate_keys"|"report_diagnostics", "args": {...}}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import re
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, ParamSpec, Protocol, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from edge_sync.bounded_json import (
    MAX_DEPTH,
    check_depth,
    storable_text,
    validation_summary,
)
from edge_sync.errors import DownlinkRejectedError, MessageFormatError, SignatureError
from edge_sync.json_types import JsonObject
from edge_sync.messages import Downlink, parse_downlink, verify_downlink
from edge_sync.outbox import ALERT_DESTINATION, ALERT_KIND, ALERT_PRIORITY, Outbox, alert_payload

__all__ = [
    "CLOCK_SKEW_S",
    "BlacklistEntry",
    "BlacklistUpdate",
    "BlockingRunner",
    "Command",
    "ConfigUpdate",
    "CrlEntry",
    "CrlUpdate",
    "DownlinkHandler",
    "DownlinkHooks",
    "DownlinkResult",
    "FxUpdate",
    "MemoryDownlinkHooks",
]

#: How far in the future a downlink's ``issued_at`` may be (the two clocks disagree a bit).
CLOCK_SKEW_S = 300.0

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_P = ParamSpec("_P")


class BlockingRunner(Protocol):
    """Runs one blocking hook call off the event loop (``asyncio.to_thread`` by default; a
    test passes one that runs it inline)."""

    def __call__(self, fn: Callable[_P, _T], /, *args: _P.args,
                 **kwargs: _P.kwargs) -> Awaitable[_T]: ...

# \Z, not $: $ also matches before a final newline ("EUR\n" reached SQLite's CHECK).
_PROFILE_FILE = re.compile(r"^[a-z][a-z0-9_]{0,31}\.toml\Z")
_CURRENCY = re.compile(r"^[A-Z]{3}\Z")
#: An FX rate as the profile's currencies.toml takes it (> 0, at most 10^9, 15 decimals, 24
#: digits in all), written in ASCII digits: Decimal() alone also takes "1e999999999",
#: " 10.5 " and Arabic-Indic digits.
_RATE = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,15})?\Z")
#: A config version: printable ASCII, since it is shown to operators and stored.
_VERSION = re.compile(r"^[\x21-\x7e]{1,64}\Z")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigUpdate(_Payload):
    version: str = Field(min_length=1, max_length=64)
    files: dict[str, str] = Field(min_length=1, max_length=32)

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        if not _VERSION.match(version):
            raise ValueError("version must be printable ASCII without spaces")
        return version

    @field_validator("files")
    @classmethod
    def _names(cls, files: dict[str, str]) -> dict[str, str]:
        for name, text in files.items():
            if not _PROFILE_FILE.match(name):
                raise ValueError(f"{name!r} is not a profile file name (<name>.toml, no paths)")
            if len(text) > 256_000:
                raise ValueError(f"{name} is larger than 256 kB")
            _check_toml(name, text)
        return files


def _check_toml(name: str, text: str) -> None:
    """``ValueError`` unless ``text`` is TOML within :data:`MAX_DEPTH` levels (TOML 1.0;
    profile tables nest a few levels): refused here, before anything is written, so neither
    the profile loader nor the file writer meets text they cannot take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} holds text that is not valid Unicode") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name} is not TOML: {storable_text(str(exc), 200)}") from None
    except RecursionError:  # tomllib recurses per level of arrays and inline tables
        raise ValueError(f"{name} is nested too deep to load") from None
    except ValueError:  # tomllib lets int()'s 4,300-digit limit out as a bare ValueError
        raise ValueError(f"{name} is not TOML: a number has too many digits") from None
    try:
        check_depth(document, name)
    except MessageFormatError:
        raise ValueError(f"{name} is nested too deep (over {MAX_DEPTH} levels)") from None


class BlacklistEntry(_Payload):
    type: Literal["token", "bin", "fingerprint"]
    value: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=200)

    @field_validator("value")
    @classmethod
    def _value(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        patterns = {
            "token": r"^[A-Za-z0-9_.:-]{1,128}\Z",
            "bin": r"^[0-9]{6,8}\Z",  # a BIN, never more: a full PAN is refused here
            # the keyed HMAC-SHA256 of the PAN (hsm fingerprint), never an unkeyed digest
            "fingerprint": r"^[0-9a-f]{64}\Z",
        }
        if kind in patterns and not re.match(patterns[kind], value):
            raise ValueError(f"not a valid {kind} value")
        return value


class BlacklistUpdate(_Payload):
    version: int = Field(ge=0, lt=2**63)  # stored in SQLite INTEGER (64-bit signed)
    mode: Literal["replace", "add", "remove"]
    entries: list[BlacklistEntry] = Field(max_length=100_000)


class CrlEntry(_Payload):
    rid: str = Field(pattern=r"^[0-9A-F]{10}$")
    index: str = Field(pattern=r"^[0-9A-F]{2}$")
    serial: str = Field(pattern=r"^[0-9A-F]{6}$")


class CrlUpdate(_Payload):
    version: int = Field(ge=0, lt=2**63)  # stored in SQLite INTEGER (64-bit signed)
    mode: Literal["replace", "add", "remove"]
    entries: list[CrlEntry] = Field(max_length=100_000)


class FxUpdate(_Payload):
    base: str
    as_of: str
    rates: dict[str, str] = Field(min_length=1, max_length=300)

    @field_validator("as_of")
    @classmethod
    def _as_of(cls, value: str) -> str:
        _instant(value, "as_of")
        return value

    @field_validator("base")
    @classmethod
    def _base(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("base must be an ISO 4217 alphabetic code")
        return value

    @field_validator("rates")
    @classmethod
    def _rates(cls, rates: dict[str, str]) -> dict[str, str]:
        for code, rate in rates.items():
            if not _CURRENCY.match(code):
                raise ValueError(f"{code!r} is not an ISO 4217 alphabetic code")
            if not isinstance(rate, str) or not _RATE.match(rate):
                raise ValueError(f"rate of {code} is not a decimal string of ASCII digits "
                                 "(at most 10 before and 15 after the point)")
            value = Decimal(rate)
            if value <= 0 or value > 10**9:
                raise ValueError(f"rate of {code} must be above 0 and at most 10^9")
        return rates


class Command(_Payload):
    command: Literal["sync_now", "rotate_keys", "report_diagnostics"]
    args: dict[str, JsonValue] = Field(default_factory=dict)


def _instant(value: str, what: str) -> dt.datetime:
    """An ISO 8601 UTC timestamp as an aware datetime; ``ValueError`` naming ``what``."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not an ISO 8601 timestamp") from exc
    if parsed.utcoffset() != dt.timedelta(0):
        raise ValueError(f"{what} must be in UTC")
    return parsed


def _downlink_id(message_id: object) -> str | None:
    """The message id to name in a refusal: only a UUID (what the contract allows); any
    other text the sender put there is not repeated (the reason describes it)."""
    if not isinstance(message_id, str) or len(message_id) > 64:
        return None
    try:
        uuid.UUID(message_id)
    except ValueError:
        return None
    return message_id


class DownlinkHooks(Protocol):
    """What the terminal provides to apply downlinks (blocking: called from a thread)."""

    def seen(self, message_id: str) -> bool:
        """Whether this downlink was already applied or refused."""
        ...

    def record(self, downlink: Downlink, outcome: str, reason: str | None) -> None:
        """Remember a verified downlink's outcome (``applied`` or ``rejected``) and raise
        its kind's sequence floor to ``downlink.seq``."""
        ...

    def last_seq(self, kind: str) -> int:
        """The highest ``seq`` recorded for ``kind`` (0 when none)."""
        ...

    def blacklist_version(self) -> int | None:
        """The blacklist version in force (``None``: none pushed yet)."""
        ...

    def fx_as_of(self) -> str | None:
        """The ``as_of`` of the FX rates in force (``None``: none pushed yet)."""
        ...

    def apply_config(self, update: ConfigUpdate) -> None:
        """Write, validate and swap in the profile; :class:`DownlinkRejectedError` if invalid."""
        ...

    def store_blacklist(self, update: BlacklistUpdate) -> None: ...

    def store_crl(self, update: CrlUpdate) -> None:
        """Apply a revocation list update to the profile; :class:`DownlinkRejectedError` if not."""
        ...

    def store_fx(self, update: FxUpdate) -> None: ...

    def rotate_keys(self) -> JsonObject:
        """Rotate the terminal's keys; what to tell the platform (new key version, …)."""
        ...

    def diagnostics(self) -> JsonObject:
        """A snapshot for the platform (versions, outbox depth, links); no card data."""
        ...


@dataclass(frozen=True)
class DownlinkResult:
    message_id: str | None
    kind: str
    outcome: Literal["applied", "rejected", "duplicate"]
    reason: str | None = None


_SCHEMAS: dict[str, type[_Payload]] = {
    "config": ConfigUpdate,
    "blacklist": BlacklistUpdate,
    "crl": CrlUpdate,
    "fx": FxUpdate,
    "cmd": Command,
}


class DownlinkHandler:
    """Handles one downlink at a time; give :meth:`handle` to the MQTT transport."""

    def __init__(
        self,
        platform_public_key_pem: bytes | str | None,
        hooks: DownlinkHooks,
        outbox: Outbox,
        *,
        terminal_id: str,
        on_sync_now: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        run_blocking: BlockingRunner | None = None,
    ) -> None:
        self._key = platform_public_key_pem
        self._terminal_id = terminal_id
        self._hooks = hooks
        self._outbox = outbox
        self._on_sync_now = on_sync_now
        self._clock = clock
        self._run_blocking: BlockingRunner = run_blocking or asyncio.to_thread
        self._lock = asyncio.Lock()  # one downlink at a time: config swaps never overlap
        self.results: list[DownlinkResult] = []
        #: Downlinks by outcome (applied, rejected, duplicate), for status and the tests.
        self.counts: dict[str, int] = {"applied": 0, "rejected": 0, "duplicate": 0}

    async def _blocking(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._run_blocking(fn, *args, **kwargs)

    async def handle(self, topic_kind: str, raw: bytes) -> DownlinkResult:
        async with self._lock:
            result = await self._handle(topic_kind, raw)
        self.results.append(result)
        self.counts[result.outcome] += 1
        if result.outcome == "rejected":
            log.warning(
                "sync: downlink %s (%s) refused: %s", result.message_id, result.kind, result.reason
            )
        else:
            log.info("sync: downlink %s (%s) %s", result.message_id, result.kind, result.outcome)
        return result

    async def _handle(self, topic_kind: str, raw: bytes) -> DownlinkResult:
        try:
            downlink = parse_downlink(raw)
        except MessageFormatError as exc:
            message_id = exc.fields.get("message_id")
            return await self._refuse(None, message_id, topic_kind, exc.message, record=False)
        if downlink.kind != topic_kind:
            reason = f"kind {downlink.kind!r} arrived on the {topic_kind!r} topic"
            return await self._refuse(
                downlink, downlink.message_id, topic_kind, reason, record=False
            )
        if self._key is None:
            reason = (
                "no platform public key is configured on this terminal "
                "(sync.toml platform_public_key): downlinks cannot be verified"
            )
            return await self._refuse(
                downlink, downlink.message_id, downlink.kind, reason, record=False
            )
        try:
            verify_downlink(downlink, self._key)
        except SignatureError as exc:
            return await self._refuse(
                downlink, downlink.message_id, downlink.kind, exc.message, record=False
            )
        if downlink.terminal_id != self._terminal_id:
            # Not ours: neither applied nor remembered (its id belongs to that terminal).
            reason = f"addressed to terminal {downlink.terminal_id}, not to this one"
            return await self._refuse(
                downlink, downlink.message_id, downlink.kind, reason, record=False
            )
        if await self._blocking(self._hooks.seen, downlink.message_id):
            return DownlinkResult(downlink.message_id, downlink.kind, "duplicate")
        stale = self._stale(downlink) or await self._not_newer(downlink)
        if stale is not None:
            return await self._refuse(downlink, downlink.message_id, downlink.kind, stale)
        try:
            payload = _SCHEMAS[downlink.kind].model_validate(downlink.payload)
        except ValidationError as exc:  # the payload's depth is bounded by the parser
            return await self._refuse(downlink, downlink.message_id, downlink.kind,
                                      f"invalid payload: {validation_summary(exc)}")
        older = await self._older_version(payload)
        if older is not None:
            return await self._refuse(downlink, downlink.message_id, downlink.kind, older)
        try:
            await self._apply(downlink, payload)
        except DownlinkRejectedError as exc:
            return await self._refuse(downlink, downlink.message_id, downlink.kind, exc.message)
        await self._blocking(self._hooks.record, downlink, "applied", None)
        return DownlinkResult(downlink.message_id, downlink.kind, "applied")

    def _stale(self, downlink: Downlink) -> str | None:
        """Why the downlink is outside its validity window, or ``None``."""
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        issued = _instant(downlink.issued_at, "issued_at")
        expires = _instant(downlink.expires_at, "expires_at")
        if expires <= issued:
            return "expires_at is not after issued_at"
        if now >= expires:
            return f"expired at {downlink.expires_at}"
        if issued - now > dt.timedelta(seconds=CLOCK_SKEW_S):
            return f"issued in the future ({downlink.issued_at})"
        return None

    async def _not_newer(self, downlink: Downlink) -> str | None:
        last = await self._blocking(self._hooks.last_seq, downlink.kind)
        if downlink.seq <= last:
            return (
                f"{downlink.kind} sequence {downlink.seq} is not newer than {last}, the last "
                "one applied (replayed or reordered)"
            )
        return None

    async def _older_version(self, payload: _Payload) -> str | None:
        """A blacklist version or FX date that would roll back what is in force."""
        if isinstance(payload, BlacklistUpdate):
            current = await self._blocking(self._hooks.blacklist_version)
            if current is not None and payload.version <= current:
                return f"blacklist version {payload.version} is not newer than {current}"
        if isinstance(payload, FxUpdate):
            current_as_of = await self._blocking(self._hooks.fx_as_of)
            if current_as_of is not None and _instant(payload.as_of, "as_of") <= _instant(
                current_as_of, "as_of"
            ):
                return f"FX rates as of {payload.as_of} are not newer than {current_as_of}"
        return None

    async def _apply(self, downlink: Downlink, payload: _Payload) -> None:
        if isinstance(payload, ConfigUpdate):
            await self._blocking(self._hooks.apply_config, payload)
            await self._report("downlink_applied", downlink, {"version": payload.version})
        elif isinstance(payload, BlacklistUpdate):
            await self._blocking(self._hooks.store_blacklist, payload)
        elif isinstance(payload, CrlUpdate):
            await self._blocking(self._hooks.store_crl, payload)
            await self._report("downlink_applied", downlink, {"version": payload.version})
        elif isinstance(payload, FxUpdate):
            await self._blocking(self._hooks.store_fx, payload)
        elif isinstance(payload, Command):
            await self._command(downlink, payload)

    async def _command(self, downlink: Downlink, command: Command) -> None:
        if command.command == "sync_now":
            if self._on_sync_now is not None:
                self._on_sync_now()
        elif command.command == "rotate_keys":
            facts = await self._blocking(self._hooks.rotate_keys)
            await self._report("keys_rotated", downlink, dict(facts))
        elif command.command == "report_diagnostics":
            facts = await self._blocking(self._hooks.diagnostics)
            await self._report("diagnostics", downlink, dict(facts))

    async def _report(self, kind: str, downlink: Downlink, facts: JsonObject) -> None:
        await self._blocking(
            self._outbox.enqueue,
            ALERT_DESTINATION,
            kind,
            {"downlink_id": downlink.message_id, "downlink_kind": downlink.kind, **facts},
            f"{kind}:{downlink.message_id}",
            self._clock(),
        )

    async def _refuse(
        self,
        downlink: Downlink | None,
        message_id: object,
        kind: str,
        reason: str,
        *,
        record: bool = True,
    ) -> DownlinkResult:
        # The id, kind and reason may quote what the sender wrote (a lone surrogate, a
        # megabyte): the alert must stay storable and signable. An id that is not a UUID is
        # not repeated; the kind and reason are cut short, with what UTF-8 cannot hold
        # replaced (U+FFFD).
        mid = _downlink_id(message_id)
        kind = storable_text(kind, 32)
        reason = storable_text(reason, 500)
        if record and downlink is not None:
            await self._blocking(self._hooks.record, downlink, "rejected", reason)
        now = self._clock()
        await self._blocking(
            functools.partial(self._outbox.enqueue, priority=ALERT_PRIORITY),
            ALERT_DESTINATION,
            ALERT_KIND,
            alert_payload("downlink_rejected", message_id=mid, kind=kind, reason=reason),
            f"downlink-rejected:{mid or 'unknown'}:{now:.6f}",
            now,
        )
        return DownlinkResult(mid, kind, "rejected", reason)


class MemoryDownlinkHooks:
    """In-memory :class:`DownlinkHooks` (tests, demos): records what it was asked to apply.

    ``refuse_config`` makes :meth:`apply_config` refuse every profile with that reason, as
    the terminal does when the pushed profile does not load.
    """

    def __init__(self, refuse_config: str | None = None) -> None:
        self.log: dict[str, tuple[str, str | None]] = {}
        self.sequences: dict[str, int] = {}
        self.configs: list[ConfigUpdate] = []
        self.blacklists: list[BlacklistUpdate] = []
        self.crls: list[CrlUpdate] = []
        self.fx: list[FxUpdate] = []
        self.rotations = 0
        self.refuse_config = refuse_config

    def seen(self, message_id: str) -> bool:
        return message_id in self.log

    def record(self, downlink: Downlink, outcome: str, reason: str | None) -> None:
        self.log[downlink.message_id] = (outcome, reason)
        self.sequences[downlink.kind] = max(self.sequences.get(downlink.kind, 0), downlink.seq)

    def last_seq(self, kind: str) -> int:
        return self.sequences.get(kind, 0)

    def blacklist_version(self) -> int | None:
        return self.blacklists[-1].version if self.blacklists else None

    def fx_as_of(self) -> str | None:
        return self.fx[-1].as_of if self.fx else None

    def apply_config(self, update: ConfigUpdate) -> None:
        if self.refuse_config is not None:
            raise DownlinkRejectedError(self.refuse_config, reason="invalid profile")
        self.configs.append(update)

    def store_blacklist(self, update: BlacklistUpdate) -> None:
        self.blacklists.append(update)

    def store_crl(self, update: CrlUpdate) -> None:
        self.crls.append(update)

    def store_fx(self, update: FxUpdate) -> None:
        self.fx.append(update)

    def rotate_keys(self) -> JsonObject:
        self.rotations += 1
        return {"key_version": 1 + self.rotations}

    def diagnostics(self) -> JsonObject:
        return {"software": "test", "outbox_depth": 0}
