"""The platform's signing key: an EC P-256 key pair that lives in the platform's PKCS#11 token.

The platform signs every downlink and every ack; a terminal trusts anything that verifies
with the platform's public key, so stealing the private half would let an attacker steer
the whole fleet (issue #12 item 8). The key is therefore generated *inside* a PKCS#11 token
of the platform's own (label ``etika-platform`` by default, never the terminal's
``etika-terminal``) with ``CKA_SENSITIVE`` true and ``CKA_EXTRACTABLE`` false, and it is
only ever asked to sign. Terminals are given its public half (``etika platform key``).

Where the token is:

* module: ``--pkcs11-module`` or ``ETIKA_PLATFORM_PKCS11_MODULE`` (default SoftHSM2's);
* token: ``--token-label`` or ``ETIKA_PLATFORM_TOKEN_LABEL`` (default ``etika-platform``);
  with SoftHSM2 its token directory is the data directory's (``<data-dir>/softhsm/``,
  unless ``SOFTHSM2_CONF`` says otherwise), the same layout as a terminal's;
* user PIN: ``ETIKA_PLATFORM_PIN``, else the file ``--pin-file`` /
  ``ETIKA_PLATFORM_PIN_FILE`` (default ``<data-dir>/platform/token-pin``), which must be
  a regular file of ours that nobody else may read (0600). Never on the command line.

:func:`ensure_platform_key` creates what is absent: the PIN files (random, 0600), the
token (SoftHSM2 only: on a real HSM the token is the vendor's ceremony and a missing one is
an error), and the key pair. :func:`open_platform_signer` only opens: a missing key is an
error that says to run ``etika platform key``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from edge_sync.platform.errors import PlatformKeyError
from hsm import session as sess
from hsm.config import DEFAULT_MODULE, HsmSettings
from hsm.errors import (
    HsmError,
    KeyMissingError,
    ModuleMissingError,
    TokenMissingError,
    WrongPinError,
)
from hsm.keys import public_key_pem_from_der
from hsm.signing import raw_to_der
from hsm.slot_init import LABEL_BYTES, init_token_in_free_slot

__all__ = [
    "KEY_LABEL",
    "TOKEN_LABEL",
    "PlatformKeyError",
    "PlatformKeySettings",
    "TokenPlatformSigner",
    "ensure_platform_key",
    "open_platform_signer",
]

TOKEN_LABEL = "etika-platform"  # noqa: S105 (a label, not a secret)
KEY_LABEL = "etika-platform-signing-v1"
#: The platform's key has one version; terminals pin its public key.
KEY_VERSION = 1

PIN_ENV = "ETIKA_PLATFORM_PIN"
SO_PIN_ENV = "ETIKA_PLATFORM_SO_PIN"
PIN_FILE_ENV = "ETIKA_PLATFORM_PIN_FILE"
MODULE_ENV = "ETIKA_PLATFORM_PKCS11_MODULE"
TOKEN_ENV = "ETIKA_PLATFORM_TOKEN_LABEL"  # noqa: S105 (a variable name)


@dataclass(frozen=True)
class PlatformKeySettings:
    """Where the platform's signing key is; no PIN is held here (it is read when needed)."""

    data_dir: Path
    module: str = DEFAULT_MODULE
    token_label: str = TOKEN_LABEL
    pin_file: Path | None = None
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def resolve(cls, data_dir: Path, *, module: str | None = None,
                token_label: str | None = None, pin_file: Path | None = None,
                environ: Mapping[str, str] | None = None) -> PlatformKeySettings:
        """Options beat environment variables, which beat the defaults."""
        env = os.environ if environ is None else environ
        chosen_file = pin_file or (Path(env[PIN_FILE_ENV]) if env.get(PIN_FILE_ENV) else None)
        label = token_label or env.get(TOKEN_ENV) or TOKEN_LABEL
        # PKCS#11 v2.40 §4.5: a token label is at most 32 bytes; a longer one could never be
        # found or created, so say so before any file or token is made.
        if len(label.encode("utf-8")) > LABEL_BYTES:
            raise PlatformKeyError(
                f"the platform token label {label!r} is longer than {LABEL_BYTES} bytes; "
                f"give a shorter --token-label / {TOKEN_ENV}")
        return cls(
            data_dir=Path(data_dir),
            module=module or env.get(MODULE_ENV) or DEFAULT_MODULE,
            token_label=label,
            pin_file=chosen_file,
            environ=environ,
        )

    @property
    def user_pin_file(self) -> Path:
        return self.pin_file or self.data_dir / "platform" / "token-pin"

    @property
    def so_pin_file(self) -> Path:
        # Beside the user PIN file; a --pin-file whose name has no "pin" in it must still
        # get a file of its own, never the user PIN file twice (one PIN for both roles).
        name = self.user_pin_file.name
        so_name = name.replace("pin", "so-pin") if "pin" in name else f"{name}.so-pin"
        return self.user_pin_file.with_name(so_name)

    def _env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    def user_pin(self) -> str:
        return self._env().get(PIN_ENV) or read_pin_file(self.user_pin_file, PIN_ENV)

    def so_pin(self) -> str:
        return self._env().get(SO_PIN_ENV) or read_pin_file(self.so_pin_file, SO_PIN_ENV)

    def hsm_settings(self) -> HsmSettings:
        return HsmSettings(data_dir=self.data_dir, module=self.module,
                           token_label=self.token_label, user_pin=self.user_pin())


