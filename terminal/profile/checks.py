"""Rules that span the files of a profile: every reference points at something it has.

Run by :func:`terminal.profile.load_profile` once each file has validated on its own; each
problem is reported as ``file:key: reason`` like the per-file ones.
"""

from __future__ import annotations

from pathlib import Path

from terminal.profile.schemas import (
    AidsFile,
    CapksFile,
    CurrenciesFile,
    LimitsFile,
    RoutingFile,
    SyncFile,
)

__all__ = ["cross_check", "profile_file", "public_key_problem"]


def profile_file(directory: Path, name: str) -> Path:
    """The file ``name`` of the profile directory; ``ValueError`` when it would lie outside.

    Key and certificate paths come from files a config downlink may replace, so an absolute
    path, ``..`` or a symbolic link out of the directory could point the terminal at any
    key on the machine (issue #12 item 8): only files inside the profile are used.
    """
    if Path(name).is_absolute():
        raise ValueError(f"{name} is an absolute path; name a file inside the profile directory")
    try:
        root = directory.resolve()
        path = (root / name).resolve()
    except (RuntimeError, OSError) as exc:  # a link loop: RuntimeError before Python 3.13
        raise ValueError(f"{name} cannot be resolved ({exc}): a symbolic link loop?") from None
    if not path.is_relative_to(root):
        raise ValueError(f"{name} lies outside the profile directory")
    return path


def cross_check(
    directory: Path,
    currencies: CurrenciesFile,
    aids: AidsFile,
    capks: CapksFile,
    limits: LimitsFile,
    routing: RoutingFile,
    sync: SyncFile,
    problems: list[str],
) -> None:
    """Rules that span files: every reference must point at something the profile has."""
    accepted = {c.code for c in currencies.currency}
    for field_name in ("max_per_transaction", "max_cumulative"):
        for code in getattr(limits.offline, field_name):
            if code not in accepted:
                problems.append(
                    f"limits.toml:offline.{field_name}.{code}: {code} is not in currencies.toml"
                )
    for code in accepted:
        if code not in limits.offline.max_per_transaction:
            problems.append(
                f"limits.toml:offline.max_per_transaction: no offline limit for accepted {code}"
            )
    rids = {c.rid for c in capks.capk}
    for i, aid in enumerate(aids.aid):
        if aid.rid not in rids:
            problems.append(
                f"aids.toml:aid[{i}].aid: no CA public key for RID {aid.rid} in capks.toml "
                "(offline data authentication would always fail)"
            )
    for i, psp in enumerate(routing.psp):
        for code in psp.currencies:
            if code not in accepted:
                problems.append(f"routing.toml:psp[{i}].currencies: {code} is not accepted")
        if psp.p2pe_public_key:
            problem = public_key_problem(directory, psp.p2pe_public_key, p2pe=True)
            if problem:
                problems.append(f"routing.toml:psp[{i}].p2pe_public_key: {problem}")
        for attr in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            name = getattr(psp, attr)
            if name:
                problem = _file_problem(directory, name)
                if problem:
                    problems.append(f"routing.toml:psp[{i}].{attr}: {problem}")
    networks = {a.network for a in aids.aid}
    for i, route in enumerate(routing.route):
        for network in route.networks:
            if network not in networks:
                problems.append(
                    f"routing.toml:route[{i}].networks: no application of network {network}"
                )
    key = sync.sync.platform_public_key
    if key:
        problem = public_key_problem(directory, key, p2pe=False)
        if problem:
            problems.append(f"sync.toml:sync.platform_public_key: {problem}")


def public_key_problem(directory: Path, name: str, *, p2pe: bool) -> str | None:
    """Why the PEM public key file ``name`` of the profile cannot be used, or ``None``.

    Checked here, with the rest of the profile, so that a broken key file is reported by
    ``etika config check`` rather than in the middle of a payment (P2PE sealing) or when
    the first downlink arrives (platform signature).
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        path = profile_file(directory, name)
    except ValueError as exc:
        return str(exc)
    try:
        data = path.read_bytes()
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return f"no file {name} in the profile directory"
        return f"cannot read {name}: {exc.strerror or exc}"
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return f"{name} is not a PEM public key"
    if p2pe:
        if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
            return None
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            return None
        return f"{name} must be an RSA (2048 bits or more) or EC P-256 public key"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return None
    return f"{name} must be the platform's EC P-256 public key (etika platform key)"


def _file_problem(directory: Path, name: str) -> str | None:
    """Why the profile file ``name`` cannot be read, or ``None``."""
    try:
        profile_file(directory, name).read_bytes()
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return f"no file {name} in the profile directory"
        return f"cannot read {name}: {exc.strerror or exc}"
    return None
