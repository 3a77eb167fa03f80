"""``etika platform …``: the central platform side of the sync protocol.

A command group of the ``etika`` console script, registered through the ``etika.commands``
entry point and imported only when ``etika platform`` is run. It receives the global
options as any object with a ``data_dir`` (:class:`CommandContext`); it never imports the
terminal.

``serve`` runs one worker (HTTP API + MQTT consumer on the shared subscription);
``register-terminal`` puts a terminal's public key in the registry, ``revoke-key`` takes a
version out of it at once; ``terminals`` lists the
fleet; ``reconcile`` compares end-of-day reports with the platform's sums; ``push`` signs and
publishes a downlink; ``key`` prints the platform's public key for the terminals. The
signing key lives in the platform's PKCS#11 token (:mod:`edge_sync.platform.signing_key`).

The database is SQLite under ``<data-dir>/platform/platform.db`` unless ``--database`` (or
``ETIKA_PLATFORM_DATABASE``) names another file or a ``postgresql://`` URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_sync.messages import DOWNLINK_KINDS, ack_topic, utc_now_iso
from edge_sync.platform.keys import read_terminal_public_key
from edge_sync.platform.ledgers import ledger_url, pop_records, psp_entries
from edge_sync.platform.reconcile import reconcile, reconcile_pop, reconcile_psp
from edge_sync.platform.storage import PlatformStorage, open_storage

if TYPE_CHECKING:
    from edge_sync.platform.mqtt import MqttSettings
    from edge_sync.platform.signing_key import TokenPlatformSigner

# uvicorn, FastAPI and aiomqtt are imported by the commands that use them, so that every
# other ``etika`` command starts without paying for them.
from etika_argtypes import CommandGroups, not_empty, port_or_zero
from etika_argtypes import port as _port
from etika_argtypes import positive_int as _positive
from etika_argtypes import session_expiry as _session_expiry
from etika_errors import EtikaError

__all__ = ["CommandContext", "PlatformUsageError", "register"]


class CommandContext(Protocol):
    """What a platform command needs of the ``etika`` global options."""

    @property
    def data_dir(self) -> Path: ...


class PlatformUsageError(EtikaError):
    """A value given on the command line cannot be used (checked after parsing)."""

    exit_code = 2


def _database(ctx: CommandContext, args: argparse.Namespace) -> str:
    chosen = args.database or os.environ.get("ETIKA_PLATFORM_DATABASE")
    return str(chosen) if chosen else str(ctx.data_dir / "platform" / "platform.db")


def _open(ctx: CommandContext, args: argparse.Namespace) -> PlatformStorage:
    try:
        return open_storage(_database(ctx, args))
    except ValueError as exc:
        raise PlatformUsageError(f"--database: {exc}") from exc


def _add_signing_key(parser: argparse.ArgumentParser) -> None:
    """Where the platform's signing key is: its PKCS#11 token (never a PIN in clear here)."""
    parser.add_argument(
        "--pkcs11-module", metavar="PATH", type=not_empty,
        help="PKCS#11 module of the platform's token (env ETIKA_PLATFORM_PKCS11_MODULE; "
        "default: SoftHSM2's)")
    parser.add_argument(
        "--token-label", metavar="LABEL", type=not_empty,
        help="the platform's token (env ETIKA_PLATFORM_TOKEN_LABEL; default etika-platform)")
    parser.add_argument(
        "--pin-file", type=lambda text: Path(not_empty(text)), metavar="FILE",
        help="0600 file holding the token's user PIN (env ETIKA_PLATFORM_PIN_FILE; default "
        "<data-dir>/platform/token-pin); ETIKA_PLATFORM_PIN gives the PIN itself")


def _platform_signer(ctx: CommandContext, args: argparse.Namespace, *,
                     create: bool = False) -> TokenPlatformSigner:
    """The platform's signing key in its token; ``create`` (``etika platform key`` only)
    makes the token, its PIN files and the key pair when absent.

    ``serve`` and ``push`` only open: were they to create, a mistyped ``--token-label``
    would make a fresh token and key, and the workers would sign acks and downlinks that
    no terminal trusts (their pinned key is the real one) — with exit 0.
    """
    from edge_sync.platform.signing_key import (
        PlatformKeySettings,
        ensure_platform_key,
        open_platform_signer,
    )

    settings = PlatformKeySettings.resolve(
        ctx.data_dir, module=args.pkcs11_module, token_label=args.token_label,
        pin_file=args.pin_file)
    if not create:
        return open_platform_signer(settings)
    created = ensure_platform_key(settings)
    for path in created.pin_files:
        print(f"etika: created the PIN file {path} (0600)", file=sys.stderr)
    if created.token_created:
        print(f"etika: created the PKCS#11 token {settings.token_label!r}", file=sys.stderr)
    signer = open_platform_signer(settings)
    if created.key_created:
        from edge_sync.signing import public_key_fingerprint

        print(f"etika: generated the platform signing key in token {settings.token_label!r} "
              f"({public_key_fingerprint(signer.public_key_pem())}); give the terminals its "
              "public key (etika platform key)", file=sys.stderr)
    return signer


