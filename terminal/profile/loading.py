"""Reading a profile directory: each file parsed as TOML, validated by its model, then the
cross-file checks; every problem collected into one :class:`~terminal.errors.ConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from pydantic import BaseModel, ValidationError

from terminal.errors import ConfigError
from terminal.profile.checks import cross_check
from terminal.profile.model import Profile
from terminal.profile.schemas import (
    PROFILE_FILES,
    AidsFile,
    CapksFile,
    CurrenciesFile,
    LimitsFile,
    RoutingFile,
    SyncFile,
    TerminalFile,
)
from terminal.profile.toml_reading import format_loc, read_toml
from terminal.profile_crl import crl_problems

__all__ = ["load_profile"]


def _validate_file(directory: Path, filename: str, problems: list[str]) -> BaseModel | None:
    try:
        data, problem = read_toml(directory / filename, filename)
    except FileNotFoundError:
        problems.append(f"{filename}: missing (every profile has {', '.join(PROFILE_FILES)})")
        return None
    if data is None:
        problems.append(str(problem))
        return None
    try:
        return PROFILE_FILES[filename].model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{filename}:{format_loc(error['loc'])}: {message}")
        return None


def _did_you_mean(directory: Path) -> str:
    """``; did you mean 'default'?`` for a mistyped name next to real profiles, else ``""``."""
    import difflib

    try:
        siblings = sorted(p.name for p in directory.parent.iterdir()
                          if (p / "terminal.toml").is_file())
    except OSError:
        return ""
    close = difflib.get_close_matches(directory.name, siblings, n=3, cutoff=0.5)
    if close:
        return "; did you mean " + " or ".join(repr(name) for name in close) + "?"
    return f"; the profiles there are: {', '.join(siblings)}" if siblings else ""


def load_profile(directory: Path | str) -> Profile:
    """Read and validate every file of a profile directory.

    Raises :class:`ConfigError` listing every problem as ``path/file:key: reason`` (all files
    are checked, not just up to the first error).
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such profile directory"
        raise ConfigError(
            [f"{directory}: {what} (a profile is a folder of {', '.join(PROFILE_FILES)})"
             + _did_you_mean(directory)]
        )
    problems: list[str] = []
    parsed = {name: _validate_file(directory, name, problems) for name in PROFILE_FILES}
    if problems:
        raise ConfigError([f"{directory}/{p}" for p in problems], directory=str(directory))
    # Every file validated, so each entry holds its own model (casts only narrow the type).
    terminal_file = cast(TerminalFile, parsed["terminal.toml"])
    currencies = cast(CurrenciesFile, parsed["currencies.toml"])
    aids = cast(AidsFile, parsed["aids.toml"])
    capks = cast(CapksFile, parsed["capks.toml"])
    limits = cast(LimitsFile, parsed["limits.toml"])
    routing = cast(RoutingFile, parsed["routing.toml"])
    sync = cast(SyncFile, parsed["sync.toml"])
    cross_check(directory, currencies, aids, capks, limits, routing, sync, problems)
    revoked, crl_issues = crl_problems(directory)  # the optional crl.toml
    problems += crl_issues
    if problems:
        raise ConfigError([f"{directory}/{p}" for p in problems], directory=str(directory))
    return Profile(
        directory=directory,
        terminal=terminal_file.terminal,
        hsm=terminal_file.hsm,
        pinpad=terminal_file.pinpad,
        printer=terminal_file.printer,
        currencies=currencies,
        aids=aids.aid,
        capks=capks.capk,
        offline=limits.offline,
        fraud=limits.fraud,
        payments=limits.payments,
        psps=routing.psp,
        routes=routing.route,
        sync=sync.sync,
        revoked=revoked,
    )


