"""``etika config check [DIR]``: validate a terminal profile and every file it points to.

Beyond the profile's own files (and the keys inside it, which loading checks), a profile
names files elsewhere: the sync TLS CA, certificate and key (relative to the data dir) and
the PKCS#11 module. ``ok`` means each of them is there and usable; otherwise each problem
is one ``file:key: reason`` line, as for the profile itself (exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from etika_argtypes import CommandGroups
from terminal.cli.context import CliContext
from terminal.errors import ConfigError
from terminal.profile import Profile, load_profile

__all__ = ["register"]


def register(groups: CommandGroups) -> None:
    config = groups.add_parser("config", help="terminal profiles")
    commands = config.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="validate a profile; prints ok, or every error as file:key: reason (exit 2)",
    )
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="profile directory (default: the profile chosen with --profile)",
    )
    check.add_argument("--json", action="store_true", help="print a JSON report")
    check.set_defaults(handler=_check)


def _data_file(ctx: CliContext, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else ctx.data_dir / path


def _tls_problems(ctx: CliContext, profile: Profile) -> list[str]:
    """The sync section's CA, certificate and key: present, and loadable together."""
    import ssl

    sync = profile.sync
    if not (sync.mqtt_tls or sync.https_url):
        return []
    problems: list[str] = []
    files: dict[str, Path] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        name = getattr(sync, key)
        if name is None:
            continue
        path = _data_file(ctx, name)
        if not path.is_file():
            where = ("" if Path(name).is_absolute()
                     else f" (relative to the data dir {ctx.data_dir})")
            problems.append(f"sync.toml:sync.{key}: no file {path}{where}; scripts/setup "
                            "creates the test PKI, a real terminal gets its own")
        else:
            files[key] = path
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if "ca_file" in files:
        try:
            context.load_verify_locations(cafile=str(files["ca_file"]))
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"sync.toml:sync.ca_file: {files['ca_file']} is not a usable PEM "
                            f"CA certificate ({getattr(exc, 'reason', None) or exc})")
    if "cert_file" in files and "key_file" in files:
        try:
            context.load_cert_chain(str(files["cert_file"]), str(files["key_file"]))
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"sync.toml:sync.cert_file: {files['cert_file']} and its key "
                            f"{files['key_file']} cannot be loaded together "
                            f"({getattr(exc, 'reason', None) or exc})")
    return problems


def _module_problems(profile: Profile) -> list[str]:
    module = os.environ.get("ETIKA_PKCS11_MODULE") or profile.hsm.pkcs11_module
    if module and not Path(module).is_file():
        source = ("ETIKA_PKCS11_MODULE" if os.environ.get("ETIKA_PKCS11_MODULE")
                  else "terminal.toml:hsm.pkcs11_module")
        return [f"{source}: no PKCS#11 module {module} (softhsm2 installs "
                "/usr/lib/softhsm/libsofthsm2.so; a real HSM names its vendor's module)"]
    return []


def _check(ctx: CliContext, args: argparse.Namespace) -> int:
    directory = args.directory or ctx.profile_dir
    try:
        profile = load_profile(directory)
        problems = _tls_problems(ctx, profile) + _module_problems(profile)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        if args.json:
            print(json.dumps({"ok": False, "directory": str(directory), "errors": exc.problems}))
        else:
            for problem in exc.problems:
                print(problem)
        return exc.exit_code
    if args.json:
        print(json.dumps({
            "ok": True,
            "directory": str(directory),
            "terminal_id": profile.terminal.terminal_id,
            "aids": [a.name for a in profile.aids],
            "capks": len(profile.capks),
        }))
    else:
        print("ok")
    return 0
