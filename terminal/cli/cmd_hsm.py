"""``etika hsm init|status|rotate|import|public-key``: the PKCS#11 key store, from outside.

The module path is ``--module``, else ``ETIKA_PKCS11_MODULE``, else the profile's
``[hsm] pkcs11_module``; the token is the profile's ``[hsm] token_label``. The token lives
under the data directory (``<data-dir>/softhsm/``); PINs come from ``<data-dir>/hsm-pin``
and ``hsm-so-pin`` (0600, created by ``init``) or ``ETIKA_HSM_PIN``/``ETIKA_HSM_SO_PIN``,
never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from etika_argtypes import CommandGroups, key_version
from hsm import HsmSettings, KeyPurpose, KeyStore
from hsm.errors import KeyImportFailedError
from hsm.provision import init_token
from hsm.transport import TEST_TRANSPORT_KEY, parse_import_file
from terminal.cli.context import CliContext
from terminal.errors import ConfigError
from terminal.store import Store

__all__ = ["hsm_settings", "open_key_store", "register"]


def register(groups: CommandGroups) -> None:
    hsm = groups.add_parser("hsm", help="the PKCS#11 key store (SoftHSM2 token)")
    hsm.add_argument(
        "--module",
        help="PKCS#11 module (env ETIKA_PKCS11_MODULE; default: the profile's [hsm] "
        "pkcs11_module)",
    )
    commands = hsm.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init", help="create PIN files, the token and its keys if absent (idempotent)"
    )
    init.set_defaults(handler=_init)

    status = commands.add_parser(
        "status", help="the token and each key: label, version, type, attributes, KCV"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    rotate = commands.add_parser("rotate", help="create the next version of a key")
    rotate.add_argument("purpose", choices=[p.value for p in KeyPurpose])
    rotate.set_defaults(handler=_rotate)

    imp = commands.add_parser(
        "import",
        help="import a tokenisation or vault key wrapped under a transport key (RFC 3394)",
    )
    imp.add_argument("purpose", choices=[KeyPurpose.TOKENISATION.value, KeyPurpose.VAULT.value])
    imp.add_argument("file", type=Path,
                     help='JSON {"purpose", "wrapped": hex, "kcv": 6 hex digits}')
    kek = imp.add_mutually_exclusive_group(required=True)
    kek.add_argument("--transport-key-file", type=Path,
                     help="file holding the AES transport key in hex")
    kek.add_argument("--test-transport-key", action="store_true",
                     help="use the public TEST transport key 000102…1F (test terminals only)")
    imp.set_defaults(handler=_import)

    public = commands.add_parser(
        "public-key",
        help="print the signing public key (PEM; its fingerprint on stderr): the key to "
        "register with `etika platform register-terminal`")
    public.add_argument("--version", type=key_version, help="key version (default: current)")
    public.set_defaults(handler=_public_key)




def hsm_settings(ctx: CliContext, module: str | None = None) -> HsmSettings:
    """Where the key store is for this command (:func:`terminal.services.hsm_settings_for`).

    A broken profile is reported, unless ``--module`` names the module explicitly: then
    the key store can still be inspected.
    """
    from terminal.services.keys import hsm_settings_for

    module = module or os.environ.get("ETIKA_PKCS11_MODULE")
    try:
        profile = ctx.profile()
    except ConfigError:
        if module is None:
            raise
        profile = None
    return hsm_settings_for(profile, ctx.data_dir, module)


def open_key_store(ctx: CliContext, store: Store | None = None,
                   module: str | None = None) -> KeyStore:
    """The wired key store: tokenising through ``store``'s token map when one is given."""
    from terminal.services.keys import open_key_store as open_wired

    return open_wired(hsm_settings(ctx, module), store)


def _settings(ctx: CliContext, args: argparse.Namespace) -> HsmSettings:
    return hsm_settings(ctx, args.module)


def _init(ctx: CliContext, args: argparse.Namespace) -> int:
    settings = _settings(ctx, args)
    result = init_token(settings)
    for path in result.pin_files:
        print(f"created PIN file {path} (0600)")
    if result.token_created:
        print(f"created token {settings.token_label!r}")
    for label in result.keys_created:
        print(f"generated {label}")
    if not (result.token_created or result.keys_created):
        print(f"ok: token {settings.token_label!r} and its keys already exist")
    # A new terminal's data dir gets its store here too: other commands refuse a data dir
    # without one (a mistyped --data-dir).
    from terminal.cli.cmd_db import create_store

    if create_store(ctx):
        print(f"created the store {ctx.database_path}")
    return 0


def _status(ctx: CliContext, args: argparse.Namespace) -> int:
    with KeyStore.open(_settings(ctx, args)) as store:
        status = store.status()
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
        return 0
    print(f"token   {status.token_label}  ({status.manufacturer} {status.model}, "
          f"serial {status.token_serial})")
    print(f"module  {status.module}")
    print(f"  {'label':<26} {'type':<18} {'kcv':<7} {'sens':<5} {'extr':<5} current")
    for key in status.keys:
        print(f"  {key.label:<26} {key.key_type:<18} {key.kcv:<7} "
              f"{_yes(key.attributes.get('sensitive')):<5} "
              f"{_yes(key.attributes.get('extractable')):<5} {'*' if key.current else ''}")
    return 0


def _yes(value: bool | None) -> str:
    return "yes" if value else "no"


def _rotate(ctx: CliContext, args: argparse.Namespace) -> int:
    purpose = KeyPurpose(args.purpose)
    with KeyStore.open(_settings(ctx, args)) as store:
        version = store.rotate(purpose)
    print(f"created etika-{purpose.value}-v{version}; new work uses it, older versions stay")
    return 0


def _import(ctx: CliContext, args: argparse.Namespace) -> int:
    purpose = KeyPurpose(args.purpose)
    try:
        delivery = parse_import_file(args.file.read_text())
        if delivery.purpose is not purpose:
            raise ValueError(f"it holds a {delivery.purpose.value} key, not {purpose.value}")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise KeyImportFailedError(f"cannot import {args.file}: {reason}") from exc
    if args.test_transport_key:
        transport_key = TEST_TRANSPORT_KEY
    else:
        try:
            transport_key = bytes.fromhex(args.transport_key_file.read_text().strip())
            if len(transport_key) not in (16, 24, 32):
                raise ValueError("not 16, 24 or 32 bytes")
        except (OSError, ValueError) as exc:
            raise KeyImportFailedError(
                f"cannot read a hex AES transport key from {args.transport_key_file}"
            ) from exc
    with KeyStore.open(_settings(ctx, args)) as store:
        info = store.import_wrapped(purpose, delivery.wrapped, transport_key, delivery.kcv)
    print(f"imported {info.label} (KCV {info.kcv}); new work uses it")
    return 0


def _public_key(ctx: CliContext, args: argparse.Namespace) -> int:
    import sys

    from edge_sync.signing import public_key_fingerprint

    with KeyStore.open(_settings(ctx, args)) as store:
        pem = store.public_key_pem(args.version)
    print(pem.decode(), end="")
    # On stderr, so that `etika hsm public-key > key.pem` keeps the file a bare PEM key;
    # `etika platform register-terminal` prints the same fingerprint.
    print(f"fingerprint {public_key_fingerprint(pem)}", file=sys.stderr)
    return 0