def read_pin_file(path: Path, env_name: str) -> str:
    """A PIN from a file that is ours and private (0600 or stricter); refuse anything else."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PlatformKeyError(
            f"no platform token PIN: {path} does not exist and {env_name} is not set; give "
            "the file that holds the token's PIN (--pin-file / ETIKA_PLATFORM_PIN_FILE), or "
            "run etika platform key if the token is not created yet (it creates the PIN files)",
            path=str(path)) from None
    except OSError as exc:
        raise PlatformKeyError(f"cannot read the PIN file {path}: {exc.strerror}",
                               path=str(path)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise PlatformKeyError(f"the PIN file {path} is not a regular file", path=str(path))
    if info.st_uid != os.geteuid():
        raise PlatformKeyError(
            f"the PIN file {path} belongs to uid {info.st_uid}, not to this user "
            f"({os.geteuid()}); a PIN file must be the platform's own", path=str(path))
    if info.st_mode & 0o077:
        raise PlatformKeyError(
            f"the PIN file {path} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path} (and change the PIN if "
            "others may have read it)", path=str(path))
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlatformKeyError(f"cannot read the PIN file {path}: it must hold the PIN on "
                               "one line of text", path=str(path)) from exc
    if not value:
        raise PlatformKeyError(f"the PIN file {path} is empty", path=str(path))
    return value


def _create_pin_file(path: Path) -> bool:
    """A random 16-digit PIN in a new 0600 file; False when the file already exists."""
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(f"{path.parent} is not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL + 0600 at creation: never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise PlatformKeyError(
            f"cannot create the PIN file {path}: {exc.strerror or exc}; move what is in the "
            "way, or choose another --data-dir / --pin-file", path=str(path)) from exc
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(secrets.choice("0123456789") for _ in range(16)) + "\n")
    return True


class TokenPlatformSigner:
    """The platform's :class:`edge_sync.signing.Signer`: ECDSA P-256 inside the token.

    SoftHSM 2.6.1 has no ``CKM_ECDSA_SHA256``: the digest is taken here and signed with
    ``CKM_ECDSA``, whose raw ``r || s`` is DER-encoded (as :mod:`hsm.signing` explains).
    The key handles are looked up once, when the signer opens.
    """

    def __init__(self, owner: sess.SessionOwner, private: Any, public_pem: bytes) -> None:
        self._owner = owner
        self._private = private
        self._public_pem = public_pem

    @property
    def key_version(self) -> int:
        return KEY_VERSION

    @property
    def token_label(self) -> str:
        return self._owner.settings.token_label

    @property
    def hsm_settings(self) -> HsmSettings:
        """Where the token is (module, label, PIN): to open another session on it."""
        return self._owner.settings

    def sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        raw = self._owner.run(
            lambda _session: bytes(self._private.sign(digest, mechanism=Mechanism.ECDSA)),
            where=f"signing with {KEY_LABEL}", key_label=KEY_LABEL)
        return raw_to_der(raw)

    def public_key_pem(self) -> bytes:
        return self._public_pem

    def key_attributes(self) -> dict[str, bool]:
        """The private key's protection flags, as the token reports them."""
        names = {"sensitive": Attribute.SENSITIVE, "extractable": Attribute.EXTRACTABLE,
                 "always_sensitive": Attribute.ALWAYS_SENSITIVE,
                 "never_extractable": Attribute.NEVER_EXTRACTABLE, "sign": Attribute.SIGN}
        return self._owner.run(
            lambda _session: {name: bool(self._private[attr]) for name, attr in names.items()},
            where=f"reading the attributes of {KEY_LABEL}", key_label=KEY_LABEL)

    def close(self) -> None:
        self._owner.close()

    def __enter__(self) -> TokenPlatformSigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenPlatformSigner(token={self.token_label!r}, key={KEY_LABEL!r})"


