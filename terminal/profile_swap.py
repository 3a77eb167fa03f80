"""Replace a profile directory atomically with a validated new version (config downlinks).

The new profile is assembled in a temporary sibling directory (a copy of the current one
with the pushed files written over it), validated with :func:`terminal.profile.load_profile`,
then swapped in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` system call: at every
instant the profile path holds either the old or the new complete directory. Where that call
is missing the swap is two renames, and :func:`recover_profile` (run before loading) puts the
previous version back if a crash fell between them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from terminal.errors import ConfigError
from terminal.profile import Profile, load_profile

__all__ = ["recover_profile", "swap_in_profile"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
    )
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot
            return False
        raise OSError(errno, os.strerror(errno), str(a))
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _backup_of(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.previous")


def recover_profile(directory: Path) -> None:
    """Finish or undo a two-rename swap a crash interrupted (no-op normally)."""
    backup = _backup_of(directory)
    if not directory.exists() and backup.is_dir():
        backup.rename(directory)


def swap_in_profile(directory: Path, files: Mapping[str, str]) -> Profile:
    """Write ``files`` over a copy of ``directory``, validate it, and swap it in.

    Raises :class:`ConfigError` (listing every problem) and leaves ``directory`` untouched
    when the result does not load.
    """
    directory = Path(directory)
    recover_profile(directory)
    staging = directory.with_name(f".{directory.name}.new-{uuid.uuid4().hex[:8]}")
    shutil.copytree(directory, staging, symlinks=True)
    try:
        for name, text in files.items():
            if Path(name).name != name or not name.endswith(".toml"):
                raise ValueError(f"{name!r} is not a plain profile file name")
            target = staging / name
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        try:
            profile = load_profile(staging)
        except ConfigError as exc:
            # Name the real profile, not the staging directory, in what the platform is told.
            raise ConfigError(
                [p.replace(str(staging), str(directory)) for p in exc.problems],
                directory=str(directory),
            ) from exc
        if _exchange(staging, directory):
            _fsync_dir(directory.parent)
            shutil.rmtree(staging)  # now holds the previous version
        else:
            backup = _backup_of(directory)
            if backup.exists():
                shutil.rmtree(backup)
            directory.rename(backup)
            staging.rename(directory)
            _fsync_dir(directory.parent)
            shutil.rmtree(backup)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return profile.model_copy(update={"directory": directory})