def _add_database(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        help="SQLite file or postgresql://… URL (?schema=NAME to use a schema) "
        "(env ETIKA_PLATFORM_DATABASE; default: <data-dir>/platform/platform.db)",
    )


def _add_mqtt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt-host", default="127.0.0.1", help="broker host (%(default)s)")
    parser.add_argument("--mqtt-port", type=_port, default=1883, help="broker port (%(default)s)")
    parser.add_argument("--mqtt-ca", type=Path, metavar="FILE", help="CA file: enables TLS")
    parser.add_argument("--mqtt-cert", type=Path, metavar="FILE", help="client certificate")
    parser.add_argument("--mqtt-key", type=Path, metavar="FILE", help="client private key")


def _mqtt_settings(args: argparse.Namespace, client_id: str) -> MqttSettings:
    from dataclasses import replace

    from edge_sync.platform.mqtt import MqttSettings

    for option in ("mqtt_ca", "mqtt_cert", "mqtt_key"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            flag = "--" + option.replace("_", "-")
            raise PlatformUsageError(f"{flag}: no such file {path}")
    if args.mqtt_ca is not None:
        _check_tls_files(args.mqtt_cert, args.mqtt_key, args.mqtt_ca, "--mqtt-*")
    settings = MqttSettings(
        host=args.mqtt_host,
        port=args.mqtt_port,
        client_id=client_id,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
    )
    expiry = getattr(args, "session_expiry", None)
    return settings if expiry is None else replace(settings, session_expiry_s=expiry)


def _check_tls_files(cert: Path | None, key: Path | None, ca: Path | None, flags: str) -> None:
    """Load the TLS files once, before anything starts, so a bad one is named up front."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    checks: list[tuple[str, tuple[Path | None, ...], Callable[[], None]]] = [
        ("CA file", (ca,), lambda: context.load_verify_locations(cafile=str(ca)))]
    if cert is not None:
        checks.append(("certificate and key", (cert, key),
                       lambda: context.load_cert_chain(str(cert), str(key or cert))))
    for what, files, load in checks:
        if files[0] is None:
            continue
        try:
            load()
        except (ssl.SSLError, OSError) as exc:
            names = ", ".join(str(p) for p in files if p is not None)
            reason = getattr(exc, "reason", None) or exc.strerror or exc
            raise PlatformUsageError(
                f"{flags}: cannot load the {what} ({names}): {reason}; give PEM files that "
                "match each other",
            ) from exc


def register(groups: CommandGroups) -> None:
    platform = groups.add_parser("platform", help="the central platform (ingestion, fleet)")
    commands = platform.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "serve", help="run one platform worker: HTTP API and MQTT consumer (shared subscription)"
    )
    _add_database(run)
    _add_mqtt(run)
    run.add_argument("--http-host", default="127.0.0.1", help="HTTP bind address (%(default)s)")
    run.add_argument("--http-port", type=port_or_zero, default=8080,
                     help="HTTP port (%(default)s; 0: any free port, printed once listening)")
    run.add_argument(
        "--worker-id",
        default=socket.gethostname(),
        help="this worker's name, unique per worker: its MQTT session is etika-platform-<id> "
        "(default: the host name)",
    )
    run.add_argument("--no-mqtt", action="store_true", help="HTTP only, no MQTT consumer")
    run.add_argument("--https-cert", type=Path, metavar="FILE", help="serve HTTPS: certificate")
    run.add_argument("--https-key", type=Path, metavar="FILE", help="serve HTTPS: private key")
    run.add_argument(
        "--token-system-url",
        metavar="URL",
        help="forward the terminals' token-activation events to this endpoint (the token "
        "system's; etika sim pop serves a stand-in at /v1/token-system/activations)",
    )
    run.add_argument(
        "--operator-token-file",
        type=Path,
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' (the file's first line) on the fleet, "
        "reconciliation and metrics endpoints (env ETIKA_PLATFORM_OPERATOR_TOKEN)",
    )
    run.add_argument(
        "--https-client-ca",
        type=Path,
        metavar="FILE",
        help="require client certificates issued by this CA (the terminals')",
    )
    _add_signing_key(run)
    run.add_argument(
        "--batch", type=_positive, default=500, help="most uplinks per commit (%(default)s)"
    )
    run.add_argument(
        "--session-expiry",
        type=_session_expiry,
        default=300,
        metavar="SECONDS",
        help="how long the broker keeps this worker's session and its share of the uplink "
        "while it is away (%(default)s)",
    )
    run.set_defaults(handler=_serve)

    reg = commands.add_parser(
        "register-terminal", help="register (or replace) a terminal's public key"
    )
    _add_database(reg)
    reg.add_argument("--terminal-id", required=True, help="the terminal's id")
    reg.add_argument(
        "--public-key",
        required=True,
        type=Path,
        metavar="FILE",
        help="the terminal's signing public key (PEM, EC P-256), as `etika hsm public-key` "
        "prints it; not its TLS certificate",
    )
    reg.add_argument(
        "--key-version", type=int, default=1, help="key version the terminal signs with (1)"
    )
    reg.set_defaults(handler=_register_terminal)

    revoke = commands.add_parser(
        "revoke-key",
        help="revoke one key version of a terminal now (a stolen or wrongly announced key)",
    )
    _add_database(revoke)
    revoke.add_argument("terminal_id", metavar="TERMINAL", help="the terminal's id")
    revoke.add_argument("key_version", metavar="VERSION", type=int, help="the key version")
    revoke.set_defaults(handler=_revoke_key)

    fleet = commands.add_parser(
        "terminals", help="list registered terminals and their unchecked journal stretches")
    _add_database(fleet)
    fleet.add_argument("--json", action="store_true", help="print JSON")
    fleet.set_defaults(handler=_terminals)

    rec = commands.add_parser(
        "reconcile",
        help="compare end-of-day totals with the platform's sums; exit 1 when any differ",
    )
    _add_database(rec)
    rec.add_argument("--date", required=True, help="business date YYYY-MM-DD")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.add_argument(
        "--pop-url", metavar="URL", type=ledger_url,
        help="also compare the day's sales one to one with the PoP back end's ledger "
        "(GET URL/ledger/records; e.g. the etika sim pop stand-in)")
    rec.add_argument(
        "--psp-url", metavar="URL", action="append", default=[], type=ledger_url,
        help="also compare each payment one to one with what this PSP booked (GET "
        "URL/ledger/summary: the control port of etika sim psp --kind iso8583, or a REST "
        "gateway's own port); repeat it for every PSP the terminals route to")
    rec.set_defaults(handler=_reconcile)

    push = commands.add_parser(
        "push", help="sign and publish a downlink to one terminal (config is retained)"
    )
    push.add_argument("kind", choices=DOWNLINK_KINDS, help="downlink kind")
    push.add_argument(
        "file",
        type=Path,
        help="payload: a JSON object; for config also a <name>.toml file or a profile directory",
    )
    push.add_argument("--terminal-id", required=True, help="the terminal to send to")
    push.add_argument(
        "--config-version",
        help="version of a config given as TOML files (default: the UTC time, 20261122T003800Z)",
    )
    push.add_argument(
        "--ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long the terminal may still apply it (default: config and blacklist 7 days, "
        "fx 1 day, cmd 1 hour)",
    )
    _add_database(push)
    _add_mqtt(push)
    _add_signing_key(push)
    push.set_defaults(handler=_push)

    key = commands.add_parser(
        "key", help="print the platform's public key for the terminals to pin (the key pair is "
        "generated in the platform's PKCS#11 token on first use)"
    )
    _add_signing_key(key)
    key.set_defaults(handler=_key)


def _serve(ctx: CommandContext, args: argparse.Namespace) -> int:
    from edge_sync.platform.server import ServeSettings, serve

    mqtt = None if args.no_mqtt else _mqtt_settings(args, f"etika-platform-{args.worker_id}")
    for option in ("https_cert", "https_key", "https_client_ca"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            raise PlatformUsageError(f"--{option.replace('_', '-')}: no such file {path}")
    token = os.environ.get("ETIKA_PLATFORM_OPERATOR_TOKEN") or None
    if args.operator_token_file is not None:
        try:
            token = args.operator_token_file.read_text(
                encoding="utf-8").strip().splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            raise PlatformUsageError(
                f"--operator-token-file: cannot read a token from {args.operator_token_file}"
            ) from exc
    if token is not None and len(token) < 16:
        raise PlatformUsageError("the operator token must be at least 16 characters")
    try:
        settings = ServeSettings(
            http_host=args.http_host,
            http_port=args.http_port,
            mqtt=mqtt,
            max_batch=args.batch,
            tls_cert=args.https_cert,
            tls_key=args.https_key,
            tls_client_ca=args.https_client_ca,
            operator_token=token,
            token_system_url=args.token_system_url,
        )
    except ValueError as exc:
        raise PlatformUsageError(f"--https-*: {exc}") from exc
    if args.https_cert is not None:
        _check_tls_files(args.https_cert, args.https_key, args.https_client_ca, "--https-*")
    # The key signs every ack and downlink; `etika platform key` made it (and gave the
    # terminals its public half) before any worker starts.
    signer = _platform_signer(ctx, args)
    try:
        storage = _open(ctx, args)
        try:
            asyncio.run(serve(storage, settings, signer, on_listening=_say_listening))
        finally:
            storage.close()
    finally:
        signer.close()
    return 0


def _say_listening(scheme: str, host: str, port: int) -> None:
    # The one line on stdout: with --http-port 0, whoever started us learns the port here.
    print(f"etika platform: serving {scheme} on {host}:{port}", flush=True)


def _revoke_key(ctx: CommandContext, args: argparse.Namespace) -> int:
    if not 0 <= args.key_version < 2**31:
        raise PlatformUsageError("VERSION must be between 0 and 2147483647")
    storage = _open(ctx, args)
    try:
        found = storage.revoke_key(args.terminal_id, args.key_version, utc_now_iso())
    finally:
        storage.close()
    if not found:
        print(f"etika: no key version {args.key_version} is registered for "
              f"{args.terminal_id}; nothing revoked", file=sys.stderr)
        return 1
    # Workers cache keys for up to 30 s; from then on the version verifies nothing, and
    # no announcement signed with it is taken.
    print(f"revoked key version {args.key_version} of {args.terminal_id}: messages signed "
          "with it are refused from now on (within 30 s on running workers)")
    return 0


def _register_terminal(ctx: CommandContext, args: argparse.Namespace) -> int:
    if not 0 <= args.key_version < 2**31:
        raise PlatformUsageError("--key-version must be between 0 and 2147483647")
    try:
        ack_topic(args.terminal_id)  # the id must be usable in topics and URLs
    except ValueError as exc:
        raise PlatformUsageError(f"--terminal-id: {exc}") from exc
    try:
        is_certificate = b"BEGIN CERTIFICATE" in args.public_key.read_bytes()
    except OSError:
        is_certificate = False  # read_terminal_public_key names the unreadable file
    if is_certificate:
        # A terminal's TLS certificate is a P-256 key too, but not the one it signs with:
        # every uplink would be refused and dead-lettered.
        raise PlatformUsageError(
            f"--public-key {args.public_key} is a certificate (the terminal's TLS "
            "certificate?): register the terminal's signing key, the PEM public key that "
            "`etika hsm public-key` prints on the terminal")
    pem = read_terminal_public_key(args.public_key)
    storage = _open(ctx, args)
    try:
        storage.register_key(args.terminal_id, args.key_version, pem, utc_now_iso())
    finally:
        storage.close()
    from edge_sync.signing import public_key_fingerprint

    print(f"registered {args.terminal_id} (key version {args.key_version}, "
          f"{public_key_fingerprint(pem)}); it verifies the terminal's messages at once")
    return 0


def _terminals(ctx: CommandContext, args: argparse.Namespace) -> int:
    storage = _open(ctx, args)
    try:
        summaries = storage.terminals()
    finally:
        storage.close()
    if args.json:
        print(json.dumps({"terminals": [s.as_json() for s in summaries]}, indent=2))
        return 0
    print(f"{'terminal':<20} {'last seen':<25} {'backlog':>8} {'messages':>9} {'rejected':>9} "
          f"{'journal gaps':>12}")
    for row in (summary.as_json() for summary in summaries):
        print(
            f"{row['terminal_id']:<20} {row['last_seen_at'] or '-':<25} "
            f"{row['backlog_total']:>8} {row['messages']:>9} {row['rejected']:>9} "
            f"{len(row['checkpoint_gaps']):>12}"
        )
    # What an auditor must see: journal stretches no received checkpoint vouches for yet.
    for gap in (gap for summary in summaries for gap in summary.checkpoint_gaps):
        print(gap.describe())
    return 0


def _reconcile(ctx: CommandContext, args: argparse.Namespace) -> int:
    storage = _open(ctx, args)
    try:
        try:
            result = reconcile(storage, args.date)
        except ValueError as exc:
            raise PlatformUsageError(f"--date: {exc}") from exc
        if args.pop_url:
            records = pop_records(args.pop_url)
            result.pop_checked = len(records)
            result.pop_mismatches = reconcile_pop(storage, result.business_date, records)
        if args.psp_url:
            entries = [e for url in args.psp_url for e in psp_entries(url)]
            result.psp_checked = len(entries)
            result.psp_mismatches = reconcile_psp(storage, result.business_date, entries)
    finally:
        storage.close()
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
        return 0 if result.ok else 1
    print(
        f"reconciliation {result.business_date}: "
        f"{_count(len(result.terminals_checked), 'terminal', 'terminals')}, "
        f"{len(result.matched)} matched, "
        f"{_count(len(result.mismatches), 'mismatch', 'mismatches')}"
    )
    if result.mismatches:
        print(f"  {'terminal':<20} {'cur':<4} {'difference':<26} "
              f"{'terminal says':>16} {'platform has':>16}   (count/amount, minor units)")
    for m in result.mismatches:
        theirs = f"{m.terminal.count}/{m.terminal.amount_minor}" if m.terminal else "-"
        ours = f"{m.platform.count}/{m.platform.amount_minor}" if m.platform else "-"
        print(f"  {m.terminal_id:<20} {m.currency or '*':<4} {m.kind:<26} {theirs:>16} {ours:>16}")
    if result.pop_checked is not None:
        print(f"PoP ledger: {_count(result.pop_checked, 'record', 'records')}, "
              f"{_count(len(result.pop_mismatches), 'mismatch', 'mismatches')}")
        for p in result.pop_mismatches:
            print(f"  {p.terminal_id:<20} {p.kind:<30} sale {p.transaction_id or '-'} "
                  f"({p.platform_state or '-'}) record {p.pop_record_id or '-'} "
                  f"({p.pop_status or 'absent'})")
    if result.psp_checked is not None:
        print(f"PSP ledgers: {_count(result.psp_checked, 'entry', 'entries')}, "
              f"{_count(len(result.psp_mismatches), 'mismatch', 'mismatches')}"
              "   (amounts in minor units)")
        for psp in result.psp_mismatches:
            platform_has = "-" if psp.platform_amount_minor is None \
                else str(psp.platform_amount_minor)
            psp_has = "-" if psp.psp_amount_minor is None else str(psp.psp_amount_minor)
            print(f"  {psp.terminal_id or '-':<20} {psp.kind:<30} payment "
                  f"{psp.transaction_id or '-'} ({psp.platform_state or '-'}: {platform_has}) PSP "
                  f"{'/'.join(psp.psp_keys)}: {psp_has}")
    return 0 if result.ok else 1


def _count(n: int, singular: str, plural: str) -> str:
    """``1 entry``, ``2 entries``, ``0 entries``: the report reads as words."""
    return f"{n} {singular if n == 1 else plural}"


def _push(ctx: CommandContext, args: argparse.Namespace) -> int:
    from edge_sync.platform.downlink import read_payload

    payload = read_payload(args.file, args.kind, args.config_version)
    with _platform_signer(ctx, args) as signer:
        return _sign_and_push(ctx, args, payload, signer)


def _sign_and_push(ctx: CommandContext, args: argparse.Namespace, payload: Any,
                   signer: TokenPlatformSigner) -> int:
    from edge_sync.platform.downlink import publish_downlink, sign_downlink

    storage = _open(ctx, args)
    try:
        # The terminal applies only a downlink newer than the last of its kind.
        seq = storage.next_downlink_seq(args.terminal_id, args.kind)
    finally:
        storage.close()
    downlink = sign_downlink(
        signer, args.kind, payload, terminal_id=args.terminal_id, seq=seq, ttl_s=args.ttl
    )
    settings = _mqtt_settings(args, "etika-platform-push")
    topic = asyncio.run(publish_downlink(settings, args.terminal_id, downlink))
    retained = " (retained)" if args.kind == "config" else ""
    print(f"published {args.kind} {downlink.message_id} to {topic}{retained}")
    return 0


def _key(ctx: CommandContext, args: argparse.Namespace) -> int:
    with _platform_signer(ctx, args, create=True) as signer:
        print(signer.public_key_pem().decode(), end="")
    return 0