@dataclass(frozen=True)
class EnsureResult:
    token_created: bool
    key_created: bool
    pin_files: list[str]


def ensure_platform_key(settings: PlatformKeySettings) -> EnsureResult:
    """Idempotent: create the (SoftHSM2) token, its PIN files and the key pair if absent.

    PIN files are created only with a new token: for a token that exists, a missing PIN
    file is a mistake to report (a mistyped ``--pin-file``), not a place for a new random
    PIN that the token would refuse.
    """
    env = settings._env()
    pin_files = []
    token_created = False
    # Finding a token needs no PIN: look before anything is read or written.
    lookup = HsmSettings(data_dir=settings.data_dir, module=settings.module,
                         token_label=settings.token_label)
    try:
        sess.find_token(lookup)
    except TokenMissingError:
        if "softhsm" not in Path(settings.module).name.lower():
            raise PlatformKeyError(
                f"no PKCS#11 token {settings.token_label!r} in {settings.module}: create it "
                "with the HSM vendor's tools, then run etika platform key") from None
        for path, env_name in ((settings.user_pin_file, PIN_ENV),
                               (settings.so_pin_file, SO_PIN_ENV)):
            if not env.get(env_name) and _create_pin_file(path):
                pin_files.append(str(path))
        init_token_in_free_slot(settings.module, settings.token_label, settings.so_pin(),
                                settings.user_pin())
        token_created = True
    except HsmError as exc:
        raise _platform_error(exc, settings) from exc
    with _open_owner(settings) as owner:
        key_created = owner.run(_generate_if_absent, where=f"generating {KEY_LABEL}",
                                key_label=KEY_LABEL)
    return EnsureResult(token_created=token_created, key_created=key_created,
                        pin_files=pin_files)


def open_platform_signer(settings: PlatformKeySettings) -> TokenPlatformSigner:
    """The signer on the platform's token; :class:`PlatformKeyError` when something is missing."""
    owner = _open_owner(settings)
    try:
        private, public_der = owner.run(_find_pair, where=f"opening {KEY_LABEL}",
                                        key_label=KEY_LABEL)
    except KeyMissingError as exc:
        owner.close()
        raise PlatformKeyError(
            f"the platform token {settings.token_label!r} holds no {KEY_LABEL}; run etika "
            "platform key to generate it (and give the terminals its public key)") from exc
    except BaseException:
        owner.close()
        raise
    return TokenPlatformSigner(owner, private, public_key_pem_from_der(public_der))


def _open_owner(settings: PlatformKeySettings) -> sess.SessionOwner:
    try:
        return sess.SessionOwner.open(settings.hsm_settings())
    except HsmError as exc:
        raise _platform_error(exc, settings) from exc


def _platform_error(exc: HsmError, settings: PlatformKeySettings) -> PlatformKeyError:
    if isinstance(exc, ModuleMissingError):
        # hsm's own hint names the terminal's variable; the platform's module is set apart.
        return PlatformKeyError(
            f"cannot load the platform's PKCS#11 module {settings.module}; install softhsm2 "
            f"or give the HSM's module with --pkcs11-module / {MODULE_ENV}")
    if isinstance(exc, TokenMissingError):
        return PlatformKeyError(
            f"no PKCS#11 token {settings.token_label!r} (module {settings.module}); run etika "
            "platform key to create it, or fix --token-label / ETIKA_PLATFORM_TOKEN_LABEL")
    if isinstance(exc, WrongPinError):
        return PlatformKeyError(
            f"the platform token {settings.token_label!r} refused the PIN from "
            f"{PIN_ENV if settings._env().get(PIN_ENV) else settings.user_pin_file}; give the "
            "token's user PIN")
    return PlatformKeyError(f"platform token {settings.token_label!r}: {exc.message}")


def _find_pair(session: pkcs11.Session) -> tuple[Any, bytes]:
    private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=KEY_LABEL)
    public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=KEY_LABEL)
    return private, bytes(encode_ec_public_key(public))  # type: ignore[arg-type]


def _generate_if_absent(session: pkcs11.Session) -> bool:
    if list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                 Attribute.LABEL: KEY_LABEL})):
        return False
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        local=True)
    params.generate_keypair(
        id=KEY_LABEL.encode(), label=KEY_LABEL, store=True,
        capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
        public_template={Attribute.TOKEN: True, Attribute.VERIFY: True,
                         Attribute.PRIVATE: False},
        # Never leaves the token, only signs: not even wrapped (CKA_EXTRACTABLE false).
        private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True,
                          Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                          Attribute.SIGN: True, Attribute.DERIVE: False,
                          Attribute.DECRYPT: False, Attribute.UNWRAP: False},
    )
    return True
